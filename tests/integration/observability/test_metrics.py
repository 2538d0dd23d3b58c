"""Prometheus metrics: bounded labels, the multiprocess directory's life under Circus, settings."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry, generate_latest, multiprocess

from app.core import metrics_hooks
from app.core.errors import ConfigError
from app.core.settings import Settings, load_settings
from app.devstack import free_port
from services.compute.app import create_app as create_compute
from services.ingest.app import create_app as create_ingest


async def test_http_requests_are_counted_by_route_template_and_status_class(settings: Settings) -> None:
    """Labels name the route template and the status class, never the address as requested."""
    async with AsyncTestClient(app=create_compute(settings)) as client:
        await client.get("/health")
        await client.get("/sites/secret-site.example/nothing-here")
        exposition = (await client.get("/metrics")).text
    assert 'beacon_http_requests_total{method="GET",route="/health",status_class="2xx"}' in exposition
    assert 'beacon_http_requests_total{method="GET",route="<unmatched>",status_class="4xx"}' in exposition
    assert "secret-site.example" not in exposition
    assert "beacon_http_request_duration_seconds_bucket" in exposition


GAUGE_AND_COUNTER = """
from prometheus_client import Counter, Gauge
Gauge("beacon_test_live", "a live gauge", multiprocess_mode="livesum").set(7)
Counter("beacon_test_done", "a counter").inc(3)
"""


def collected(directory: Path) -> str:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry).decode()


def test_circus_hooks_retire_a_dead_process_and_wipe_at_start(tmp_path: Path) -> None:
    """A reaped process's live gauge goes, its counters stay; a watcher's start empties the directory."""
    directory = tmp_path / "metrics" / "api"
    watcher = types.SimpleNamespace(env={"PROMETHEUS_MULTIPROC_DIR": str(directory)})
    assert metrics_hooks.wipe(watcher, None, "before_start")
    process = subprocess.run([sys.executable, "-c", GAUGE_AND_COUNTER], check=True,
                             env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)})
    assert 0 == process.returncode
    before = collected(directory)
    # Circus's after_reap passes the pid of the process it reaped; the child's pid is in its files' names.
    pid = int(next(directory.glob("gauge_livesum_*.db")).stem.rsplit("_", 1)[1])
    assert metrics_hooks.mark_dead(watcher, None, "after_reap", process_pid=pid)
    after = collected(directory)
    assert "beacon_test_live 7.0" in before
    assert "beacon_test_live 7.0" not in after
    assert "beacon_test_done_total 3.0" in after
    assert metrics_hooks.wipe(watcher, None, "before_start")
    assert [] == list(directory.iterdir())


def test_hooks_leave_a_watcher_without_a_directory_alone(tmp_path: Path) -> None:
    """A watcher with no PROMETHEUS_MULTIPROC_DIR: nothing to wipe or retire, and the watcher still starts."""
    watcher = types.SimpleNamespace(env={})
    assert metrics_hooks.wipe(watcher, None, "before_start")
    assert metrics_hooks.mark_dead(watcher, None, "after_reap", process_pid=12345)


BASE = {"BEACON_DATABASE_URL": "postgresql://u:p@127.0.0.1/db", "BEACON_REDIS_URL": "redis://127.0.0.1",
        "BEACON_SECRET_KEY": "k" * 40, "BEACON_INTERNAL_TOKEN": "t" * 24}


@pytest.mark.parametrize(("name", "value"), [
    pytest.param("BEACON_SENTRY_SAMPLE_RATE", "1.5", id="sample-rate-above-1"),
    pytest.param("BEACON_SENTRY_TRACES_SAMPLE_RATE", "-0.1", id="traces-rate-negative"),
    pytest.param("BEACON_SENTRY_SAMPLE_RATE", "often", id="sample-rate-not-a-number"),
    pytest.param("BEACON_WORKER_METRICS_PORT", "0", id="worker-port-zero"),
    pytest.param("BEACON_SCHEDULER_METRICS_PORT", "70000", id="scheduler-port-too-high"),
])
def test_bad_observability_settings_stop_start_up_naming_the_variable(name: str, value: str) -> None:
    """A rate outside 0..1 or a port outside 1..65535 is refused with the variable's name."""
    with pytest.raises(ConfigError, match=name):
        load_settings({**BASE, name: value})


def test_observability_defaults() -> None:
    """No DSN: nothing goes to Sentry; the documented loopback ports; a release from the installed package."""
    observability = load_settings(BASE).observability
    assert ("", 9191, 9192) == (observability.sentry_dsn, observability.worker_metrics_port,
                                observability.scheduler_metrics_port)
    assert observability.release.startswith("beacon@")


BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def sample(exposition: str, line_start: str) -> float:
    """The value of the first sample line starting with ``line_start`` (0 when absent)."""
    for line in exposition.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_ingest_counts_its_503s_and_the_pool_its_errors_while_postgres_is_away(
        settings: Settings, redis_client: object) -> None:
    """With nothing listening where PostgreSQL should be, an event is a 503, counted, and so is the error."""
    # hold_seconds=0: answer 503 at once instead of holding the request through what could be a failover.
    away = dataclasses.replace(settings, database=dataclasses.replace(
        settings.database, url=f"postgresql+psycopg://nobody:nothing@127.0.0.1:{free_port()}/nowhere"),
        ingest=dataclasses.replace(settings.ingest, hold_seconds=0))
    async with AsyncTestClient(app=create_ingest(away)) as client:
        before = (await client.get("/metrics")).text
        answer = await client.post("/api/event", headers={"User-Agent": BROWSER, "Content-Type": "text/plain"},
                                   content='{"name":"pageview","url":"https://away.example/","domain":"away.example"}')
        after = (await client.get("/metrics")).text
    assert 503 == answer.status_code
    assert 1 == sample(after, "beacon_ingest_unavailable_total ") - sample(before, "beacon_ingest_unavailable_total ")
    assert 1 <= (sample(after, 'beacon_db_errors_total{kind="connection"}')
                 - sample(before, 'beacon_db_errors_total{kind="connection"}'))
