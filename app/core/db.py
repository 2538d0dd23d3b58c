"""PostgreSQL access: engines and sessions, built from settings on demand (never at import time)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, MappedAsDataclass

from app.core.metrics import instrument_engine
from app.core.settings import DatabaseSettings


class Base(DeclarativeBase):
    """Declarative base of every ORM model."""


class DataclassBase(MappedAsDataclass, Base, kw_only=True):
    """Declarative base for models that should construct like dataclasses."""

    __abstract__ = True


def _connect_args(settings: DatabaseSettings, application_name: str) -> dict[str, object]:
    return {
        "application_name": application_name,
        "options": f"-c statement_timeout={settings.statement_timeout_ms}",
        "connect_timeout": 5,
    }


def make_async_engine(settings: DatabaseSettings, application_name: str = "beacon") -> AsyncEngine:
    """An asyncio engine with a pool sized for one process (its pool and errors counted in the metrics)."""
    engine = create_async_engine(
        settings.url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args=_connect_args(settings, application_name),
    )
    instrument_engine(engine.sync_engine)
    return engine


def make_engine(settings: DatabaseSettings, application_name: str = "beacon") -> Engine:
    """A synchronous engine, for the CLI, migrations and Dramatiq workers."""
    engine = create_engine(
        settings.url,
        pool_size=min(settings.pool_size, 5),
        max_overflow=settings.max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args=_connect_args(settings, application_name),
    )
    instrument_engine(engine)
    return engine


def sessionmaker_for(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """Yield a session that commits when the caller succeeds and rolls back when it raises."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def ping(engine: AsyncEngine) -> None:
    """Raise unless PostgreSQL answers a trivial query."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
