"""Resources of a worker process, opened once when it boots and shared by its threads."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import redis
from sqlalchemy import Engine

from app.core.db import make_engine
from app.core.redis import Keys, make_redis
from app.core.settings import Settings, get_settings


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    engine: Engine
    redis: redis.Redis
    keys: Keys


@functools.cache
def context() -> WorkerContext:
    settings = get_settings()
    return WorkerContext(
        settings=settings,
        engine=make_engine(settings.database, application_name="beacon-worker"),
        redis=make_redis(settings.redis),
        keys=Keys(settings.redis.key_prefix),
    )
