"""Dashboard query latency on a generated data set: the eight panels x filters x ranges; served, raw, cached.

Run: ``make bench PYTEST_ARGS=tests/benchmarks/bench_analytics.py``; ``BEACON_BENCH_EVENTS`` sets the
size (default 1,000,000 events over 365 days on one site, plus three small sites). Prints p50/p95 per
query for the answer Beacon serves uncached (the planner's source: rollups, the visits table, events, or
events joined with visits), the same answer computed by the raw engine (visits from window functions over
the events: the baseline), their ratio, the answer from the Redis cache, and which sources served it (every
statement's path, as the analytics service's histogram counts them: a rate or scroll depth read apart shows both
parts, e.g. ``2 rollups``). Each pair of answers is checked to be equal. Then bytes on disk per event and the
time to roll up one day.

``BEACON_BENCH_FILTERS`` picks filter sets by name (default: all of FILTERS), ``BEACON_BENCH_RANGES`` the
ranges (default ``day,7d,30d,month,12mo``), ``BEACON_BENCH_PANELS`` the panels (default: all eight).
``BEACON_BENCH_ROLLUP=0`` only loads the data set (into ``BEACON_BENCH_DIR``); ``BEACON_BENCH_ROLLUP_JOBS=N``
rolls it up N week-long chunks at a time the first time (the rollup job rolls one at a time). After rolling up
more than a chunk's days the run vacuums the rollups and warms the visits' indexes as ``beacon analytics refresh``
and the rollup job do (``rollups.warm``); ``BEACON_BENCH_WARM=0`` skips the warming (runs before 28 did not warm).
``BEACON_BENCH_NOW`` (an ISO 8601 instant, e.g. ``2026-11-30T22:30:00+00:00``) sets the clock the run reads:
a data set kept in ``BEACON_BENCH_DIR`` ends on the day it was generated, so measuring it again a day later
needs the clock of that day (otherwise "today" and "this month" hold no data and the roll-up moves on).
``BEACON_BENCH_BASELINE=join`` compares with the events joined with their visits' rows (the planner's join
path, itself compared with the raw engine by the integration tests) instead of the raw engine: at 10 M events
a raw 12-month statement runs for minutes, the join for seconds, so the rollups' 12-month answers can be
checked against a second, independent path; the rows the join serves itself say nothing then.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.db import make_async_engine, make_engine, sessionmaker_for
from app.core.metrics import ANALYTICS_QUERY_SECONDS
from app.core.redis import Keys
from app.core.settings import Settings
from app.domain.dashboard.services import BREAKDOWN_METRICS, DEFAULT_METRICS, TOP_METRICS
from services.analytics import engine, planner, rollups
from services.analytics.cache import cached
from services.analytics.query import parse_query
from tests.support.datagen import generate

EVENTS = int(os.environ.get("BEACON_BENCH_EVENTS", "1000000"))
RUNS = int(os.environ.get("BEACON_BENCH_RUNS", "5"))
# The raw baseline over 12 months of 10 M events takes minutes per query: fewer runs of it keep the run short.
RAW_RUNS = max(1, int(os.environ.get("BEACON_BENCH_RAW_RUNS", str(RUNS))))
RANGES = [r for r in os.environ.get("BEACON_BENCH_RANGES", "day,7d,30d,month,12mo").split(",") if r]
# A raw statement cut at this many seconds counts as "longer than that" (0: no limit), so the ratio is a bound.
RAW_LIMIT_S = int(os.environ.get("BEACON_BENCH_RAW_LIMIT_S", "0"))
# 0: load the data set into BEACON_BENCH_DIR and stop, without rolling it up or timing queries (a 10 M-event
# roll-up takes an hour or more; loading first lets the roll-up run on its own with its time printed).
ROLL_UP = os.environ.get("BEACON_BENCH_ROLLUP", "1") != "0"
# Chunks rolled up at a time when the data set is first rolled up (the rollup job rolls one at a time).
ROLLUP_JOBS = int(os.environ.get("BEACON_BENCH_ROLLUP_JOBS", "1"))
WARM = os.environ.get("BEACON_BENCH_WARM", "1") != "0"
BASELINE = os.environ.get("BEACON_BENCH_BASELINE", "raw")
if BASELINE not in ("raw", "join"):
    raise pytest.UsageError(f"BEACON_BENCH_BASELINE={BASELINE!r}: raw or join")
SITE = "bench.example"
TZ = "Europe/Berlin"
_PINNED = os.environ.get("BEACON_BENCH_NOW")


def bench_now() -> datetime:
    """The run's clock: ``BEACON_BENCH_NOW`` if set (an aware ISO 8601 instant), otherwise the real time."""
    if not _PINNED:
        return datetime.now(UTC)
    pinned = datetime.fromisoformat(_PINNED)
    if pinned.tzinfo is None:
        raise pytest.UsageError(f"BEACON_BENCH_NOW={_PINNED!r} has no UTC offset (e.g. 2026-11-30T22:30:00+00:00)")
    return pinned.astimezone(UTC)

