"""The Webhooks API: bad input, safe egress at save and at delivery, and who may call what."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.devstack import Postgres, Redis
from services.integrations import delivery
from tests.support.integrations import KEY, Receiver, Site, Stack, make_site, start_stack

VALID = {"url": "https://hooks.example.net/in", "event_types": ["goal.completed"]}


@pytest.fixture(scope="module")
def strict(postgres: Postgres, redis_server: Redis, state_dir: Path) -> Iterator[Stack]:
    """api and integrations as in production: public https destinations only."""
    running = start_stack(postgres, redis_server, state_dir / "integrations-strict", "beacon_integrations_strict", 6,
                          {}, ("api", "integrations"))
    yield running
    running.stop()
    running.engine.dispose()


@pytest.fixture
def strict_site(strict: Stack) -> Iterator[Site]:
    made = make_site(strict)
    yield made
    strict.sql("TRUNCATE users, sites, webhook_endpoints RESTART IDENTITY CASCADE")


@pytest.mark.parametrize("url", [
    pytest.param("https://127.0.0.1/in", id="loopback"),
    pytest.param("https://10.0.0.8/in", id="10/8"),
    pytest.param("https://169.254.169.254/latest/meta-data", id="metadata"),
    pytest.param("https://[fd12::1]/in", id="ipv6-ula"),
    pytest.param("https://[::ffff:127.0.0.1]/in", id="ipv4-mapped"),
    pytest.param("https://localhost/in", id="name-resolving-to-loopback"),
    pytest.param("http://93.184.216.34/in", id="plain-http"),
])
def test_private_destinations_are_refused_at_save(strict: Stack, strict_site: Site, url: str) -> None:
    """A clear 400 naming the url, and nothing stored."""
    with strict.client() as client:
        response = client.post(f"/api/v1/sites/{strict_site.domain}/webhooks", json={**VALID, "url": url})
    assert (400, True) == (response.status_code, response.json()["error"].startswith("url: "))
    assert [] == strict.sql("SELECT id FROM webhook_endpoints")


def test_destinations_are_checked_again_at_delivery(strict: Stack, strict_site: Site, receiver: Receiver) -> None:
    """An endpoint whose host now resolves to loopback (DNS changed) gets no request; the attempt says why."""
    endpoint = strict.sql("INSERT INTO webhook_endpoints (site_id, url, event_types, secret) VALUES "
                          "(:s, :u, ARRAY['webhook.test'], 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw') RETURNING id",
                          s=strict_site.id, u=receiver.url("/ok").replace("http://", "https://"))[0][0]
    strict.sql("INSERT INTO webhook_deliveries (msg_id, endpoint_id, site_id, event_type, payload) "
               "VALUES ('msg_dns', :e, :s, 'webhook.test', '{\"type\": \"webhook.test\", \"data\": {}}')",
               e=endpoint, s=strict_site.id)
    [(delivery_id, token)] = delivery.claim_due(strict.engine, strict.settings.integrations)
    assert "retry" == delivery.deliver(strict.engine, strict.settings.integrations, delivery_id, token)
    error = strict.sql("SELECT error FROM webhook_attempts WHERE delivery_id = :d", d=delivery_id)[0][0]
    assert ("url: the host 127.0.0.1 resolves to a non-public address (127.0.0.1)", []) == (error, receiver.on("/ok"))


@pytest.mark.parametrize(("body", "status", "field"), [
    pytest.param({**VALID, "event_types": ["goal.complete"]}, 400, "event_types", id="unknown-event-type"),
    pytest.param({**VALID, "event_types": []}, 400, "event_types", id="no-event-types"),
    pytest.param({**VALID, "url": "not a url"}, 400, "url", id="malformed-url"),
    pytest.param({**VALID, "url": "ftp://hooks.example.net/"}, 400, "url", id="ftp-url"),
    pytest.param({**VALID, "url": "https://" + "a" * 2000}, 400, "url", id="url-too-long"),
    pytest.param({**VALID, "format": "teams"}, 400, "format", id="unknown-format"),
    pytest.param({**VALID, "description": "d" * 201}, 400, "description", id="description-too-long"),
    pytest.param({**VALID, "secret": "mine"}, 400, "secret", id="unknown-field"),
    pytest.param({"event_types": ["goal.completed"]}, 400, "url", id="missing-url"),
    pytest.param(["not", "an", "object"], 400, "", id="not-an-object"),
])
def test_bad_input_is_a_clear_4xx_and_stores_nothing(stack: Stack, site: Site, body: object, status: int,
                                                     field: str) -> None:
    with stack.client() as client:
        response = client.post(f"/api/v1/sites/{site.domain}/webhooks", json=body)
    assert status == response.status_code, response.text
    assert field in response.json()["error"]
    assert [] == stack.sql("SELECT id FROM webhook_endpoints")


def test_oversized_bodies_are_refused(stack: Stack, site: Site) -> None:
    with stack.client() as client:
        response = client.post(f"/api/v1/sites/{site.domain}/webhooks", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                               headers={"Content-Type": "application/json"})
    assert 413 == response.status_code


def test_a_site_has_at_most_20_endpoints(stack: Stack, site: Site, receiver: Receiver) -> None:
    with stack.client() as client:
        made = [client.post(f"/api/v1/sites/{site.domain}/webhooks",
                            json={"url": receiver.url(f"/ok?n={n}"), "event_types": ["traffic.spike"]}).status_code
                for n in range(21)]
        error = client.post(f"/api/v1/sites/{site.domain}/webhooks",
                            json={"url": receiver.url("/ok"), "event_types": ["traffic.spike"]}).json()["error"]
    assert ([201] * 20 + [409], "at most 20") == (made, "at most 20" if "at most 20" in error else error)
    assert 20 == stack.sql("SELECT count(*) FROM webhook_endpoints")[0][0]


def test_update_and_delete(stack: Stack, site: Site, receiver: Receiver) -> None:
    """PATCH changes the subscribed types; an unknown type is refused; DELETE removes it; a foreign id is 404."""
    with stack.client() as client:
        base = f"/api/v1/sites/{site.domain}/webhooks"
        created = client.post(base, json={"url": receiver.url("/ok"), "event_types": ["traffic.spike"]}).json()
        changed = client.patch(f"{base}/{created['id']}", json={"event_types": ["traffic.drop", "report.weekly"]})
        refused = client.patch(f"{base}/{created['id']}", json={"event_types": ["nope"]})
        deleted = client.delete(f"{base}/{created['id']}")
        gone = client.get(f"{base}/{created['id']}")
    assert (["report.weekly", "traffic.drop"], 400, 204, 404) == (
        changed.json()["event_types"], refused.status_code, deleted.status_code, gone.status_code)


ROUTES = [
    ("GET", "/api/v1/sites/{site}/webhooks"),
    ("POST", "/api/v1/sites/{site}/webhooks"),
    ("GET", "/api/v1/sites/{site}/webhooks/{hook}"),
    ("PATCH", "/api/v1/sites/{site}/webhooks/{hook}"),
    ("POST", "/api/v1/sites/{site}/webhooks/{hook}/test"),
    ("GET", "/api/v1/sites/{site}/webhooks/{hook}/deliveries"),
    ("POST", "/api/v1/sites/{site}/webhooks/{hook}/deliveries/{delivery}/retry"),
    ("DELETE", "/api/v1/sites/{site}/webhooks/{hook}"),
    ("GET", "/api/v1/sites/{site}/alerts"),
    ("POST", "/api/v1/sites/{site}/alerts"),
    ("GET", "/api/v1/sites/{site}/alerts/{rule}/history"),
    ("PATCH", "/api/v1/sites/{site}/alerts/{rule}"),
    ("DELETE", "/api/v1/sites/{site}/alerts/{rule}"),
]
RULE = {"kind": "spike", "params": {"threshold": 5}, "recipients": ["ops@hooks.example"]}
OK = {"GET": 200, "POST": 201, "PATCH": 200, "DELETE": 204}


@pytest.mark.parametrize(("method", "path"), [pytest.param(m, p, id=f"{m} {p}") for m, p in ROUTES])
def test_authz_matrix(stack: Stack, site: Site, receiver: Receiver, method: str, path: str) -> None:
    """Every Webhooks and Alerts API route: no key 401, a key without sites:write 403, a viewer's, another
    site's or a revoked key 404; the owner's and an admin's keys succeed."""
    keys = {}
    for role in ("viewer", "admin", "other", "stats", "revoked"):
        user = stack.sql("INSERT INTO users (email, password_hash) VALUES (:e, 'x') RETURNING id",
                         e=f"{role}@hooks.example")[0][0]
        keys[role] = f"bk_integrations_{role}_key_0123456789"
        if role in ("viewer", "admin", "stats", "revoked"):
            stack.sql("INSERT INTO memberships (site_id, user_id, role) VALUES (:s, :u, :r)", s=site.id, u=user,
                      r="admin" if role in ("stats", "revoked") else role)
        else:
            other = stack.sql("INSERT INTO sites (domain) VALUES ('other.example') RETURNING id")[0][0]
            stack.sql("INSERT INTO memberships (site_id, user_id, role) VALUES (:s, :u, 'owner')", s=other, u=user)
        stack.sql("INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes, revoked_at) "
                  "VALUES (:u, 'k', 'bk_', :h, :s, CASE WHEN :r THEN now() END)", u=user,
                  h=hashlib.sha256(keys[role].encode()).digest(),
                  s=["stats:read"] if role == "stats" else ["sites:write"], r=role == "revoked")
    keys["owner"] = KEY
    with stack.client() as client:
        hook = client.post(f"/api/v1/sites/{site.domain}/webhooks",
                           json={"url": receiver.url("/ok"), "event_types": ["webhook.test"]}).json()["id"]
        delivery_id = client.post(f"/api/v1/sites/{site.domain}/webhooks/{hook}/test").json()["id"]
        rule = client.post(f"/api/v1/sites/{site.domain}/alerts", json=RULE).json()["id"]
    stack.sql("UPDATE webhook_deliveries SET status = 'failed' WHERE id = :d", d=delivery_id)
    body = {"url": receiver.url("/ok"), "event_types": ["webhook.test"]} if method in ("POST", "PATCH") else None
    if path.endswith(("/test", "/retry")):
        body = None
    if "/alerts" in path and method == "POST":
        body = RULE
    if "/alerts" in path and method == "PATCH":
        body = {"enabled": False}
    expected = {"anonymous": 401, "stats": 403, "revoked": 401, "viewer": 404, "other": 404}
    got: dict[str, int] = {}
    for caller in ("anonymous", "stats", "revoked", "viewer", "other", "admin", "owner"):
        url = path.format(site=site.domain, hook=hook, delivery=delivery_id, rule=rule)
        headers = {} if caller == "anonymous" else {"Authorization": f"Bearer {keys[caller]}"}
        response = httpx.request(method, stack.api + url, json=body, headers=headers, timeout=15)
        got[caller] = response.status_code
        if method == "DELETE" and response.status_code == 204 and "/alerts" in path:
            with stack.client() as client:
                rule = client.post(f"/api/v1/sites/{site.domain}/alerts", json=RULE).json()["id"]
        elif method == "DELETE" and response.status_code == 204:  # the next caller deletes a new one
            with stack.client() as client:
                hook = client.post(f"/api/v1/sites/{site.domain}/webhooks",
                                   json={"url": receiver.url("/ok"), "event_types": ["webhook.test"]}).json()["id"]
        if path.endswith("/retry") and response.status_code == 202:
            stack.sql("UPDATE webhook_deliveries SET status = 'failed' WHERE id = :d", d=delivery_id)
    ok = 202 if path.endswith(("/test", "/retry")) else OK[method]
    assert {**expected, "admin": ok, "owner": ok} == got
