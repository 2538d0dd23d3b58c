"""Dashboard query latency on a generated data set: 30 days and 12 months; rollups, raw events, cache.

Run: ``make bench PYTEST_ARGS=tests/benchmarks/bench_analytics.py``; ``BEACON_BENCH_EVENTS`` sets the
size (default 1,000,000 events over 365 days on one site, plus three small sites). Prints p50/p95 per
query for the answer Beacon serves uncached (rollups where they apply, with today's and yesterday's events
read raw), the same answer computed from raw events only (the baseline), their ratio, and the answer from
the Redis cache. Each pair of answers is checked to be equal.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.db import make_async_engine, make_engine, sessionmaker_for
from app.core.redis import Keys
from app.core.settings import Settings
from services.analytics import engine, planner, rollups
from services.analytics.cache import cached
from services.analytics.query import parse_query
from tests.benchmarks.datagen import generate

EVENTS = int(os.environ.get("BEACON_BENCH_EVENTS", "1000000"))
RUNS = int(os.environ.get("BEACON_BENCH_RUNS", "5"))
# The raw baseline over 12 months of 10 M events takes minutes per query: fewer runs of it keep the run short.
RAW_RUNS = max(1, int(os.environ.get("BEACON_BENCH_RAW_RUNS", str(RUNS))))
RANGES = [r for r in os.environ.get("BEACON_BENCH_RANGES", "30d,12mo").split(",") if r]
# A raw statement cut at this many seconds counts as "longer than that" (0: no limit), so the ratio is a bound.
RAW_LIMIT_S = int(os.environ.get("BEACON_BENCH_RAW_LIMIT_S", "0"))
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
    domains = (SITE, "small-1.example", "small-2.example", "small-3.example")
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        kept = conn.execute("SELECT id FROM sites WHERE domain = ANY(%s) ORDER BY id", (list(domains),)).fetchall()
        if len(kept) == len(domains):
            ids = [int(row[0]) for row in kept]
            count = conn.execute("SELECT count(*) FROM events WHERE site_id = %s", (ids[0],)).fetchone()
            print(f"\nreusing the data set in BEACON_BENCH_DIR: {count[0] if count else 0:,} events on {SITE}")
        else:
            rows = [conn.execute("INSERT INTO sites (domain, timezone) VALUES (%s, %s) RETURNING id",
                                 (d, TZ)).fetchone() for d in domains]
            ids = [int(row[0]) for row in rows if row is not None]
    if not kept or len(kept) != len(domains):
        today = datetime.now(UTC).date()
        big = generate(settings.database.libpq_url, ids[0], SITE, events=EVENTS, days=365, end=today, tz=TZ)
        for n, site_id in enumerate(ids[1:], start=2):
            generate(settings.database.libpq_url, site_id, f"small-{n}.example", events=EVENTS // 200, days=365,
                     end=today, tz=TZ, seed=n)
        print(f"\nloaded {big.events:,} events in {big.visits:,} visits in {big.seconds:.1f} s "
              f"({big.events / big.seconds:,.0f} events/s)")
    started = time.perf_counter()
    db = make_engine(settings.database)
    for site_id in ids:
        while True:
            with db.begin() as conn:
                if not rollups.refresh(conn, site_id, datetime.now(UTC)).days:
                    break
    db.dispose()
    print(f"rolled up every site in {time.perf_counter() - started:.1f} s")
    return ids[0]


@pytest.mark.timeout(7200)
async def test_dashboard_queries(settings: Settings, loaded: int) -> None:
    """p50/p95 of each dashboard query for 30 days and 12 months, uncached and cached."""
    db = make_async_engine(settings.database)
    sessions = sessionmaker_for(db)
    client = aioredis.Redis.from_url(settings.redis.url)
    keys = Keys(settings.redis.key_prefix)
    now = datetime.now(UTC)
    print(f"\nserved runs {RUNS}, raw runs {RAW_RUNS}")
    print(f"{'query':<14}{'range':>6} {'served p50':>11}{'p95':>9} {'raw p50':>10}{'p95':>9} {'raw/served':>11}"
          f" {'cached p50':>11}{'p95':>8}")
    try:
        for range_name in RANGES:
            for name, body in DASHBOARD.items():
                query = parse_query({"site_id": SITE, "date_range": range_name, **body}, timezone=TZ, now=now)
                cut = False
                served: list[float] = []
                raw: list[float] = []
                warm: list[float] = []
                for run in range(max(RUNS, RAW_RUNS)):
                    if run < RUNS:
                        started = time.perf_counter()
                        async with sessions() as session:
                            answer = await planner.answer(session, query, loaded)
                        served.append((time.perf_counter() - started) * 1000)
                    if run < RAW_RUNS:
                        started = time.perf_counter()
                        try:
                            async with sessions() as session:
                                # A year of 10 M raw events takes longer than the 30 s statement timeout.
                                await session.execute(text(f"SET LOCAL statement_timeout = {RAW_LIMIT_S * 1000}"))
                                baseline = await engine.run(session, query, loaded)
                        except DBAPIError as exc:
                            if "statement timeout" not in str(exc):
                                raise
                            cut = True
                        else:
                            assert (answer.rows, answer.total_rows) == (baseline.rows, baseline.total_rows), name
                        raw.append((time.perf_counter() - started) * 1000)
                await client.flushdb()
                for _ in range(RUNS + 1):
                    started = time.perf_counter()
                    async with sessions() as session:
                        async def compute(session: Any = session, query: Any = query) -> Any:
                            return engine.response(query, await planner.answer(session, query, loaded), now)

                        result: Any = await cached(client, keys, 60, "v2", loaded, body | {"r": range_name}, compute)
                    warm.append((time.perf_counter() - started) * 1000)
                warm = warm[1:]  # the first run fills the cache
                assert result
                over = ">" if cut else " "  # the raw statement was cut at RAW_LIMIT_S: a lower bound
                ratio = pct(raw, .5) / pct(served, .5)
                print(f"{name:<14}{range_name:>6} {pct(served, .5):>9.1f}ms{pct(served, .95):>7.1f}ms"
                      f" {over}{pct(raw, .5):>7.0f}ms{pct(raw, .95):>7.0f}ms {over}{ratio:>9.1f}x"
                      f" {pct(warm, .5):>9.2f}ms{pct(warm, .95):>6.2f}ms")
    finally:
        await client.aclose()
        await db.dispose()