DASHBOARD = {
    # The dashboard's own queries (app.domain.dashboard.services): its top stats without a goal or page filter
    # (under a page filter it adds time on page and scroll depth, under a goal filter it shows conversions and
    # the conversion rate: this matrix keeps the same six tiles for every filter), and each report's metrics.
    "aggregate": {"metrics": list(TOP_METRICS)},
    "timeseries": {"metrics": ["visitors", "pageviews"], "dimensions": ["time"]},
    "pages": {"metrics": list(BREAKDOWN_METRICS["page"]), "dimensions": ["event:page"], "pagination": {"limit": 10}},
    "entry pages": {"metrics": list(BREAKDOWN_METRICS["entry_page"]), "dimensions": ["visit:entry_page"],
                    "pagination": {"limit": 10}},
    **{name: {"metrics": list(DEFAULT_METRICS), "dimensions": [dimension], "pagination": {"limit": 10}}
       for name, dimension in (("sources", "visit:source"), ("countries", "visit:country"),
                               ("devices", "visit:device"), ("browsers", "visit:browser"))},
}


COUNTRY = ["is", "visit:country", ["DE"]]
FILTERS: dict[str, list[Any]] = {
    "none": [],
    "country": [COUNTRY],
    "source": [["is", "visit:source", ["Google"]]],
    "page": [["is", "event:page", ["/"]]],
    "goal": [["is", "event:goal", ["Signup"]]],
    "property": [["is", "event:props:plan", ["pro"]]],
    "two": [COUNTRY, ["is", "visit:source", ["Google"]]],
}
FILTER_NAMES = [f for f in os.environ.get("BEACON_BENCH_FILTERS", ",".join(FILTERS)).split(",") if f]
PANELS = [p for p in os.environ.get("BEACON_BENCH_PANELS", ",".join(DASHBOARD)).split(",") if p]


def panel_query(name: str, filter_name: str, range_name: str) -> dict[str, Any]:
    """A dashboard panel's Stats API query under a filter; with a goal filter the aggregate shows the
    conversion rate and each report the goal's conversions and their rate among the row's visitors, as the
    dashboard asks them (``services.breakdown``)."""
    body: dict[str, Any] = {"site_id": SITE, "date_range": range_name, **DASHBOARD[name],
                            "filters": FILTERS[filter_name]}
    if filter_name == "goal" and name == "aggregate":
        body["metrics"] = [*body["metrics"], "conversion_rate"]
    elif filter_name == "goal" and name != "timeseries":
        body["metrics"] = ["visitors", "group_conversion_rate"]
    return body


def answered_by() -> dict[str, float]:
    """Statements answered so far per planner path (``rollups``, ``visits``, ``events``, ``join``): the counts of
    the analytics service's ``beacon_analytics_query_duration_seconds`` histogram in this process."""
    return {sample.labels["path"]: sample.value for metric in ANALYTICS_QUERY_SECONDS.collect()
            for sample in metric.samples if sample.name.endswith("_count")}


