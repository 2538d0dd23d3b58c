"""Analytics jobs: keep every site's rollups up to date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dramatiq
from sqlalchemy import text

from services.analytics import rollups
from workers.context import context


@dramatiq.actor(queue_name="analytics", max_retries=3, time_limit=900_000)
def refresh_rollups(site_id: int) -> None:
    """Roll up the site's final days, a chunk per transaction, then yesterday once its visits have ended.
    Safe to run twice: a per-site lock serialises runs and each chunk replaces what it covers."""
    ctx = context()
    now = datetime.now(UTC)
    # Yesterday is rolled up once its visits have ended, by the ingest service's definition of a visit.
    visit_timeout = timedelta(seconds=ctx.settings.ingest.session_timeout)
    while True:
        with ctx.engine.begin() as conn:
            if not rollups.refresh(conn, site_id, now, visit_timeout).days:
                return


@dramatiq.actor(queue_name="analytics", max_retries=0, time_limit=60_000)
def refresh_all_rollups() -> None:
    """Enqueue a refresh for every site."""
    with context().engine.connect() as conn:
        site_ids = [int(row[0]) for row in conn.execute(text("SELECT id FROM sites ORDER BY id"))]
    for site_id in site_ids:
        refresh_rollups.send(site_id)
