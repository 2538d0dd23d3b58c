"""Providers the domain controllers share (Litestar's dependency injection): one database session per request.

Every application already provides ``resources`` (``app.core.resources.RESOURCES``, registered by
``create_service_app``). A controller lists ``dependencies = {**DEPENDENCIES, ...}``; its handlers then take
``resources: Resources`` and ``db_session: AsyncSession`` as parameters instead of reaching into
``request.app.state``. A handler that writes calls ``await db_session.commit()`` before it answers; whatever
is not committed is rolled back when the request ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.resources import Resources


async def provide_db_session(resources: NamedDependency[Resources]) -> AsyncIterator[AsyncSession]:
    """A session of the request, closed (and rolled back unless committed) after the handler."""
    async with resources.sessions() as session:
        yield session


DEPENDENCIES = {"db_session": Provide(provide_db_session)}