def paths_since(before: dict[str, float]) -> str:
    """The paths of the statements answered since ``before`` (:func:`answered_by`), e.g. ``rollups+events`` for the
    pages panel with its scroll depth read apart, ``2 rollups`` for a rate whose two parts the rollups serve."""
    counts = {path: int(n - before.get(path, 0)) for path, n in answered_by().items()}
    return "+".join(path if n == 1 else f"{n} {path}" for path, n in counts.items() if n) or "none"


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
        today = bench_now().date()
        big = generate(settings.database.libpq_url, ids[0], SITE, events=EVENTS, days=365, end=today, tz=TZ)
        for n, site_id in enumerate(ids[1:], start=2):
            generate(settings.database.libpq_url, site_id, f"small-{n}.example", events=EVENTS // 200, days=365,
                     end=today, tz=TZ, seed=n)
        print(f"\nloaded {big.events:,} events in {big.visits:,} visits in {big.seconds:.1f} s "
              f"({big.events / big.seconds:,.0f} events/s)")
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM goals WHERE site_id = %s", (ids[0],)).fetchone():
            conn.execute("INSERT INTO goals (site_id, display_name, event_name) VALUES (%s, 'Signup', 'Signup')",
                         (ids[0],))
    if not ROLL_UP:
        pytest.skip("BEACON_BENCH_ROLLUP=0: loaded only")
    started = time.perf_counter()
    db = make_engine(settings.database)
    rolled = 0
    for site_id in ids:
        if ROLLUP_JOBS > 1:
            rolled += _roll_up_in_parallel(db, site_id)
        while True:
            with db.begin() as conn:
                if not (days := rollups.refresh(conn, site_id, bench_now()).days):
                    break
                rolled += days
    print(f"rolled up {rolled} days of every site in {time.perf_counter() - started:.1f} s ({ROLLUP_JOBS} at a time)")
    # What `beacon analytics refresh` does after a long roll-up: statistics, and the visibility map that lets
    # the rollups' index-only scans skip the heap.
    with db.connect() as conn:
        rollups.vacuum(conn.execution_options(isolation_level="AUTOCOMMIT"))
    # ... and, after more than a chunk's days, the visits' indexes read back into PostgreSQL's buffers, which the
    # roll-up pushed out (rollups.warm), as the CLI and the rollup job do; BEACON_BENCH_WARM=0 leaves them cold.
    if rolled > rollups.WARM_AFTER_DAYS and WARM:
        began = time.perf_counter()
        with db.begin() as conn:
            warmed = rollups.warm(conn)
        print(f"warmed the visits' indexes in {time.perf_counter() - began:.1f} s: " + (", ".join(
            f"{index} {blocks * 8192 / 2**20:.0f} MB" for index, blocks in warmed.items()) if warmed is not None
            else "no pg_prewarm extension"))
    db.dispose()
    return ids[0]


