"""``beacon worker``: one Dramatiq worker in this process (Circus runs as many processes as configured).

Dramatiq's own CLI forks worker processes; like Granian's, those would outlive a SIGKILL of their parent.
Running the worker in-process keeps one OS process per Circus process.
"""

from __future__ import annotations

import logging
import signal
import threading

import dramatiq

from app.core.logging import configure_logging
from app.core.sentry import init_sentry
from app.core.settings import get_settings
from workers.actors import declare_actors
from workers.broker import build_broker
from workers.context import open_context
from workers.observability import start_worker_metrics

logger = logging.getLogger("beacon.worker")

STOP_TIMEOUT_MS = 25_000
"""How long running jobs get to finish on SIGTERM (below Circus's graceful_timeout)."""


def run() -> None:
    settings = get_settings()
    configure_logging("worker", settings.log_level)
    # Before the broker is built: Sentry's Dramatiq integration adds its middleware to brokers created after.
    init_sentry("worker", settings)
    broker = build_broker(settings)
    context = open_context(settings, broker)
    declare_actors(broker, context)
    if settings.observability.metrics_dir:
        start_worker_metrics(broker, settings.observability.worker_metrics_port)
    else:
        logger.warning("no PROMETHEUS_MULTIPROC_DIR: the worker serves no /metrics (circus.ini sets it)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker = dramatiq.Worker(broker, worker_threads=settings.workers.threads)
    worker.start()
    logger.info("worker started", extra={"queues": sorted(broker.get_declared_queues()),
                                         "threads": settings.workers.threads})
    stop.wait()
    logger.info("stopping: letting running jobs finish")
    worker.stop(timeout=STOP_TIMEOUT_MS)
    context.close()
