"""``beacon scheduler``: enqueues periodic jobs. Exactly one enqueues at a time, even across hosts.

The scheduler holds a Redis lock that it renews on every tick; a second scheduler waits until the lock
expires (the holder died) before it takes over.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from app.core.logging import configure_logging
from app.core.redis import Keys, make_redis
from app.core.settings import Settings, get_settings
from workers.broker import configure

logger = logging.getLogger("beacon.scheduler")

TICK = 1.0
LOCK_TTL_MS = 10_000

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


@dataclass
class Periodic:
    name: str
    every: float
    enqueue: Callable[[], object]
    next_at: float = 0.0
    offset: float | None = None
    """When set, runs after the first tick are aligned to the clock: ``offset`` seconds past each multiple of
    ``every`` (Unix time), so an hourly job runs at the same minute of every hour without drifting."""

    def schedule_after(self, now: float) -> None:
        if self.offset is None:
            self.next_at = now + self.every
        else:
            self.next_at = (now - self.offset) // self.every * self.every + self.every + self.offset


def periodic_jobs(settings: Settings) -> list[Periodic]:
    from workers.actors.analytics import refresh_all_rollups
    from workers.actors.ingest import ensure_partitions
    from workers.actors.integrations import (
        coalesce_goals,
        dispatch_exports,
        dispatch_imports,
        dispatch_webhooks,
        evaluate_alerts,
        evaluate_anomaly_alerts,
        purge_exports,
        purge_import_uploads,
        purge_webhook_log,
        send_emails,
        send_reports,
    )
    from workers.actors.system import heartbeat, rotate_salts

    return [
        Periodic("heartbeat", settings.workers.heartbeat_interval, lambda: heartbeat.send(time.time())),
        Periodic("rotate_salts", 3600.0, rotate_salts.send),
        Periodic("ensure_partitions", 6 * 3600.0, ensure_partitions.send),
        Periodic("refresh_rollups", 600.0, refresh_all_rollups.send),
        Periodic("dispatch_webhooks", 1.0, dispatch_webhooks.send),
        Periodic("dispatch_imports", 2.0, dispatch_imports.send),
        Periodic("purge_import_uploads", 3600.0, purge_import_uploads.send),
        Periodic("dispatch_exports", 5.0, dispatch_exports.send),
        Periodic("purge_exports", 3600.0, purge_exports.send),
        Periodic("send_emails", 5.0, send_emails.send),
        Periodic("purge_webhook_log", 86400.0, purge_webhook_log.send),
        Periodic("coalesce_goals", settings.integrations.goal_interval, coalesce_goals.send),
        Periodic("send_reports", 3600.0, send_reports.send),
        Periodic("evaluate_alerts", 60.0, evaluate_alerts.send),
        Periodic("evaluate_anomaly_alerts", 3600.0, evaluate_anomaly_alerts.send, offset=120.0),
    ]


class Scheduler:
    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.redis = client
        self.keys = Keys(settings.redis.key_prefix)
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.jobs = periodic_jobs(settings)
        self._renew = client.register_script(_RENEW)
        self.leader = False

    def hold_lock(self) -> bool:
        key = self.keys.scheduler_lock()
        if self.leader and self._renew(keys=[key], args=[self.identity, LOCK_TTL_MS]):
            return True
        self.leader = bool(self.redis.set(key, self.identity, nx=True, px=LOCK_TTL_MS))
        if self.leader:
            logger.info("scheduler lock taken", extra={"identity": self.identity})
        return self.leader

    def tick(self, now: float) -> None:
        if not self.hold_lock():
            return
        self.redis.set(self.keys.heartbeat("scheduler"), now)
        for job in self.jobs:
            if now >= job.next_at:
                job.enqueue()
                job.schedule_after(now)

    def release(self) -> None:
        if self.leader and self.redis.get(self.keys.scheduler_lock()) == self.identity.encode():
            self.redis.delete(self.keys.scheduler_lock())


def run() -> None:
    settings = get_settings()
    configure_logging("scheduler", settings.log_level)
    configure(settings)
    scheduler = Scheduler(settings, make_redis(settings.redis))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logger.info("scheduler started", extra={"jobs": [job.name for job in scheduler.jobs]})
    while not stop.is_set():
        try:
            scheduler.tick(time.time())
        except redis.RedisError as exc:
            scheduler.leader = False
            logger.warning("redis unavailable; retrying", extra={"error": str(exc)})
        stop.wait(TICK)
    scheduler.release()
