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
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis
from dramatiq import Actor

from app.core.logging import configure_logging
from app.core.metrics import SCHEDULER_LAST_RUN, serve_metrics
from app.core.monitoring import SAMPLE_INTERVAL
from app.core.redis import Keys
from app.core.sentry import init_sentry
from app.core.settings import Settings, get_settings
from workers.actors import declare_actors
from workers.broker import build_broker
from workers.context import open_context

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


def periodic_jobs(settings: Settings, actors: Mapping[str, Actor[..., object]]) -> list[Periodic]:
    """The jobs the scheduler enqueues, on ``actors`` (by name, as :func:`declare_actors` gives them)."""
    return [
        Periodic("heartbeat", settings.workers.heartbeat_interval, lambda: actors["heartbeat"].send(time.time())),
        Periodic("rotate_salts", 3600.0, actors["rotate_salts"].send),
        Periodic("ensure_partitions", 6 * 3600.0, actors["ensure_partitions"].send),
        Periodic("refresh_rollups", 600.0, actors["refresh_all_rollups"].send),
        Periodic("dispatch_webhooks", 1.0, actors["dispatch_webhooks"].send),
        Periodic("dispatch_imports", 2.0, actors["dispatch_imports"].send),
        Periodic("purge_import_uploads", 3600.0, actors["purge_import_uploads"].send),
        Periodic("dispatch_exports", 5.0, actors["dispatch_exports"].send),
        Periodic("purge_exports", 3600.0, actors["purge_exports"].send),
        Periodic("send_emails", 5.0, actors["send_emails"].send),
        Periodic("purge_webhook_log", 86400.0, actors["purge_webhook_log"].send),
        Periodic("coalesce_goals", settings.integrations.goal_interval, actors["coalesce_goals"].send),
        Periodic("send_reports", 3600.0, actors["send_reports"].send),
        Periodic("evaluate_alerts", 60.0, actors["evaluate_alerts"].send),
        Periodic("evaluate_anomaly_alerts", 3600.0, actors["evaluate_anomaly_alerts"].send, offset=120.0),
        Periodic("sample_monitoring", SAMPLE_INTERVAL, actors["sample_monitoring"].send),
    ]


class Scheduler:
    def __init__(self, settings: Settings, client: redis.Redis, actors: Mapping[str, Actor[..., object]]) -> None:
        self.settings = settings
        self.redis = client
        self.keys = Keys(settings.redis.key_prefix)
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.jobs = periodic_jobs(settings, actors)
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
                SCHEDULER_LAST_RUN.labels(job.name).set(now)

    def release(self) -> None:
        if self.leader and self.redis.get(self.keys.scheduler_lock()) == self.identity.encode():
            self.redis.delete(self.keys.scheduler_lock())


def run() -> None:
    settings = get_settings()
    configure_logging("scheduler", settings.log_level)
    init_sentry("scheduler", settings)
    broker = build_broker(settings)
    context = open_context(settings, broker)
    scheduler = Scheduler(settings, context.redis, declare_actors(broker, context))
    serve_metrics("127.0.0.1", settings.observability.scheduler_metrics_port)
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
    context.close()
