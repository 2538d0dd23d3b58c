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
from workers.observability import RequestIdMiddleware


def build_broker(settings: Settings) -> RedisBroker:
    """A Redis broker with its own client on ``settings.redis``, its keys under ``<key_prefix>dramatiq``.

    Middleware: request ids (first, so every other middleware's log lines of a message carry its id), message
    age limits, time limits, shutdown notifications, callbacks, pipelines and retries (Dramatiq's defaults
    without Prometheus, which the worker adds itself, see :mod:`workers.observability`). Sentry's Dramatiq
    integration, when :func:`app.core.sentry.init_sentry` ran before, adds its own middleware here.
    """
    return RedisBroker(  # type: ignore[no-untyped-call]
        client=make_redis(settings.redis),
        namespace=f"{settings.redis.key_prefix}dramatiq",
        middleware=[RequestIdMiddleware(), AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(),
                    Retries()],
    )
