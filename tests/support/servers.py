"""Real PostgreSQL and Redis servers for tests, and the BEACON_* environment of a test database."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

from app.core.settings import CODE_DIR, DEFAULT_PORTS, METRICS_PORTS
from app.devstack import Postgres, Redis, beacon_environment, free_port


@contextlib.contextmanager
def running_postgres(directory: Path) -> Iterator[Postgres]:
    """A new PostgreSQL cluster in ``directory`` on a free port, stopped and deleted afterwards."""
    server = Postgres(directory, free_port(), secrets.token_urlsafe(16))
    try:
        server.init()
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        server.remove()


@contextlib.contextmanager
def running_redis(directory: Path) -> Iterator[Redis]:
    """A new Redis server in ``directory`` on a free port, configured as app/devstack.py runs it, stopped afterwards."""
    server = Redis(directory, free_port(), secrets.token_urlsafe(16))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_environment(postgres: Postgres, redis_server: Redis, state: Path, database: str,
                     redis_db: int = 0, ports: dict[str, int] | None = None) -> dict[str, str]:
    password = "test-" + database
    postgres.ensure_database(database, f"{database}_owner", password)
    environment = beacon_environment(
        home=CODE_DIR, state=state,
        database_url=postgres.url(f"{database}_owner", password, database),
        redis_url=redis_server.url(redis_db), secret_key=secrets.token_urlsafe(32),
        internal_token=secrets.token_urlsafe(24), base_url="https://localhost", ports=ports or DEFAULT_PORTS,
    )
    # Tests change data between queries; the cache has its own test (tests/integration/analytics).
    environment["BEACON_ANALYTICS_CACHE_TTL"] = "0"
    # The workers' and the scheduler's /metrics: free ports, like every other process of a test stack.
    for name in METRICS_PORTS:
        environment[f"BEACON_{name.upper()}_PORT"] = str(free_port())
    return environment
