"""Integration fixtures: Beacon processes started as real subprocesses against the test servers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.core.settings import Settings
from app.devstack import stop_processes, wait_for_port

BEACON = str(Path(sys.prefix) / "bin" / "beacon")


class Services:
    """``beacon serve <name>`` processes of the session: started on first use, stopped on request or at the end."""

    def __init__(self, environment: dict[str, str], settings: Settings) -> None:
        self.environment, self.settings = environment, settings
        self.started: dict[str, subprocess.Popen[bytes]] = {}
        self.log_dir = Path(environment["BEACON_LOG_DIR"])
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str) -> int:
        port = self.settings.server.ports[name]
        if name not in self.started:
            with (self.log_dir / f"{name}.log").open("ab") as log:
                self.started[name] = subprocess.Popen([BEACON, "serve", name],
                                                      env={**os.environ, **self.environment},
                                                      stdout=log, stderr=log)
            wait_for_port(port, 30)
        return port

    def stop(self, *names: str) -> None:
        stop_processes([self.started.pop(name) for name in names if name in self.started], 20)


@pytest.fixture(scope="session")
def services(environment: dict[str, str], settings: Settings) -> Iterator[Services]:
    running = Services(environment, settings)
    yield running
    running.stop(*running.started)


@pytest.fixture(scope="session")
def serve(services: Services) -> Callable[[str], int]:
    """Start ``beacon serve <name>`` once per session; returns the port it listens on."""
    return services.start


def run_beacon(environment: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BEACON, *args], env={**os.environ, **environment}, input=stdin,
                          capture_output=True, text=True, timeout=60, check=False)
