"""Housekeeping jobs: the heartbeat that /api/health reports, daily salt rotation, monitoring samples."""

from __future__ import annotations

import asyncio
import secrets
import time

import dramatiq
from redis import RedisError
from sqlalchemy import text

from app.core.monitoring import take_sample
from app.realtime.publish import SyncWebSocketService
from workers.context import context

SALT_MAX_AGE_HOURS = 48


@dramatiq.actor(queue_name="system", max_retries=0, time_limit=10_000, max_age=60_000)
def heartbeat(enqueued_at: float) -> None:
    """Record that a worker ran a job, and how long it waited in the queue."""
    ctx = context()
    now = time.time()
    pipe = ctx.redis.pipeline()
    pipe.set(ctx.keys.heartbeat("worker"), now)
    pipe.set(ctx.keys.heartbeat("worker") + ":lag", round(now - enqueued_at, 3))
    pipe.execute()


@dramatiq.actor(queue_name="system", max_retries=5, time_limit=60_000)
def rotate_salts() -> None:
    """Create today's salt if the newest is a day old, and delete salts older than 48 hours.

    Safe to run twice: the advisory lock serialises runs and each step checks before it writes.
    """
    with context().engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('beacon.salts'))"))
        fresh = conn.execute(
            text("SELECT 1 FROM salts WHERE created_at > now() - interval '1 day' LIMIT 1")
        ).first()
        if fresh is None:
            conn.execute(text("INSERT INTO salts (salt) VALUES (:salt)"), {"salt": secrets.token_bytes(32)})
        conn.execute(
            text("DELETE FROM salts WHERE created_at < now() - make_interval(hours => :hours)"),
            {"hours": SALT_MAX_AGE_HOURS},
        )


@dramatiq.actor(queue_name="system", max_retries=0, time_limit=30_000, max_age=60_000, throws=(RedisError,))
def sample_monitoring() -> None:
    """Store one minute's figures for the monitoring page's charts (a bounded Redis list, see app.core.monitoring).

    Not retried: a late sample is worth nothing, the next one comes a minute later.
    """
    ctx = context()
    try:
        connections: int | None = SyncWebSocketService(ctx.redis, ctx.keys).stats().connections
    except Exception:  # Redis away: take_sample fails just below and says so
        connections = None
    asyncio.run(take_sample(ctx.settings, websocket_connections=connections))
