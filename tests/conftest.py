"""Session fixtures: real PostgreSQL and Redis servers started on free ports in a temporary directory."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from app.core.db import make_engine
from app.core.resources import Resources
from app.core.settings import CODE_DIR, DEFAULT_PORTS, Settings, load_settings
from app.devstack import Postgres, Redis, StackError, free_port, program
from app.migrate import migrate
from tests.support.servers import make_environment, running_postgres, running_redis

REQUIRED_BINARIES = {"redis-server": "redis-server", "nginx": "nginx", "psql": "postgresql-client",
                     "openssl": "openssl"}


def pytest_sessionstart(session: pytest.Session) -> None:
    """A missing server is a failure, never a silent skip (above all under CI)."""
    for name, package in REQUIRED_BINARIES.items():
        try:
            program(name, package)  # nginx is in /usr/sbin, outside an ordinary user's PATH
        except StackError as exc:
            raise pytest.UsageError(f"{exc}; `make test` installs what is missing") from None


@pytest.fixture(scope="session")
def state_dir() -> Iterator[Path]:
    """The session's servers' directory: private (0700), as a checkout in a home directory would be.

    Under root, PostgreSQL runs as ``postgres`` and keeps its cluster under /var/lib/beacon-dev (linked from
    here; see app/devstack.py), which :func:`running_postgres` removes again.
    """
    path = Path(tempfile.mkdtemp(prefix="beacon-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(state_dir: Path) -> Iterator[Postgres]:
    with running_postgres(state_dir / "postgres") as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(state_dir: Path) -> Iterator[Redis]:
    with running_redis(state_dir / "redis") as server:
        yield server


@pytest.fixture(scope="session")
def environment(postgres: Postgres, redis_server: Redis, state_dir: Path) -> dict[str, str]:
    """BEACON_* variables of the integration-test database (``beacon_it``) and Redis db 1."""
    ports = {name: free_port() for name in DEFAULT_PORTS}
    return make_environment(postgres, redis_server, state_dir / "it", "beacon_it", redis_db=1, ports=ports)


@pytest.fixture(scope="session")
def settings(environment: dict[str, str]) -> Settings:
    result = load_settings(environment)
    migrate(result)
    return result


TABLES_KEPT = {"alembic_version", "beacon_init"}


@pytest.fixture
def db(settings: Settings) -> Iterator[None]:
    """Empty tables after the test (the schema stays)."""
    yield
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        tables = [row[0] for row in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))]
        tables = [t for t in tables if t not in TABLES_KEPT]
        if tables:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis.url)
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[object]:
    opened = Resources.open(settings, "test")
    yield opened
    await opened.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Slow, whole-stack tests run last so a quick failure shows first.
    order = {"unit": 0, "integration": 1, "e2e": 2, "deploy": 3}
    items.sort(key=lambda item: order.get(Path(str(item.fspath)).relative_to(CODE_DIR / "tests").parts[0], 9))