def _roll_up_in_parallel(db: Any, site_id: int) -> int:
    """The site's final days not rolled up yet, as the rollup job's refreshes roll them (a chunk of
    ``rollups.CHUNK_DAYS`` per transaction), ``ROLLUP_JOBS`` chunks at a time; then the site's state says so,
    and the refreshes after it go on from there (the provisional day, nothing else)."""
    with db.begin() as conn:
        if conn.execute(text("SELECT 1 FROM rollup_state WHERE site_id = :s"), {"s": site_id}).first():
            return 0
        oldest = conn.execute(text("SELECT min(timestamp) FROM events WHERE site_id = :s"), {"s": site_id}).scalar()
    if oldest is None:
        return 0
    first = oldest.astimezone(ZoneInfo(TZ)).date()
    target = bench_now().astimezone(ZoneInfo(TZ)).date() - timedelta(days=rollups.FINAL_AFTER_DAYS)
    chunks = [(day, min(target, day + timedelta(days=rollups.CHUNK_DAYS - 1)))
              for day in (first + timedelta(days=n) for n in range(0, (target - first).days + 1, rollups.CHUNK_DAYS))]

    def roll(chunk: tuple[date, date]) -> float:
        began = time.perf_counter()
        with db.begin() as conn:
            rollups._roll(conn, site_id, chunk[0], chunk[1], TZ)
        took = time.perf_counter() - began
        print(f"  site {site_id}: {chunk[0]}..{chunk[1]} rolled up in {took:.1f} s", flush=True)
        return took

    with ThreadPoolExecutor(ROLLUP_JOBS) as pool:
        seconds = list(pool.map(roll, chunks))
    with db.begin() as conn:
        conn.execute(text("INSERT INTO rollup_state (site_id, timezone, rolled_until) VALUES (:s, :tz, :day)"),
                     {"s": site_id, "tz": TZ, "day": target})
    print(f"site {site_id}: {len(chunks)} chunks of {rollups.CHUNK_DAYS} days, {sum(seconds):.0f} s of statements, "
          f"slowest chunk {max(seconds):.1f} s")
    return (target - first).days + 1


@pytest.mark.timeout(14400)
async def test_dashboard_queries(settings: Settings, loaded: int) -> None:
    """p50/p95 of each dashboard panel under each filter and range: served, raw and cached; then bytes on disk
    per event and the time to roll up one day."""
    db = make_async_engine(settings.database)
    sessions = sessionmaker_for(db)
    client = aioredis.Redis.from_url(settings.redis.url)
    keys = Keys(settings.redis.key_prefix)
    now = bench_now()
    timeouts: list[str] = []
    print(f"\nclock {now.isoformat()}{' (BEACON_BENCH_NOW)' if _PINNED else ''}, served runs {RUNS}, "
          f"raw runs {RAW_RUNS}{' (the join: BEACON_BENCH_BASELINE)' if BASELINE == 'join' else ''}, "
          f"raw statements cut at {RAW_LIMIT_S or 'no limit'} s, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'query':<12}{'filter':>9}{'range':>6} {'served p50':>11}{'p95':>9} {'raw p50':>10}{'p95':>9} "
          f"{'raw/served':>11} {'cached p50':>11}{'p95':>8} {'equal':>6} source")
    try:
        async with sessions() as session:
            goals = await engine.load_goals(session, loaded)
        for range_name in RANGES:
            for filter_name in FILTER_NAMES:
                for name in PANELS:
                    body = panel_query(name, filter_name, range_name)
                    query = parse_query(body, timezone=TZ, now=now)
                    source = ""
                    cut = False
                    equal = "yes"
                    served: list[float] = []
                    raw: list[float] = []
                    warm: list[float] = []
                    for run in range(max(RUNS, RAW_RUNS)):
                        if run < RUNS:
                            before = answered_by()
                            started = time.perf_counter()
                            try:
                                async with sessions() as session:
                                    answer = await planner.answer(session, query, loaded)
                            except DBAPIError as exc:
                                # Over the deployment's statement timeout: reported, not fatal to the run.
                                if "statement timeout" not in str(exc):
                                    raise
                                answer, equal = None, "TIMEOUT"
                                timeouts.append(f"{name} / {filter_name} / {range_name} (run {run + 1})")
                            served.append((time.perf_counter() - started) * 1000)
                            if run == 0:
                                source = paths_since(before)
                        if run < RAW_RUNS:
                            started = time.perf_counter()
                            try:
                                async with sessions() as session:
                                    # A year of 10 M raw events takes longer than the 30 s statement timeout.
                                    await session.execute(text(f"SET LOCAL statement_timeout = {RAW_LIMIT_S * 1000}"))
                                    baseline = await (engine.run(session, query, loaded) if BASELINE == "raw" else
                                                      engine.run(session, query, loaded, "table", goals))
                            except DBAPIError as exc:
                                if "statement timeout" not in str(exc):
                                    raise
                                cut, equal = True, "cut" if equal == "yes" else equal
                            else:
                                if answer is not None:
                                    assert (answer.rows, answer.total_rows) == (baseline.rows, baseline.total_rows), \
                                        body
                            raw.append((time.perf_counter() - started) * 1000)
                    await client.flushdb()
                    for _ in range(RUNS + 1):
                        started = time.perf_counter()
                        try:
                            async with sessions() as session:
                                async def compute(session: Any = session, query: Any = query) -> Any:
                                    return engine.response(query, await planner.answer(session, query, loaded), now)

                                result: Any = await cached(client, keys, 60, "v2", loaded, body, compute)
                        except DBAPIError as exc:  # the cache's first fill timed out
                            if "statement timeout" not in str(exc):
                                raise
                            result, equal = {"timed out": True}, "TIMEOUT"
                            timeouts.append(f"{name} / {filter_name} / {range_name} (filling the cache)")
                        warm.append((time.perf_counter() - started) * 1000)
                    warm = warm[1:]  # the first run fills the cache
                    assert result
                    over = ">" if cut else " "  # the raw statement was cut at RAW_LIMIT_S: a lower bound
                    ratio = pct(raw, .5) / pct(served, .5)
                    print(f"{name:<12}{filter_name:>9}{range_name:>6} "
                          f"{pct(served, .5):>9.1f}ms{pct(served, .95):>7.1f}ms"
                          f" {over}{pct(raw, .5):>7.0f}ms{pct(raw, .95):>7.0f}ms {over}{ratio:>9.1f}x"
                          f" {pct(warm, .5):>9.2f}ms{pct(warm, .95):>6.2f}ms {equal:>6} {source}", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f}")
        print(f"served statements cut by the statement timeout ({settings.database.statement_timeout_ms} ms): "
              f"{len(timeouts)}{': ' if timeouts else ''}{'; '.join(timeouts)}")
        await _storage_and_rollup(settings, loaded)
    finally:
        await client.aclose()
        await db.dispose()


