"""Ingest helpers: a browser's User-Agent, SQL against the test database, the app in-process, and real
``beacon serve ingest`` processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from app.core.db import make_engine
from app.core.settings import IngestSettings, Settings
from app.devstack import free_port, wait_for_port
from services.ingest.app import create_app
from tests.support.beacon import BEACON

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def sql(settings: Settings, statement: str, params: dict[str, object] | None = None) -> list[tuple[object, ...]]:
    """Run one statement in its own transaction; rows if it returns any."""
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        result = conn.execute(text(statement), params or {})
        rows = [tuple(row) for row in result] if result.returns_rows else []
    engine.dispose()
    return rows


@contextlib.asynccontextmanager
async def ingest_client(settings: Settings, ingest: IngestSettings | None = None) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncTestClient(app=create_app(settings, ingest or IngestSettings())) as client:
        yield client


class IngestProcesses:
    """``count`` real ingest processes sharing one port (SO_REUSEPORT), as Circus runs them."""

    def __init__(self, environment: dict[str, str], count: int = 2, **overrides: str) -> None:
        self.port = free_port()
        self.environment = {**os.environ, **environment, "BEACON_INGEST_PORT": str(self.port), **overrides}
        self.count = count
        self.processes: list[subprocess.Popen[bytes]] = []
        self.log = Path(environment["BEACON_LOG_DIR"]) / f"ingest-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            for _ in range(self.count):
                self.processes.append(subprocess.Popen([BEACON, "serve", "ingest"], env=self.environment,
                                                       stdout=log, stderr=log))
        wait_for_port(self.port, 30)

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
