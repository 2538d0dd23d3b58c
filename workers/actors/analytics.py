"""Analytics jobs: keep every site's rollups up to date."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from services.analytics import rollups
from workers.actors.spec import ActorSpec
from workers.context import WorkerContext

log = logging.getLogger(__name__)


def refresh_rollups(ctx: WorkerContext, site_id: int) -> None:
    """Roll up the site's final days, a chunk per transaction, then yesterday once its visits have ended; after
    more than a week of days, warm the visits' indexes (:func:`rollups.warm`). Safe to run twice: a per-site lock
    serialises runs and each chunk replaces what it covers."""
    now = datetime.now(UTC)
    # Yesterday is rolled up once its visits have ended, by the ingest service's definition of a visit.
    visit_timeout = timedelta(seconds=ctx.settings.ingest.session_timeout)
    days = 0
    while True:
        with ctx.engine.begin() as conn:
            rolled = rollups.refresh(conn, site_id, now, visit_timeout).days
        if not rolled:
            break
        days += rolled
    if days > rollups.WARM_AFTER_DAYS:
        with ctx.engine.begin() as conn:
            warmed = rollups.warm(conn)
        log.info("rolled up %d days of site %d; visits' indexes warmed: %s", days, site_id,
                 warmed if warmed is not None else "no (pg_prewarm is not installed)")


def refresh_all_rollups(ctx: WorkerContext) -> None:
    """Enqueue a refresh for every site."""
    with ctx.engine.connect() as conn:
        site_ids = [int(row[0]) for row in conn.execute(text("SELECT id FROM sites ORDER BY id"))]
    refresh = ctx.broker.get_actor("refresh_rollups")
    for site_id in site_ids:
        refresh.send(site_id)


ACTORS = [
    ActorSpec(refresh_rollups, queue_name="analytics", max_retries=3, time_limit=900_000),
    ActorSpec(refresh_all_rollups, queue_name="analytics", max_retries=0, time_limit=60_000),
]
