"""The Dramatiq broker, built from the settings through Dramatiq's public API by each process's entry point.

Not a module-level global: ``beacon worker`` and ``beacon scheduler`` call :func:`build_broker`, then declare
the actors on it (:func:`workers.actors.declare_actors`) with the process's context, so nothing is read from
the settings or connected at import time, and tests build their own.
"""

from __future__ import annotations

from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit

from app.core.redis import make_redis
from app.core.settings import Settings


def build_broker(settings: Settings) -> RedisBroker:
    """A Redis broker with its own client on ``settings.redis``, its keys under ``<key_prefix>dramatiq``.

    Middleware: message age limits, time limits, shutdown notifications, callbacks, pipelines and retries
    (Dramatiq's defaults without Prometheus, which the process serves itself).
    """
    return RedisBroker(  # type: ignore[no-untyped-call]
        client=make_redis(settings.redis),
        namespace=f"{settings.redis.key_prefix}dramatiq",
        middleware=[AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), Retries()],
    )
