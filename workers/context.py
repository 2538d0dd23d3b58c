"""Resources of a worker or scheduler process, opened once by its entry point and passed to every actor."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from dramatiq import Broker
from sqlalchemy import Engine

from app.core.db import make_engine
from app.core.redis import Keys, make_redis
from app.core.settings import Settings


@dataclass(frozen=True)
class WorkerContext:
    """What the actors of one process share: settings, one engine, one Redis client, the broker."""

    settings: Settings
    engine: Engine
    redis: redis.Redis
    keys: Keys
    broker: Broker
    """The broker the actors are declared on: an actor enqueues another through it (``broker.get_actor``)."""

    def close(self) -> None:
        """Release the engine's connections, the Redis client and the broker's client."""
        self.engine.dispose()
        self.redis.close()
        self.broker.close()


def open_context(settings: Settings, broker: Broker) -> WorkerContext:
    """The context of a process whose actors are declared on ``broker``; connects lazily, on first use."""
    return WorkerContext(
        settings=settings,
        engine=make_engine(settings.database, application_name="beacon-worker"),
        redis=make_redis(settings.redis),
        keys=Keys(settings.redis.key_prefix),
        broker=broker,
    )
