"""Integration fixtures: Beacon processes started as real subprocesses against the test servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from app.core.db import make_engine
from app.core.settings import Settings
from tests.support.accounts import Browser, Servers, World, anonymous_browser, start_servers
from tests.support.beacon import Services


@pytest.fixture(scope="session")
def services(environment: dict[str, str], settings: Settings) -> Iterator[Services]:
    running = Services(environment, settings)
    yield running
    running.stop(*running.started)


@pytest.fixture(scope="session")
def serve(services: Services) -> Callable[[str], int]:
    """Start ``beacon serve <name>`` once per session; returns the port it listens on."""
    return services.start


@pytest.fixture(scope="session")
def servers(environment: dict[str, str]) -> Iterator[Servers]:
    """An api and a realtime process for the accounts, sites, dashboard, Stats API and api tests."""
    with start_servers(environment) as running:
        yield running


@pytest.fixture
def world(servers: Servers, db: None, redis_client: redis.Redis) -> Iterator[World]:
    """Users, sites and sessions written straight to the test PostgreSQL and Redis."""
    engine = make_engine(servers.settings.database)
    yield World(engine, redis_client, servers.settings)
    engine.dispose()


@pytest.fixture
def browser(servers: Servers) -> Iterator[Browser]:
    """A client of the api without a session."""
    with anonymous_browser(servers) as client:
        yield client
