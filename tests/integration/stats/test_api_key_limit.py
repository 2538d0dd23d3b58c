"""An API key's hourly request limit (Plausible: "600 requests per hour by default"), through the api."""

from __future__ import annotations

import httpx

from tests.support.accounts import Servers, World
from tests.support.beacon import run_beacon


def test_a_key_over_its_hourly_limit_gets_429_and_other_keys_do_not(servers: Servers, world: World) -> None:
    """The 600th request of the hour passes, the 601st is a 429 in Plausible's shape with Retry-After."""
    world.site("limited.example", {world.user("owner@example.com"): "owner"})
    keys = [run_beacon(servers.environment, "apikey", "create", "--email", "owner@example.com", "--name", name,
                       "--scope", "sites:write").stdout.strip() for name in ("busy", "quiet")]
    busy_id = world.sql("SELECT id FROM api_keys WHERE name = 'busy'")[0][0]
    assert 600 == servers.settings.accounts.api_key_hourly_limit
    world.redis.set(f"{servers.settings.redis.key_prefix}apikey:hour:{busy_id}", 599, ex=3600)

    def get(key: str) -> httpx.Response:
        return httpx.get(f"{servers.api}/api/v1/sites/limited.example", headers={"Authorization": f"Bearer {key}"},
                         timeout=20)

    last, refused, other = get(keys[0]), get(keys[0]), get(keys[1])
    assert 200 == last.status_code, last.text
    assert 429 == refused.status_code
    assert refused.json()["error"].startswith("Too many API requests. This API key is limited to 600 requests")
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    assert 200 == other.status_code


def test_operations_taking_an_api_key_declare_429(servers: Servers) -> None:
    """The OpenAPI document says the Stats and Sites APIs may answer 429, so clients and fuzzers expect it."""
    paths = httpx.get(f"{servers.api}/api/docs/openapi.json", timeout=20).json()["paths"]
    keyed = ("/api/v1/stats", "/api/v2/", "/api/v1/sites")
    declared = {(path, method): "429" in operation["responses"] for path, methods in paths.items()
                for method, operation in methods.items() if path.startswith(keyed)}
    assert declared and all(declared.values()), [key for key, ok in declared.items() if not ok]
