"""Rollups answer exactly what the engine over raw events answers, on generated data, for random queries."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy import text

from app.core.db import make_async_engine, make_engine, sessionmaker_for
from app.core.settings import Settings
from services.analytics import engine, rollups
from services.analytics.query import parse_query
from tests.benchmarks.datagen import generate

TZ = "America/New_York"
DAYS = 40


@pytest.fixture
def generated(settings: Settings, db: None) -> tuple[int, datetime]:
    """Forty days of traffic up to today, rolled up to two days ago."""
    now = datetime.now(UTC)
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        row = conn.execute("INSERT INTO sites (domain, timezone) VALUES ('rollup.example', %s) RETURNING id",
                           (TZ,)).fetchone()
    assert row is not None
    site_id = int(row[0])
    generate(settings.database.libpq_url, site_id, "rollup.example", events=25_000, days=DAYS,
             end=now.astimezone().date(), tz=TZ, seed=7)
    db_engine = make_engine(settings.database)
    chunks = 0
    with db_engine.begin() as conn:
        while rollups.refresh(conn, site_id, now).days:
            chunks += 1
    with db_engine.connect() as conn:
        until = conn.execute(text("SELECT rolled_until FROM rollup_state WHERE site_id = :s"), {"s": site_id}).scalar()
    db_engine.dispose()
    assert chunks >= 5  # forty days take six chunks of seven
    assert until is not None
    return site_id, now


def random_query(rng: random.Random, today: date) -> dict[str, Any]:
    dimension = rng.choice(rollups.ROLLED)
    allowed = sorted(rollups.EVENT_METRICS if dimension.startswith("event:") else rollups.VISIT_METRICS)
    metrics = rng.sample(allowed, rng.randint(1, 4))
    dimensions = [dimension] if dimension else []
    if rng.random() < 0.4:
        dimensions.insert(rng.randint(0, len(dimensions)), rng.choice(["time:day", "time:week", "time:month", "time"]))
    if "percentage" in metrics and not dimensions:
        metrics.remove("percentage")
        metrics = metrics or ["visitors"]
    if rng.random() < 0.5:
        date_range: Any = rng.choice(["7d", "30d", "month", "28d"])
    else:
        first = today - timedelta(days=rng.randint(0, DAYS + 2))
        date_range = [first.isoformat(), min(today, first + timedelta(days=rng.randint(0, 20))).isoformat()]
    return {"site_id": "rollup.example", "metrics": metrics, "dimensions": dimensions, "date_range": date_range,
            "pagination": {"limit": rng.choice([5, 50, 10000])}, "include": {"total_rows": True}}


async def test_rollups_equal_raw_answers(settings: Settings, generated: tuple[int, datetime]) -> None:
    """150 random applicable queries: identical rows, order and totals from both paths."""
    site_id, now = generated
    rng = random.Random(2026)
    db = make_async_engine(settings.database)
    sessions = sessionmaker_for(db)
    today = now.astimezone(ZoneInfo(TZ)).date()
    compared = 0
    try:
        async with sessions() as session:
            until = await rollups.rolled_until(session, site_id, TZ)
            assert until == today - timedelta(days=2)
            for _ in range(150):
                body = random_query(rng, today)
                query = parse_query(body, timezone=TZ, now=now)
                if not rollups.applicable(query) or until < query.date_range.first_day:
                    continue
                raw = await engine.run(session, query, site_id)
                rolled = await rollups.run(session, query, site_id, until)
                assert (raw.rows, raw.total_rows) == (rolled.rows, rolled.total_rows), body
                compared += 1
    finally:
        await db.dispose()
    assert compared >= 100


async def test_refresh_is_idempotent_and_follows_time_zone_changes(settings: Settings,
                                                                   generated: tuple[int, datetime]) -> None:
    """Nothing more to do once rolled up; a new time zone starts the rollups again."""
    site_id, now = generated
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        assert 0 == rollups.refresh(conn, site_id, now).days
        conn.execute(text("UPDATE sites SET timezone = 'Asia/Tokyo' WHERE id = :s"), {"s": site_id})
        result = rollups.refresh(conn, site_id, now)
        tz = conn.execute(text("SELECT timezone FROM rollup_state WHERE site_id = :s"), {"s": site_id}).scalar()
    db_engine.dispose()
    assert result.days > 0
    assert "Asia/Tokyo" == tz
