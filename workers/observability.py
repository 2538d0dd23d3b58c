"""Request ids through Dramatiq messages, and the workers' and scheduler's ``/metrics``.

A message enqueued while a request (or a job) is being handled carries its ``X-Request-ID`` in the message
option ``request_id``; a message enqueued outside one (the scheduler's) gets a fresh id. The worker sets it
for the job's thread, so every log line and Sentry event of the job shows it, and jobs it enqueues inherit it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import dramatiq
import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware.prometheus import Prometheus
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.core.logging import new_request_id, request_id_var, valid_request_id
from app.core.metrics import serve_metrics

logger = logging.getLogger("beacon.worker")

REQUEST_ID_OPTION = "request_id"


class RequestIdMiddleware(dramatiq.Middleware):
    """Puts the current request id into every message enqueued and sets it while the message is processed."""

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        if REQUEST_ID_OPTION not in message.options:
            message.options[REQUEST_ID_OPTION] = request_id_var.get() or new_request_id()

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        request_id_var.set(valid_request_id(message.options.get(REQUEST_ID_OPTION)) or new_request_id())

    def after_process_message(self, broker: dramatiq.Broker, message: MessageProxy, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        request_id_var.set(None)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        request_id_var.set(None)


class QueueCollector(Collector):
    """Queue depth and dead letters of every declared queue, read from Redis at scrape time.

    Dramatiq's Redis broker keeps a queue's waiting message ids in the list ``<namespace>:<queue>`` and its
    dead letters in the sorted set ``<namespace>:<queue>.XQ`` (dramatiq/brokers/redis/dispatch.lua).
    """

    def __init__(self, broker: RedisBroker) -> None:
        self.broker = broker

    def collect(self) -> Iterable[GaugeMetricFamily]:
        depth = GaugeMetricFamily("beacon_queue_messages",
                                  "Messages waiting in a Dramatiq queue (a delay queue's name ends in .DQ).",
                                  labels=["queue_name"])
        dead = GaugeMetricFamily("beacon_queue_dead_letters",
                                 "Messages in a queue's dead-letter set (<queue>.XQ).", labels=["queue_name"])
        errors = GaugeMetricFamily("beacon_queue_scrape_error",
                                   "1 when Redis could not be read for the queue figures at this scrape.")
        queues = sorted(self.broker.get_declared_queues())
        namespace = self.broker.namespace
        try:
            with self.broker.client.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.llen(f"{namespace}:{queue}")
                    if not queue.endswith(".DQ"):
                        pipe.zcard(f"{namespace}:{queue}.XQ")
                results = iter(pipe.execute())
        except redis.RedisError as exc:
            logger.warning("cannot read queue figures", extra={"error": str(exc)})
            errors.add_metric([], 1)
            return [errors]
        for queue in queues:
            depth.add_metric([queue], float(next(results)))
            if not queue.endswith(".DQ"):
                dead.add_metric([queue], float(next(results)))
        errors.add_metric([], 0)
        return [depth, dead, errors]


def start_worker_metrics(broker: RedisBroker, port: int) -> Prometheus:
    """Add Dramatiq's Prometheus middleware to ``broker`` and serve ``/metrics`` on 127.0.0.1:``port``.

    Dramatiq's own CLI would fork an exposition server bound to every interface; Beacon runs its workers
    in-process, so each worker process serves the port itself (SO_REUSEPORT, loopback only) from the
    watcher's shared multiprocess directory (``dramatiq_prom_db``, set by circus.ini), plus the queue figures.
    """
    middleware = Prometheus()
    # Its metric families are declared at process boot, with every other middleware's (workers.worker.start_worker).
    broker.add_middleware(middleware)
    collector = QueueCollector(broker)
    serve_metrics("127.0.0.1", port, extra=lambda: (collector,))
    return middleware
