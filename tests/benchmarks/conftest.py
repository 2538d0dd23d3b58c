"""Benchmarks reuse the test servers (tests/conftest.py) and print figures; they assert nothing about speed.

``BEACON_BENCH_DIR=<directory>`` keeps the benchmark's PostgreSQL cluster in that directory instead of a
temporary one, so a large generated data set (10 M events take minutes to load and roll up) is generated
once and reused by later runs; delete the directory to start again. That cluster runs with the memory settings
the ``beacon_postgresql`` role gives the host (:func:`production_memory`), as a deployed Beacon's would: the
test clusters' 256 MB of shared buffers hold little of a 10 M-event site.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.devstack import Postgres, free_port
from tests.support.servers import running_postgres


def production_memory() -> dict[str, str]:
    """The memory settings ansible/roles/beacon_postgresql/defaults/main.yml derives from the host's memory:
    shared_buffers 25 %, effective_cache_size 75 %, maintenance_work_mem 5 % (at most 1 GB), work_mem 16 MB."""
    with open("/proc/meminfo") as meminfo:
        total_mb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:")) // 1024
    return {"shared_buffers": f"{int(total_mb * 0.25)}MB", "effective_cache_size": f"{int(total_mb * 0.75)}MB",
            "maintenance_work_mem": f"{min(int(total_mb * 0.05), 1024)}MB", "work_mem": "16MB"}


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
    memory = production_memory()
    print(f"\nPostgreSQL in BEACON_BENCH_DIR with the deployment's memory settings: {memory}")
    server.start(memory)
    try:
        yield server
    finally:
        server.stop()
