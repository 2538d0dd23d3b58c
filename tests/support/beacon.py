"""Beacon's own processes for tests: ``beacon serve NAME`` started on demand, and one-off ``beacon`` commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.core.settings import Settings
from app.devstack import stop_processes, wait_for_port

BEACON = str(Path(sys.prefix) / "bin" / "beacon")
"""The ``beacon`` command of this virtualenv."""


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


def run_beacon(environment: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BEACON, *args], env={**os.environ, **environment}, input=stdin,
                          capture_output=True, text=True, timeout=60, check=False)
