"""Integration fixtures: Beacon processes started as real subprocesses against the test servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.core.settings import Settings
from app.devstack import wait_for_port

BEACON = str(Path(sys.prefix) / "bin" / "beacon")


@pytest.fixture(scope="session")
def serve(environment: dict[str, str], settings: Settings) -> Iterator[Callable[[str], int]]:
    """Start ``beacon serve <name>`` once per session; returns the port it listens on."""
    started: dict[str, subprocess.Popen[bytes]] = {}
    log_dir = Path(environment["BEACON_LOG_DIR"])
    log_dir.mkdir(parents=True, exist_ok=True)

    def start(name: str) -> int:
        port = settings.server.ports[name]
        if name not in started:
            with (log_dir / f"{name}.log").open("ab") as log:
                started[name] = subprocess.Popen([BEACON, "serve", name], env={**os.environ, **environment},
                                                 stdout=log, stderr=log)
            wait_for_port(port, 30)
        return port

    yield start
    for process in started.values():
        process.send_signal(signal.SIGTERM)
    for process in started.values():
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def run_beacon(environment: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BEACON, *args], env={**os.environ, **environment}, input=stdin,
                          capture_output=True, text=True, timeout=60, check=False)
