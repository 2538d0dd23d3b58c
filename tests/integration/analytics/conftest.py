"""Generated traffic shared by the analytics tests that compare served answers with the raw engine's."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from sqlalchemy import text

from app.core.db import make_engine
from app.core.settings import Settings
from app.devstack import Postgres
from services.analytics import rollups
from tests.support import snapshot
from tests.support.analytics import DAYS, TZ, load_dataset
from tests.support.datagen import generate

_GENERATED: dict[date, tuple[snapshot.Snapshot, tuple[int, datetime]]] = {}
"""The generated traffic of the day the tests run on, taken once per test process (:mod:`tests.support.snapshot`)."""


@pytest.fixture
def generated(settings: Settings, postgres: Postgres, db: None) -> tuple[int, datetime]:
    """Forty days of traffic up to today (the last day of the month before on the 1st and 2nd of a month), rolled
    up to two days before it and the day before it provisionally (at noon, when that day's visits have ended).
    Generated once per test process and day, then copied back for each test."""
    today = datetime.now(UTC).astimezone(ZoneInfo(TZ)).date()
    # On the 1st the current month is today alone, which no rollup holds (it is answered from today's events). On
    # the 2nd the month by day has a bucket beginning today, after the provisional day, which a span of that day
    # may still reach (rollups.State.rolled_for), so the rollups answer none of it. The tests asking the rollups
    # for the month then run on the last day of the month before.
    day = today - timedelta(days=today.day) if today.day <= 2 else today
    now = datetime.combine(day, time(12), ZoneInfo(TZ))
    superuser = make_conninfo(settings.database.libpq_url, user="postgres", password=postgres.superuser_password)
    if (taken := _GENERATED.get(now.date())) is not None:
        snapshot.restore(superuser, taken[0])
        return taken[1]
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        row = conn.execute("INSERT INTO sites (domain, timezone) VALUES ('rollup.example', %s) RETURNING id",
                           (TZ,)).fetchone()
    assert row is not None
    site_id = int(row[0])
    generate(settings.database.libpq_url, site_id, "rollup.example", events=25_000, days=DAYS,
             end=now.date(), tz=TZ, seed=7)
    db_engine = make_engine(settings.database)
    chunks = 0
    with db_engine.begin() as conn:
        while rollups.refresh(conn, site_id, now).days:
            chunks += 1
    with db_engine.connect() as conn:
        state = conn.execute(text("SELECT rolled_until, provisional_day FROM rollup_state WHERE site_id = :s"),
                             {"s": site_id}).first()
    db_engine.dispose()
    assert chunks >= 6  # forty days take six chunks of seven, then yesterday
    assert state is not None
    assert (now.date() - timedelta(days=2), now.date() - timedelta(days=1)) == tuple(state)
    _GENERATED[now.date()] = (snapshot.take(superuser), (site_id, now))
    return site_id, now


@pytest.fixture
def dataset(settings: Settings, db: None) -> None:
    """The Stats API tests' hand-computed dataset (tests/support/analytics.py)."""
    load_dataset(settings)
