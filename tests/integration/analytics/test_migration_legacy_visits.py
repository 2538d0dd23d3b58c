"""Migration 0012: events stored without a visit id before it get their visits, by the 30-minute rule."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from app.devstack import Postgres, Redis
from tests.support.migrations import schema_at

# visitor, minutes after the first event: visitor 1 has two visits (a gap of 40 minutes), visitor 2 one.
LEGACY = [(1, 0), (1, 10), (1, 50), (2, 5), (2, 20)]


def test_legacy_events_get_visits(postgres: Postgres, redis_server: Redis, tmp_path: Path) -> None:
    """Events with ``session_id = 0`` stored under 0010 belong to three visits after the upgrade, each with its row
    in the visits table; days the rollups covered are noted stale; the downgrade drops the trigger."""
    with schema_at(postgres, redis_server, tmp_path, "beacon_mig0012", "0010") as (_, conn, config):
        site = conn.execute(text("INSERT INTO sites (domain) VALUES ('example.com') RETURNING id")).scalar()
        conn.execute(text("INSERT INTO rollup_state (site_id, timezone, rolled_until) "
                          "VALUES (:site, 'UTC', current_date)"), {"site": site})
        for visitor, minutes in LEGACY:
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, hostname, pathname) VALUES "
                "(:site, date_trunc('day', now()) + make_interval(mins => :m), 'pageview', :v, 'example.com', "
                "'/p' || :m)"), {"site": site, "v": visitor, "m": minutes})
        conn.commit()
        assert 0 == conn.execute(text("SELECT count(*) FROM sessions")).scalar()
        command.upgrade(config, "0013")  # 0015 deletes every rollup, rollup_stale included
        conn.commit()
        visits = conn.execute(text(
            "SELECT visitor_id, pageviews, entry_page, exit_page FROM sessions ORDER BY visitor_id, started_at"
        )).all()
        assert [(1, 2, "/p0", "/p10"), (1, 1, "/p50", "/p50"), (2, 2, "/p5", "/p20")] == [tuple(v) for v in visits]
        assert 0 == conn.execute(text("SELECT count(*) FROM events WHERE session_id >= 0")).scalar()
        assert 5 == conn.execute(text("SELECT count(*) FROM events")).scalar()
        assert 1 == conn.execute(text("SELECT count(*) FROM rollup_stale")).scalar()
        command.downgrade(config, "0010")
        conn.commit()
        assert conn.execute(text("SELECT to_regproc('beacon_legacy_visits')")).scalar() is None
