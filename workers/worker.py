"""``beacon worker``: one Dramatiq worker in this process (Circus runs as many processes as configured).

Dramatiq's own CLI forks worker processes; like Granian's, those would outlive a SIGKILL of their parent.
Running the worker in-process keeps one OS process per Circus process.
"""

from __future__ import annotations

import logging
import signal
import threading

import dramatiq
from dramatiq.brokers.redis import RedisBroker

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


def start_worker(broker: RedisBroker, threads: int, worker_timeout: int = 1000) -> dramatiq.Worker:
    """Boot ``broker``'s middleware as Dramatiq's worker process does, then start ``threads`` worker threads
    (each waits up to ``worker_timeout`` milliseconds for a message before it looks again, as in Dramatiq).

    Dramatiq's CLI emits ``process_boot`` once the broker is loaded (``dramatiq/cli.py``, ``worker_process``);
    middleware start there what they need for the life of the process. Without it the ``TimeLimit``
    middleware's timer thread never runs and no actor's ``time_limit`` is enforced.
    """
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=worker_timeout)
    worker.start()
    return worker


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
    worker = start_worker(broker, settings.workers.threads)
    logger.info("worker started", extra={"queues": sorted(broker.get_declared_queues()),
                                         "threads": settings.workers.threads})
    stop.wait()
    logger.info("stopping: letting running jobs finish")
    worker.stop(timeout=STOP_TIMEOUT_MS)
    context.close()
