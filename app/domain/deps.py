"""Providers the domain controllers share (Litestar's dependency injection): the resources the application's
lifespan opened, and one database session per request.

A controller lists them with ``dependencies = {**DEPENDENCIES, ...}``; its handlers then take
``resources: Resources`` and ``db_session: AsyncSession`` as parameters instead of reaching into
``request.app.state``. A handler that writes calls ``await db_session.commit()`` before it answers; whatever
is not committed is rolled back when the request ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.resources import Resources


def provide_resources(state: State) -> Resources:
    """The process's :class:`~app.core.resources.Resources` (``app.state.resources``, set by the lifespan)."""
    resources: Resources = state.resources
    return resources


async def provide_db_session(resources: NamedDependency[Resources]) -> AsyncIterator[AsyncSession]:
    """A session of the request, closed (and rolled back unless committed) after the handler."""
    async with resources.sessions() as session:
        yield session


DEPENDENCIES = {"resources": Provide(provide_resources, sync_to_thread=False),
                "db_session": Provide(provide_db_session)}
