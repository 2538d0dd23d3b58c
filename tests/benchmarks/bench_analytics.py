"""Dashboard query latency on a generated data set: 30 days and 12 months, uncached and cached.

Run: ``make bench PYTEST_ARGS="tests/benchmarks/bench_analytics.py"``; ``BEACON_BENCH_EVENTS`` sets the
size (default 1,000,000 events over 365 days on one site, plus three small sites). Prints p50/p95 per
query; "raw" is the engine over events (the baseline any rollup must beat and equal).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis

from app.core.db import make_async_engine, sessionmaker_for
from app.core.redis import Keys
from app.core.settings import Settings
from services.analytics import engine
from services.analytics.cache import cached
from services.analytics.query import parse_query
from tests.benchmarks.datagen import generate

EVENTS = int(os.environ.get("BEACON_BENCH_EVENTS", "1000000"))
RUNS = int(os.environ.get("BEACON_BENCH_RUNS", "5"))
SITE = "bench.example"
TZ = "Europe/Berlin"

DASHBOARD = {
    "aggregate": {"metrics": ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"]},
    "timeseries": {"metrics": ["visitors", "pageviews"], "dimensions": ["time"]},
    "pages": {"metrics": ["visitors", "pageviews"], "dimensions": ["event:page"], "pagination": {"limit": 10}},
    "entry pages": {"metrics": ["visits", "bounce_rate"], "dimensions": ["visit:entry_page"],
                    "pagination": {"limit": 10}},
    "sources": {"metrics": ["visitors", "bounce_rate"], "dimensions": ["visit:source"], "pagination": {"limit": 10}},
    "countries": {"metrics": ["visitors"], "dimensions": ["visit:country"], "pagination": {"limit": 10}},
    "devices": {"metrics": ["visitors"], "dimensions": ["visit:device"], "pagination": {"limit": 10}},
    "browsers": {"metrics": ["visitors"], "dimensions": ["visit:browser"], "pagination": {"limit": 10}},
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@pytest.fixture(scope="module")
def loaded(settings: Settings) -> int:
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        rows = [conn.execute("INSERT INTO sites (domain, timezone) VALUES (%s, %s) RETURNING id", (d, TZ)).fetchone()
                for d in (SITE, "small-1.example", "small-2.example", "small-3.example")]
    ids = [int(row[0]) for row in rows if row is not None]
    today = datetime.now(UTC).date()
    big = generate(settings.database.libpq_url, ids[0], SITE, events=EVENTS, days=365, end=today, tz=TZ)
    for n, site_id in enumerate(ids[1:], start=2):
        generate(settings.database.libpq_url, site_id, f"small-{n}.example", events=EVENTS // 200, days=365,
                 end=today, tz=TZ, seed=n)
    print(f"\nloaded {big.events:,} events in {big.visits:,} visits in {big.seconds:.1f} s "
          f"({big.events / big.seconds:,.0f} events/s)")
    return ids[0]


async def test_dashboard_queries(settings: Settings, loaded: int) -> None:
    """p50/p95 of each dashboard query for 30 days and 12 months, uncached and cached."""
    db = make_async_engine(settings.database)
    sessions = sessionmaker_for(db)
    client = aioredis.Redis.from_url(settings.redis.url)
    keys = Keys(settings.redis.key_prefix)
    now = datetime.now(UTC)
    print(f"\n{'query':<14}{'range':>6}  {'raw p50':>9}{'raw p95':>9}  {'cached p50':>11}{'cached p95':>11}")
    try:
        for range_name in ("30d", "12mo"):
            for name, body in DASHBOARD.items():
                query = parse_query({"site_id": SITE, "date_range": range_name, **body}, timezone=TZ, now=now)
                raw: list[float] = []
                warm: list[float] = []
                for _ in range(RUNS):
                    started = time.perf_counter()
                    async with sessions() as session:
                        result: Any = await engine.run(session, query, loaded)
                    raw.append((time.perf_counter() - started) * 1000)
                await client.flushdb()
                for _ in range(RUNS + 1):
                    started = time.perf_counter()
                    async with sessions() as session:
                        async def compute(session: Any = session, query: Any = query) -> Any:
                            return engine.response(query, await engine.run(session, query, loaded), now)

                        result = await cached(client, keys, 60, "v2", loaded, body | {"r": range_name}, compute)
                    warm.append((time.perf_counter() - started) * 1000)
                warm = warm[1:]  # the first run fills the cache
                assert result
                print(f"{name:<14}{range_name:>6}  {pct(raw, .5):>8.1f}ms{pct(raw, .95):>7.1f}ms  "
                      f"{pct(warm, .5):>9.2f}ms{pct(warm, .95):>9.2f}ms")
    finally:
        await client.aclose()
        await db.dispose()
