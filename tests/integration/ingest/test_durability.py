"""PostgreSQL stopped in the middle of a load run: every acknowledged event is stored, and ingest recovers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from app.core.settings import DEFAULT_PORTS, RedisSettings, Settings, load_settings
from app.devstack import Postgres, Redis, free_port
from app.migrate import migrate
from tests.support.ingest import UA, IngestProcesses, ingest_client, sql
from tests.support.servers import make_environment, running_postgres

CLIENTS = 32
RUN_SECONDS = 10.0
STOP_AT, START_AT = 3.0, 6.0


@pytest.fixture
def own_postgres(state_dir: Path) -> Iterator[Postgres]:
    """A PostgreSQL of this test alone: stopping it must not disturb the session's."""
    with running_postgres(state_dir / "pg-durability") as server:
        yield server


async def load(url: str, stop_at: float) -> tuple[set[int], Counter[int], list[str], float]:
    """Post unique events from CLIENTS concurrent clients until ``stop_at``; the ids answered 202."""
    acknowledged: set[int] = set()
    statuses: Counter[int] = Counter()
    retry_after: list[str] = []
    counter = iter(range(10**9))
    last_ok = 0.0

    async def client_loop(index: int) -> None:
        nonlocal last_ok
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while time.monotonic() < stop_at:
                n = next(counter)
                try:
                    response = await client.post("/api/event", headers={
                        "User-Agent": UA, "X-Forwarded-For": f"198.51.100.{index}", "Content-Type": "text/plain"},
                        content=f'{{"n":"pageview","u":"https://durable.test/p/{n}","d":"durable.test",'
                                f'"p":{{"n":"{n}"}}}}')
                except httpx.HTTPError:
                    statuses[0] += 1
                    continue
                statuses[response.status_code] += 1
                if response.status_code == 202:
                    acknowledged.add(n)
                    last_ok = time.monotonic()
                elif response.status_code == 503:
                    retry_after.append(response.headers.get("retry-after", ""))
                    await asyncio.sleep(0.05)

    await asyncio.gather(*(client_loop(i) for i in range(CLIENTS)))
    return acknowledged, statuses, retry_after, last_ok


@pytest.mark.parametrize("hold", ["0", "default"])
def test_no_acknowledged_event_is_lost_when_postgres_stops(own_postgres: Postgres, redis_server: Redis,
                                                           state_dir: Path, hold: str) -> None:
    """202s ⊆ rows while PostgreSQL goes away for 3 s and comes back; no 500.

    With ``BEACON_INGEST_HOLD_SECONDS=0`` the requests of the outage answer 503 with Retry-After; with the
    default hold (20 s, longer than the outage) they wait and are stored: none is refused.
    """
    environment = make_environment(own_postgres, redis_server, state_dir / f"durability-{hold}", "beacon_durable",
                                   redis_db=3, ports={name: free_port() for name in DEFAULT_PORTS})
    if hold != "default":
        environment["BEACON_INGEST_HOLD_SECONDS"] = hold
    settings = load_settings(environment)
    migrate(settings)
    sql(settings, "INSERT INTO sites (domain) VALUES ('durable.test')")
    processes = IngestProcesses(environment, count=2)
    processes.start()
    start = time.monotonic()
    outage = threading.Timer(STOP_AT, own_postgres.stop)
    back = threading.Timer(START_AT, own_postgres.start)
    try:
        outage.start()
        back.start()
        acknowledged, statuses, retry_after, last_ok = asyncio.run(load(processes.url, start + RUN_SECONDS))
    finally:
        outage.cancel()
        back.join()
        processes.stop()
        redis.Redis.from_url(settings.redis.url).flushdb()
    stored = {int(str(n)) for (n,) in sql(settings, "SELECT props->>'n' FROM events")}
    print(f"hold {hold}: statuses {dict(statuses)}; acknowledged {len(acknowledged)}; stored {len(stored)}")
    assert set() == acknowledged - stored
    if hold == "default":
        assert {202} == set(statuses), statuses  # held through the outage, none refused
    else:
        assert statuses[503] > 0, statuses  # the outage was noticed
        assert {"5"} == set(retry_after)
        assert set(statuses) <= {0, 202, 503}, statuses
    assert last_ok > start + START_AT + 0.5  # accepting again after PostgreSQL came back


async def test_events_are_stored_while_redis_is_down(settings: Settings, sites: dict[str, int]) -> None:
    """Redis is for limits, visits and live updates, not for the record: without it events are still stored."""
    dead = dataclasses.replace(settings, redis=RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0"))
    async with ingest_client(dead) as client:
        statuses = [(await client.post("/api/event", headers={"User-Agent": UA, "X-Forwarded-For": "198.51.100.9"},
                                       content=json.dumps({"name": "pageview", "url": f"https://example.com{path}",
                                                           "domain": "example.com"}))).status_code
                    for path in ("/one", "/two")]
    assert [202, 202] == statuses
    rows = sql(settings, "SELECT pathname, session_id FROM events ORDER BY id")
    assert ["/one", "/two"] == [row[0] for row in rows]
    assert rows[0][1] == rows[1][1] != 0  # one visit, from the fallback id
    assert [(2,)] == sql(settings, "SELECT pageviews FROM sessions")