async def _storage_and_rollup(settings: Settings, site_id: int) -> None:
    """Bytes on disk per event of every site (tables with their indexes and TOAST), and one day's roll-up."""
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        events = conn.execute("SELECT count(*) FROM events").fetchone()
        assert events is not None
        total = 0
        for relation in ("events", "sessions", "rollup_spans", "rollup_days"):
            row = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "WHERE c.oid = %s::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits "
                "WHERE inhparent = %s::regclass)", (relation, relation)).fetchone()
            size = int(row[0]) if row else 0
            total += size
            print(f"{relation:<14}{size / 2**20:>10.1f} MiB {size / events[0]:>8.1f} bytes per event")
        print(f"{'total':<14}{total / 2**20:>10.1f} MiB {total / events[0]:>8.1f} bytes per event "
              f"({events[0]:,} events)")
    db = make_engine(settings.database)
    day = bench_now().date() - timedelta(days=10)
    with db.begin() as conn:
        started = time.perf_counter()
        rollups._roll(conn, site_id, day, day, TZ)
        print(f"rolled up one day ({day}) of {SITE} again in {(time.perf_counter() - started) * 1000:.0f} ms, "
              f"load average {os.getloadavg()[0]:.1f}")
    # The day's new rows sit on pages the visibility map does not mark all-visible until VACUUM, which a live
    # server's autovacuum runs within minutes (migration 0020). A kept data set's next run started without it:
    # its first queries read those rows from the heap (123,601 for the month's entry pages under a page filter)
    # while autovacuum, coming a minute in, read gigabytes of index beside them (docs/benchmarks.md, run 17).
    with db.connect() as conn:
        started = time.perf_counter()
        rollups.vacuum(conn.execution_options(isolation_level="AUTOCOMMIT"))
        print(f"vacuumed the rollup tables after it in {(time.perf_counter() - started) * 1000:.0f} ms")
    db.dispose()
