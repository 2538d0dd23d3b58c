"""Imports run by real worker processes: the CLI with its progress, and a SIGKILL of the worker mid-import."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.devstack import stop_processes
from tests.support.import_files import pages_csv, plausible_export
from tests.support.imports import Imports, Site

BEACON = str(Path(sys.prefix) / "bin" / "beacon")


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Processes:
    def __init__(self, imports: Imports) -> None:
        self.imports, self.running = imports, dict[str, subprocess.Popen[bytes]]()
        self.log = imports.state / "worker.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            process = subprocess.Popen([BEACON, name], env={**os.environ, **self.imports.environment, **dict(
                item.split("=", 1) for item in extra)}, stdout=log, stderr=log)
        self.running[name] = process
        return process

    def beacon(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BEACON, *args], env={**os.environ, **self.imports.environment}, capture_output=True,
                              text=True, timeout=180, check=False)


@pytest.fixture
def processes(imports: Imports) -> Iterator[Processes]:
    """A worker and the scheduler (whose dispatch_imports sends the jobs)."""
    started = Processes(imports)
    started.start("scheduler")
    yield started
    stop_processes(list(started.running.values()), 20)


def test_the_cli_imports_a_90_day_export(imports: Imports, site: Site, processes: Processes,
                                         tmp_path: Path) -> None:
    """`beacon import plausible` creates the import, a worker runs it, the CLI reports its end."""
    processes.start("worker")
    export = plausible_export(days=90)

    result = processes.beacon("import", "plausible", "--site", site.domain, str(export.zip(tmp_path / "e.zip")))

    assert 0 == result.returncode, result.stderr
    assert f"90 days ({export.first} to {export.last})" in result.stdout
    assert [(export.sums["imported_visitors"]["visitors"],)] == imports.sql(
        "SELECT sum(visitors) FROM imported_visitors")


def test_the_cli_names_the_line_of_a_malformed_file(imports: Imports, site: Site, processes: Processes,
                                                    tmp_path: Path) -> None:
    """A bad row makes the CLI exit 1 with file, line and column; nothing is imported."""
    processes.start("worker")
    path = tmp_path / "imported_visitors_20240101_20240102.csv"
    path.write_text("date,visitors,pageviews,bounces,visits,visit_duration\n2024-01-01,1,1,0,1,5\n"
                    "2024-01-02,x,1,0,1,5\n")

    result = processes.beacon("import", "plausible", "--site", site.domain, str(path))

    assert 1 == result.returncode
    assert ("imported_visitors_20240101_20240102.csv, line 3, column visitors: 'x' is not a whole number"
            in result.stderr)
    assert [(0,)] == imports.sql("SELECT count(*) FROM imported_visitors")


def test_the_cli_refuses_an_unknown_site(imports: Imports, processes: Processes, tmp_path: Path) -> None:
    """--site must name a site."""
    result = processes.beacon("import", "umami", "--site", "nowhere.example", str(tmp_path / "x.csv"))

    assert (1, "beacon: error: --site: no site 'nowhere.example'\n") == (result.returncode, result.stderr)


def test_a_worker_killed_mid_import_is_resumed_without_doubling(imports: Imports, site: Site,
                                                                processes: Processes, tmp_path: Path) -> None:
    """SIGKILL the worker while it writes; after the lease (2 s) another worker finishes with exact counts."""
    body, pageviews = pages_csv(40_000, dt.datetime.now(dt.UTC).date() - dt.timedelta(days=40))
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("imported_pages_20240101_20240131.csv", body)
    worker = processes.start("worker", "BEACON_IMPORT_BATCH_ROWS=20")
    result = processes.beacon("import", "plausible", "--site", site.domain, "--no-wait", str(path))
    assert 0 == result.returncode, result.stderr

    done = wait_for(lambda: imports.sql("SELECT rows_done FROM site_imports WHERE rows_done > 200"), 120,
                    "the import to write")[0][0]
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    killed_at = imports.sql("SELECT status, rows_done FROM site_imports")[0]
    assert "importing" == killed_at[0]
    assert done <= killed_at[1] < 40_000

    processes.start("worker")
    wait_for(lambda: imports.sql("SELECT 1 FROM site_imports WHERE status IN ('completed', 'failed')"), 180,
             "the import to end")

    assert [("completed", 40_000, 100.0)] == imports.sql("SELECT status, rows_done, percent FROM site_imports")
    assert [(40_000, pageviews)] == imports.sql("SELECT count(*), sum(pageviews) FROM imported_pages")
    assert 2 <= imports.sql("SELECT attempts FROM site_imports")[0][0]
