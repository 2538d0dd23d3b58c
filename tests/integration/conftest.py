"""Integration fixtures: Beacon processes started as real subprocesses against the test servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from app.core.settings import Settings
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
