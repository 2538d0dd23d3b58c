"""Soak of the session store: anonymous page traffic leaves Redis as it found it.

The api application runs in this process (``create_app`` against the test PostgreSQL and Redis, its lifespan
opened) and a tight loop hands it 10,000 cookieless page requests as ASGI messages, every tenth with the kind
of junk session cookie a scanner sends. Redis' key count must not move and its ``used_memory`` must stay
within a few KB. The api gets a Redis server of its own: in the shared one, other tests' keys expiring during
the loop would move ``used_memory`` by tens of KB.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar import Litestar

from app.core.sessions import SESSION_COOKIE
from app.core.settings import Settings, load_settings
from app.devstack import Redis
from app.main import create_app
from tests.support.servers import running_redis

REQUESTS = int(os.environ.get("BEACON_SOAK_REQUESTS", "10000"))
PAGES = ("/login", "/register", "/", "/login?next=/account", "/account")
SLACK = 4 * 1024
"""Bytes ``used_memory`` may move by: one stored session alone is ~300 bytes, 10,000 of them megabytes."""


def measure(client: redis.Redis) -> tuple[int, int]:
    """(keys in every database, ``used_memory`` less what this measuring connection itself holds).

    Redis shrinks a connection's reply buffer a few seconds after its peak use (16 KB down to 1 KB), which
    alone moves ``used_memory`` by 15 KB; that buffer belongs to the measurement, not to Beacon.
    """
    keys = sum(int(db["keys"]) for name, db in client.info("keyspace").items() if name.startswith("db"))
    own = int(client.client_info()["tot-mem"])
    return keys, int(client.info("memory")["used_memory"]) - own


async def get(app: Litestar, target: str, cookie: str | None) -> tuple[int, list[bytes]]:
    """One GET as an ASGI server hands it over; the status and the ``Set-Cookie`` values of the answer."""
    path, _, query = target.partition("?")
    headers = [(b"host", b"127.0.0.1"), (b"accept", b"text/html"), (b"user-agent", b"soak")]
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "https",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": headers, "client": ("10.1.2.3", 40000), "server": ("127.0.0.1", 443)}
    started: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.update(message)

    await app(scope, receive, send)  # type: ignore[arg-type]
    return started["status"], [value for name, value in started["headers"] if name.lower() == b"set-cookie"]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Redis]:
    with running_redis(tmp_path / "redis") as server:
        yield server


async def test_ten_thousand_cookieless_page_requests_leave_redis_memory_flat(
        settings: Settings, environment: dict[str, str], own_redis: Redis) -> None:
    """10,000 page requests without a session (a tenth with junk session cookies) store nothing in Redis."""
    app = create_app(load_settings({**environment, "BEACON_REDIS_URL": own_redis.url(0)}))
    redis_client = redis.Redis.from_url(own_redis.url(0))
    async with app.lifespan():
        for path in PAGES:  # the app's pools and caches exist before the first measurement
            await get(app, path, None)
        keys_before, memory_before = measure(redis_client)
        statuses: Counter[int] = Counter()
        session_cookies_set = 0
        async with asyncio.timeout(600):
            for number, path in zip(range(REQUESTS), itertools.cycle(PAGES), strict=False):
                junk = f"{SESSION_COOKIE}=junk{number}-{secrets.token_hex(200)}" if number % 10 == 0 else None
                status, cookies = await get(app, path, junk)
                statuses[status] += 1
                session_cookies_set += sum(1 for value in cookies if value.startswith(f"{SESSION_COOKIE}=".encode())
                                           and not value.startswith(f'{SESSION_COOKIE}="";'.encode()))
        keys_after, memory_after = measure(redis_client)
    redis_client.close()
    assert {200: REQUESTS * 3 // 5, 302: REQUESTS * 2 // 5} == dict(statuses)
    assert 0 == session_cookies_set
    assert keys_before == keys_after
    assert abs(memory_after - memory_before) < SLACK, (memory_before, memory_after)


def test_redis_never_evicts(redis_client: redis.Redis) -> None:
    """The Redis Beacon runs against (app/devstack.py, as the Ansible role) refuses writes at its ceiling
    rather than evicting: queues, rate limits and sign-in counters never vanish under memory pressure."""
    assert {"maxmemory-policy": "noeviction"} == redis_client.config_get("maxmemory-policy")
