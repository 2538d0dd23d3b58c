"""Housekeeping jobs: the heartbeat that /api/health reports, and daily salt rotation."""

from __future__ import annotations

import asyncio
import time

from redis import RedisError

from app.core import salts as daily_salts
from app.core.monitoring import take_sample
from app.realtime.publish import SyncWebSocketService
from workers.actors.spec import PERMANENT, ActorSpec
from workers.context import WorkerContext


def heartbeat(ctx: WorkerContext, enqueued_at: float) -> None:
    """Record that a worker ran a job, and how long it waited in the queue."""
    now = time.time()
    pipe = ctx.redis.pipeline()
    pipe.set(ctx.keys.heartbeat("worker"), now)
    pipe.set(ctx.keys.heartbeat("worker") + ":lag", round(now - enqueued_at, 3))
    pipe.execute()


def rotate_salts(ctx: WorkerContext) -> None:
    """Create today's salt if the newest is a day old, and delete salts older than 48 hours.

    Safe to run twice: the advisory lock serialises runs and each step checks before it writes.
    """
    with ctx.engine.begin() as conn:
        conn.execute(daily_salts.LOCK)
        conn.execute(*daily_salts.create_if_stale())
        conn.execute(daily_salts.DELETE_EXPIRED)


def sample_monitoring(ctx: WorkerContext) -> None:
    """Store one minute's figures for the monitoring page's charts (a bounded Redis list, see app.core.monitoring).

    Not retried: a late sample is worth nothing, the next one comes a minute later.
    """
    try:
        connections: int | None = SyncWebSocketService(ctx.redis, ctx.keys).stats().connections
    except Exception:  # Redis away: take_sample fails just below and says so
        connections = None
    asyncio.run(take_sample(ctx.settings, websocket_connections=connections))


ACTORS = [
    ActorSpec(heartbeat, queue_name="system", max_retries=0, time_limit=10_000, options={"max_age": 60_000}),
    ActorSpec(rotate_salts, queue_name="system", max_retries=5, time_limit=60_000),
    ActorSpec(sample_monitoring, queue_name="system", max_retries=0, time_limit=30_000,
              throws=(*PERMANENT, RedisError), options={"max_age": 60_000}),
]
