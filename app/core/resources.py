"""Per-process resources (database engine, Redis client, service client), opened and closed with the app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.db import make_async_engine, sessionmaker_for
from app.core.http import ServiceClient
from app.core.redis import Keys, make_async_redis
from app.core.settings import Settings


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis
    keys: Keys
    services: ServiceClient

    @classmethod
    def open(cls, settings: Settings, process_name: str) -> Resources:
        engine = make_async_engine(settings.database, application_name=f"beacon-{process_name}")
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessionmaker_for(engine),
            redis=make_async_redis(settings.redis),
            keys=Keys(settings.redis.key_prefix),
            services=ServiceClient(settings),
        )

    async def close(self) -> None:
        await self.services.aclose()
        await self.redis.aclose()
        await self.engine.dispose()


def resources_lifespan(settings: Settings, process_name: str):  # type: ignore[no-untyped-def]
    """A Litestar lifespan that opens :class:`Resources` into ``app.state.resources``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        resources = Resources.open(settings, process_name)
        app.state.resources = resources
        try:
            yield
        finally:
            await resources.close()

    return lifespan


def provide_resources(state: State) -> Resources:
    """The process's :class:`Resources` (``app.state.resources``, opened by :func:`resources_lifespan`), for
    Litestar's dependency injection: a handler takes ``resources: Resources`` instead of reading the state."""
    resources: Resources = state.resources
    return resources


RESOURCES = {"resources": Provide(provide_resources, sync_to_thread=False)}
ResourcesDep = NamedDependency[Resources]
"""How a handler or provider names the ``resources`` dependency (``resources: ResourcesDep``)."""
"""The ``resources`` dependency, registered on every application built on :mod:`app.core`."""

