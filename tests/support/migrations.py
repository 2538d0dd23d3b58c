"""A test database emptied and migrated to a chosen revision, for tests of one migration on rows stored before it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

from app.core.db import make_engine
from app.core.settings import load_settings
from app.devstack import Postgres, Redis
from app.migrate import alembic_config
from tests.support.servers import make_environment


@contextmanager
def schema_at(postgres: Postgres, redis_server: Redis, tmp_path: Path, database: str,
              revision: str) -> Iterator[tuple[Engine, Connection, Config]]:
    """``database``'s public schema emptied and upgraded to ``revision``: (its engine, a connection with nothing
    uncommitted, the alembic configuration that migrates on that connection). Disposed of on exit."""
    settings = load_settings(make_environment(postgres, redis_server, tmp_path, database, redis_db=3))
    engine = make_engine(settings.database)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        with engine.connect() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            conn.commit()
            yield engine, conn, config
    finally:
        engine.dispose()
