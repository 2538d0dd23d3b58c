"""Ingest housekeeping: monthly event partitions created ahead of time."""

from __future__ import annotations

import logging

from sqlalchemy import text

from workers.actors.spec import ActorSpec
from workers.context import WorkerContext

logger = logging.getLogger("beacon.worker")

MONTHS_AHEAD = 3


def ensure_partitions(ctx: WorkerContext, months_ahead: int = MONTHS_AHEAD) -> int:
    """Create the monthly ``events`` partitions from last month to ``months_ahead`` ahead; returns how many.

    Safe to run twice: the SQL function takes an advisory lock and creates only missing partitions.
    """
    with ctx.engine.begin() as conn:
        created = int(conn.execute(text("SELECT beacon_ensure_event_partitions(:n)"), {"n": months_ahead})
                      .scalar_one())
    if created:
        logger.info("event partitions created", extra={"created": created})
    return created


ACTORS = [ActorSpec(ensure_partitions, queue_name="ingest", max_retries=5, time_limit=120_000)]
