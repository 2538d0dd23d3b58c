"""Benchmarks reuse the test servers (tests/conftest.py) and print figures; they assert nothing about speed.

``BEACON_BENCH_DIR=<directory>`` keeps the benchmark's PostgreSQL cluster in that directory instead of a
temporary one, so a large generated data set (10 M events take minutes to load and roll up) is generated
once and reused by later runs; delete the directory to start again.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.devstack import Postgres, free_port
from tests.support.servers import running_postgres


@pytest.fixture(scope="session")
def postgres(state_dir: Path) -> Iterator[Postgres]:
    kept = os.environ.get("BEACON_BENCH_DIR")
    if not kept:
        with running_postgres(state_dir / "postgres") as server:
            yield server
        return
    directory = Path(kept).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    password_file = directory / "superuser-password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(16))
        password_file.chmod(0o600)
    server = Postgres(directory, free_port(), password_file.read_text().strip())
    server.init()  # a no-op when the cluster exists; the port is given on the command line anew each run
    server.start()
    try:
        yield server
    finally:
        server.stop()
