"""Imports and exports on a generated data set: the CSV export, its import, and dashboard queries with imports.

Run: ``.venv/bin/python -m pytest tests/benchmarks/bench_export_queries.py -s -q -p no:randomly``;
``BEACON_BENCH_EVENTS`` sets the size (default 50,000 events over 365 days). One site's year is exported
(the analytics service's zip, built in-process) and imported by the Plausible importer into a second site that
also has its own native traffic over the last 90 days. Prints the export's and the import's time and rate,
then p50/p95 of the dashboard's panels over 12 months on the second site with ``include.imports`` (native and
imported merged) and without (native only: the same-run baseline), and their ratio.
"""

from __future__ import annotations

import io
import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.core.db import make_async_engine, make_engine, sessionmaker_for
from app.core.settings import Settings
from services.analytics import export, planner
from services.analytics.query import parse_query
from services.integrations.imports import job, store
from services.integrations.imports.files import imports_dir, store_stream
from tests.support.datagen import generate

EVENTS = int(os.environ.get("BEACON_BENCH_EVENTS", "50000"))
RUNS = int(os.environ.get("BEACON_BENCH_RUNS", "5"))
TZ = "UTC"
PANELS: dict[str, dict[str, Any]] = {
    "aggregate": {"metrics": ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"]},
    "timeseries": {"metrics": ["visitors", "pageviews"], "dimensions": ["time:month"]},
    "pages": {"metrics": ["visitors", "pageviews"], "dimensions": ["event:page"], "pagination": {"limit": 10}},
    "sources": {"metrics": ["visitors", "bounce_rate"], "dimensions": ["visit:source"], "pagination": {"limit": 10}},
    "countries": {"metrics": ["visitors"], "dimensions": ["visit:country"], "pagination": {"limit": 10}},
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.mark.timeout(1800)
async def test_export_import_and_queries(settings: Settings, db: None, tmp_path: Path) -> None:
    """Figures only: export and import rates, and the cost of merging imports into dashboard answers."""
    today = datetime.now(UTC).date()
    last = today - timedelta(days=1)
    first = last - timedelta(days=364)
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        ids = [conn.execute("INSERT INTO sites (domain, timezone, created_at) VALUES (%s, 'UTC', %s) RETURNING id",
                            (domain, datetime(2020, 1, 1, tzinfo=UTC))).fetchone() for domain in
               ("year.example", "both.example")]
    source_id, target_id = (int(row[0]) for row in ids if row is not None)
    generate(settings.database.libpq_url, source_id, "year.example", events=EVENTS, days=365, end=last, tz=TZ)
    generate(settings.database.libpq_url, target_id, "both.example", events=EVENTS // 4, days=90, end=last, tz=TZ,
             seed=3)

    db_engine = make_async_engine(settings.database)
    sessions = sessionmaker_for(db_engine)
    buffer = io.BytesIO()
    started = time.perf_counter()
    async with sessions() as session:
        async for chunk in export.stream(session, source_id, "year.example", TZ, first, last - timedelta(days=90)):
            buffer.write(chunk)
    export_s = time.perf_counter() - started
    print(f"\nexport: {EVENTS} events over 275 days -> {buffer.tell() / 1e6:.1f} MB zip in {export_s:.1f} s "
          f"({EVENTS * 275 / 365 / export_s:,.0f} events/s)")

    limits = settings.imports
    stored = store_stream(io.BytesIO(buffer.getvalue()), imports_dir(settings.paths.state_dir), store.upload_name(),
                          limits.max_upload)
    engine = make_engine(settings.database)
    try:
        import_id = store.create_import(engine, target_id, "plausible", stored, "year.zip", limits)
        started = time.perf_counter()
        assert "completed" == job.run_import(engine, limits, import_id)
        import_s = time.perf_counter() - started
        rows = store.read_import(engine, import_id).rows
    finally:
        engine.dispose()
    print(f"import: {rows:,} rows in {import_s:.1f} s ({rows / import_s:,.0f} rows/s)")

    now = datetime.now(UTC)
    print(f"{'panel':<12}{'imports p50':>12}{'p95':>8}{'native p50':>12}{'p95':>8}{'ratio':>7}  meta")
    try:
        for name, panel in PANELS.items():
            timings: dict[bool, list[float]] = {True: [], False: []}
            meta: dict[str, Any] = {}
            for _ in range(RUNS):
                for imports in (True, False):
                    body = {"site_id": "both.example", "date_range": "12mo", "date": date.today().isoformat(),
                            **panel, "include": {"imports": imports}}
                    query = parse_query(body, timezone=TZ, now=now)
                    async with sessions() as session:
                        began = time.perf_counter()
                        result = await planner.answer(session, query, target_id)
                        timings[imports].append(time.perf_counter() - began)
                    if imports:
                        meta = result.meta
            with_p50, native_p50 = pct(timings[True], 0.5) * 1000, pct(timings[False], 0.5) * 1000
            print(f"{name:<12}{with_p50:>10.1f}ms{pct(timings[True], 0.95) * 1000:>6.1f}ms"
                  f"{native_p50:>10.1f}ms{pct(timings[False], 0.95) * 1000:>6.1f}ms"
                  f"{with_p50 / native_p50:>7.2f}  {meta}")
    finally:
        await db_engine.dispose()
