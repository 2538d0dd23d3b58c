"""Monthly partitions created ahead, served by per-site time-range indexes; analytics queries still work."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import make_async_engine, make_engine
from app.core.settings import Settings
from services.analytics import logic
from tests.support.ingest import sql
from tests.support.workers import worker_context
from workers.actors.ingest import ensure_partitions
from workers.context import WorkerContext


@pytest.fixture
def worker(settings: Settings) -> Iterator[WorkerContext]:
    with worker_context(settings) as context:
        yield context


def month_partitions(settings: Settings) -> list[str]:
    return [str(name) for (name,) in sql(settings, "SELECT c.relname FROM pg_inherits i JOIN pg_class c "
                                                   "ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass "
                                                   "AND c.relname <> 'events_default' ORDER BY 1")]


def test_partitions_cover_last_month_to_three_ahead(settings: Settings, db: None, worker: WorkerContext) -> None:
    """The scheduler's job creates what is missing and nothing twice."""
    ensure_partitions(worker, 3)
    assert 0 == ensure_partitions(worker, 3)
    today = datetime.now(UTC).date().replace(day=1)
    expected = []
    for offset in range(-1, 4):
        month = (today.month - 1 + offset) % 12 + 1
        year = today.year + (today.month - 1 + offset) // 12
        expected.append(f"events_{year:04d}_{month:02d}")
    assert set(expected) <= set(month_partitions(settings))
    assert 1 == ensure_partitions(worker, 4)
    sql(settings, "DROP TABLE IF EXISTS events_" + (
        f"{today.year + (today.month + 3) // 12:04d}_{(today.month + 3) % 12 + 1:02d}"))


def test_rows_in_the_default_partition_move_to_their_month(settings: Settings, sites: dict[str, int],
                                                            worker: WorkerContext) -> None:
    """A month the default partition holds rows of still gets its partition, with those rows moved into it.

    Rows land in the default partition when their month has no partition yet (the scheduler down for months,
    a clock far off). Creating the month's partition then must not fail, and must lose nothing.
    """
    ensure_partitions(worker, 3)
    today = datetime.now(UTC).date().replace(day=1)
    def months_ahead(n: int) -> date:
        return date(today.year + (today.month - 1 + n) // 12, (today.month - 1 + n) % 12 + 1, 1)

    ahead = months_ahead(5)
    site = sites["example.com"]
    for moment in ("2020-03-15 12:00+00", "2020-03-31 23:59:59+00", f"{ahead} 08:00+00"):
        sql(settings, "INSERT INTO events (site_id, timestamp, name, visitor_id, hostname, pathname) "
                      "VALUES (:site, :at, 'pageview', 1, 'example.com', '/')", {"site": site, "at": moment})
    assert [(3,)] == sql(settings, "SELECT count(*) FROM events_default")
    try:
        # Four and five months ahead (the latter failed before: a row of it was stored), and 2020-03.
        assert 3 == ensure_partitions(worker, 5)
        assert [(0,)] == sql(settings, "SELECT count(*) FROM events_default")
        assert [(2,)] == sql(settings, "SELECT count(*) FROM events_2020_03")
        assert [(3,)] == sql(settings, "SELECT count(*) FROM events WHERE site_id = :site", {"site": site})
        # The moved partition is a full member: primary key, indexes and the site's foreign key apply.
        assert sql(settings, "SELECT count(*) FROM pg_indexes WHERE tablename = 'events_default'") == sql(
            settings, "SELECT count(*) FROM pg_indexes WHERE tablename = 'events_2020_03'")
        sql(settings, "DELETE FROM sites WHERE id = :site", {"site": site})
        assert [(0,)] == sql(settings, "SELECT count(*) FROM events_2020_03")
    finally:
        sql(settings, f"DROP TABLE IF EXISTS events_2020_03, events_{months_ahead(4):%Y_%m}, events_{ahead:%Y_%m}")


def test_site_time_range_query_reads_one_partition(settings: Settings, db: None) -> None:
    """A per-site query over one month touches that month's partition through the (site_id, timestamp) index."""
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # empty tables: make the planner show the index
        plan = "\n".join(str(row[0]) for row in conn.execute(text(
            "EXPLAIN SELECT count(*) FROM events WHERE site_id = 1 AND timestamp >= :start AND timestamp < :end"),
            {"start": start, "end": now}))
    engine.dispose()
    assert f"events_{now:%Y_%m}" in plan
    assert plan.count("events_") == plan.count(f"events_{now:%Y_%m}")  # pruned to one partition
    assert "Index" in plan or "Bitmap" in plan


async def test_analytics_queries_run_on_partitioned_events(settings: Settings, db: None) -> None:
    """services/analytics/logic.py counts and buckets events from the partitioned table."""


    sql(settings, "INSERT INTO sites (domain) VALUES ('a.test')")
    (site_id,) = sql(settings, "SELECT id FROM sites")[0]
    sql(settings, "INSERT INTO events (site_id, timestamp, name, visitor_id, hostname, pathname) VALUES "
                  "(:s, now(), 'pageview', 1, 'a.test', '/'), (:s, now(), 'pageview', 2, 'a.test', '/')",
        {"s": site_id})
    engine = make_async_engine(settings.database)
    today = datetime.now(UTC).date()
    async with AsyncSession(engine) as session:
        start, end = logic.bounds(today, today, "UTC")
        total = await logic.pageviews(session, int(str(site_id)), start, end)
        daily = await logic.daily_pageviews(session, int(str(site_id)), today, today, "UTC")
    await engine.dispose()
    assert (2, [(date.fromisoformat(str(today)), 2)]) == (total, daily)
