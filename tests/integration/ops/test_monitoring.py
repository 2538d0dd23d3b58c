"""The monitoring report on real servers: PostgreSQL, Redis, a real circusd, a loopback /metrics, the api.

Ingest's own /metrics comes with the metrics work; until a test can start that ingest, ``ingest_metrics`` serves
the agreed counters (``beacon_ingest_events_*_total``) from prometheus-client's own HTTP server on loopback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import redis
from prometheus_client import CollectorRegistry, Counter, start_http_server
from sqlalchemy import text

from app.core.db import make_engine
from app.core.monitoring import (
    Processes,
    Sample,
    processes,
    read_samples,
    record_sample,
    samples_key,
    snapshot,
    take_sample,
)
from app.core.redis import Keys
from app.core.resources import Resources
from app.core.settings import Settings, load_settings
from app.devstack import Circus, free_port, stop_processes, wait_for_port
from app.domain.accounts.session import new_session
from app.domain.admin.services import monitoring_report
from tests.support.beacon import BEACON
from tests.support.servers import running_redis

WATCHERS = textwrap.dedent("""\
    [circus]
    endpoint = ipc://$(circus.env.BEACON_RUN_DIR)/circus.sock
    pubsub_endpoint = ipc://$(circus.env.BEACON_RUN_DIR)/circus-pubsub.sock
    statsd = False
    check_delay = 1

    [watcher:ingest]
    cmd = {python} -c "import time; time.sleep(3600)"
    numprocesses = 2
    copy_env = True

    [watcher:scheduler]
    cmd = {python} -c "import time; time.sleep(3600)"
    numprocesses = 1
    copy_env = True
""")


@dataclasses.dataclass
class IngestMetrics:
    url: str
    accepted: Counter
    dropped: Counter


@pytest.fixture(scope="module")
def ingest_metrics() -> Iterator[IngestMetrics]:
    registry = CollectorRegistry()
    accepted = Counter("beacon_ingest_events_accepted", "Events stored.", registry=registry)
    dropped = Counter("beacon_ingest_events_dropped", "Events dropped, by reason.", ["reason"], registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield IngestMetrics(f"http://127.0.0.1:{port}", accepted, dropped)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def circus(environment: dict[str, str], state_dir: Path) -> Iterator[Circus]:
    """circusd with two watchers (two sleeping processes and one), on its own run directory."""
    directory = state_dir / "monitoring-circus"
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "circus.ini"
    config.write_text(WATCHERS.format(python=sys.executable))
    env = {**environment, "BEACON_RUN_DIR": str(directory / "run"), "BEACON_LOG_DIR": str(directory / "log")}
    started = Circus(env, config=config)
    started.start()
    try:
        deadline = time.monotonic() + 30
        while "ingest: active" not in _status(started) and time.monotonic() < deadline:
            time.sleep(0.2)
        yield started
    finally:
        started.stop(30)


def _status(circus: Circus) -> str:
    try:
        return circus.ctl("status", timeout=5)
    except Exception:
        return ""


def _settings(environment: dict[str, str], **overrides: str) -> Settings:
    return load_settings({**environment, **overrides})


@pytest.fixture
def monitored(environment: dict[str, str], circus: Circus, ingest_metrics: IngestMetrics, db: None,
              redis_client: redis.Redis) -> Settings:
    """Settings that point at the test circusd and the loopback /metrics."""
    return _settings(environment, BEACON_RUN_DIR=circus.environment["BEACON_RUN_DIR"],
                     BEACON_INGEST_URL=ingest_metrics.url)


async def test_circusd_reports_every_watcher_with_cpu_memory_and_uptime(monitored: Settings) -> None:
    """Processes come from circusd's stats: both ingest processes and the scheduler, with RSS and uptime."""
    part = await processes(monitored.paths.run_dir, 5.0)
    assert {"ingest": 2, "scheduler": 1} == {w.name: len(w.processes) for w in part.watchers}
    for proc in (p for w in part.watchers for p in w.processes):
        assert proc.memory_bytes is not None and proc.memory_bytes > 1_000_000
        assert proc.uptime_seconds is not None and proc.uptime_seconds >= 0
        assert proc.cpu_percent is not None


async def test_snapshot_reads_postgres_redis_queues_ingest_and_rollups(monitored: Settings) -> None:
    """Every part is filled from its real component, none has an error."""
    engine = make_engine(monitored.database)
    with engine.begin() as conn:
        site = conn.execute(text("INSERT INTO sites (domain) VALUES ('lag.example') RETURNING id")).scalar_one()
        conn.execute(text("INSERT INTO sites (domain) VALUES ('fresh.example')"))
        conn.execute(text("INSERT INTO rollup_state (site_id, timezone, rolled_until) "
                          "VALUES (:s, 'UTC', current_date - 5)"), {"s": site})
    engine.dispose()
    keys = Keys(monitored.redis.key_prefix)
    client = redis.Redis.from_url(monitored.redis.url)
    client.rpush(f"{keys.prefix}dramatiq:default", "m1", "m2")
    client.zadd(f"{keys.prefix}dramatiq:imports.XQ", {"m3": 1.0})
    client.close()
    resources = Resources.open(monitored, "test")
    try:
        parts = await snapshot(monitored, resources.engine, resources.redis, resources.keys)
    finally:
        await resources.close()
    errors = {name: getattr(parts, name).error for name in ("processes", "postgres", "redis", "queues", "ingest",
                                                            "rollups")}
    assert dict.fromkeys(errors) == errors
    assert parts.postgres.max_connections > 0 and sum(parts.postgres.connections.values()) >= 1
    assert "sites" in {t.name for t in parts.postgres.tables}
    assert parts.redis.used_memory_bytes > 0 and parts.redis.connected_clients >= 1
    queued = {(q.name, q.ready, q.dead_letters) for q in parts.queues.queues}
    assert {("default", 2, 0), ("imports", 0, 1), ("system", 0, 0)} <= queued
    assert "metrics" == parts.ingest.source
    # Five days back and two days of finality: the site waits since the first of the missing final days.
    assert ["lag.example"] == [s.domain for s in parts.rollups.sites]
    assert parts.rollups.worst_seconds is not None and 2 * 86400 < parts.rollups.worst_seconds < 4 * 86400
    assert (1, 1) == (parts.rollups.sites_behind, parts.rollups.never_rolled)


async def test_samples_measure_ingest_rate_from_its_counter(monitored: Settings, ingest_metrics: IngestMetrics,
                                                            redis_client: redis.Redis) -> None:
    """Two samples a minute apart: the rate is the counter's increase; the list keeps 60 at most."""
    keys = Keys(monitored.redis.key_prefix)
    ingest_metrics.accepted.inc(0)
    first = await take_sample(monitored)
    assert (None, "metrics") == (first.ingest_per_minute, first.ingest_source)
    # Pretend the first sample was taken 60 s ago, then count 30 events.
    redis_client.lset(samples_key(keys), 0, _encode(first, at=first.at - 60))
    ingest_metrics.accepted.inc(30)
    second = await take_sample(monitored)
    assert "metrics" == second.ingest_source
    assert second.ingest_per_minute is not None and 29.0 <= second.ingest_per_minute <= 30.0
    assert second.pids is not None and 2 == len(second.pids["ingest"])
    for _ in range(70):
        redis_client.lpush(samples_key(keys), _encode(first, at=time.time()))
    redis_client.ltrim(samples_key(keys), 0, 200)
    await take_sample(monitored)
    assert 60 == redis_client.llen(samples_key(keys))


async def test_without_ingest_metrics_the_rate_comes_from_postgres(environment: dict[str, str], circus: Circus,
                                                                   db: None, redis_client: redis.Redis) -> None:
    """Ingest's /metrics refused: the sample counts the events PostgreSQL stored in the last minute."""
    settings = _settings(environment, BEACON_RUN_DIR=circus.environment["BEACON_RUN_DIR"],
                         BEACON_INGEST_URL=f"http://127.0.0.1:{free_port()}")
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        site = conn.execute(text("INSERT INTO sites (domain) VALUES ('rate.example') RETURNING id")).scalar_one()
        for _ in range(3):
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, pathname, visitor_id, session_id, hostname) "
                "VALUES (:s, now(), 'pageview', '/', 1, 1, 'rate.example')"), {"s": site})
    engine.dispose()
    sample = await take_sample(settings)
    assert (3.0, "database") == (sample.ingest_per_minute, sample.ingest_source)


async def test_a_restarted_process_is_counted(monitored: Settings, circus: Circus) -> None:
    """A process killed between two samples shows as one restart of its watcher in the last hour."""
    await take_sample(monitored)
    part = await processes(monitored.paths.run_dir, 5.0)
    victim = next(w for w in part.watchers if w.name == "scheduler").processes[0].pid
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        part = await processes(monitored.paths.run_dir, 5.0)
        pids = [p.pid for w in part.watchers if w.name == "scheduler" for p in w.processes]
        if pids and victim not in pids:
            break
        time.sleep(0.3)
    resources = Resources.open(monitored, "test")
    try:
        report = await monitoring_report(resources)
    finally:
        await resources.close()
    assert {"ingest": 0, "scheduler": 1} == {w.name: w.restarts_last_hour for w in report.processes.watchers}


async def test_report_degrades_part_by_part_when_redis_stops(environment: dict[str, str], circus: Circus,
                                                             ingest_metrics: IngestMetrics, state_dir: Path,
                                                             db: None) -> None:
    """With Redis stopped, Redis, queues, WebSockets and charts carry errors; processes, PostgreSQL, ingest's
    counters and rollups are still there."""
    with running_redis(state_dir / "monitoring-redis") as own:
        settings = _settings(environment, BEACON_RUN_DIR=circus.environment["BEACON_RUN_DIR"],
                             BEACON_INGEST_URL=ingest_metrics.url, BEACON_REDIS_URL=own.url(0))
        resources = Resources.open(settings, "test")
        try:
            await record_sample(resources.redis, resources.keys, Sample(at=time.time(), queue_ready=3))
            assert 1 == len(await read_samples(resources.redis, resources.keys))
            own.stop()
            report = await monitoring_report(resources)
        finally:
            await resources.close()
    failed = {name for name in ("processes", "postgres", "redis", "queues", "realtime", "rollups")
              if getattr(report, name).error}
    assert {"redis", "queues", "realtime"} == failed
    assert report.charts_error is not None and "unavailable" in report.charts_error
    assert report.ingest.counters.error is None
    assert isinstance(report.processes, Processes) and report.processes.watchers


def _fields(sample: Sample) -> dict[str, object]:
    return {name: getattr(sample, name) for name in sample.__struct_fields__}


def _encode(sample: Sample, **changes: object) -> bytes:
    return msgspec.json.encode(Sample(**{**_fields(sample), **changes}))  # type: ignore[arg-type]


# -- through the api -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api(environment: dict[str, str], ingest_metrics: IngestMetrics) -> Iterator[str]:
    """An api process whose circusd is away (no control socket in its run directory)."""
    port = free_port()
    env = {**environment, "BEACON_API_PORT": str(port), "BEACON_BASE_URL": f"http://127.0.0.1:{port}",
           "BEACON_INGEST_URL": ingest_metrics.url}
    log_dir = Path(env["BEACON_LOG_DIR"])
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "monitoring-api.log").open("ab") as log:
        process = subprocess.Popen([BEACON, "serve", "api"], env={**os.environ, **env}, stdout=log, stderr=log)
    try:
        wait_for_port(port, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_processes([process], 20)


def _session(settings: Settings, client: redis.Redis, admin: bool) -> str:
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        user = conn.execute(text("INSERT INTO users (email, password_hash, is_admin) VALUES (:e, 'x', :a) "
                                 "RETURNING id, session_epoch"),
                            {"e": f"{secrets.token_hex(4)}@monitoring.test", "a": admin}).one()
    engine.dispose()
    session_id = secrets.token_hex(32)
    client.set(f"{settings.redis.key_prefix}sessions:{session_id}", json.dumps(new_session(user[0], user[1])), ex=600)
    return session_id


def test_monitoring_json_for_admins_with_circusd_away(api: str, settings: Settings, db: None,
                                                      redis_client: redis.Redis) -> None:
    """GET /api/admin/monitoring: every part present; circusd away is an error of its part only."""
    redis_client.lpush(samples_key(Keys(settings.redis.key_prefix)),
                       _encode(Sample(at=time.time() - 60, queue_ready=4, redis_memory_bytes=1_000_000)))
    cookie = {"beacon_session": _session(settings, redis_client, admin=True)}
    answer = httpx.get(f"{api}/api/admin/monitoring", cookies=cookie, timeout=30)
    assert 200 == answer.status_code, answer.text
    body = answer.json()
    assert {"generated_at", "processes", "postgres", "redis", "queues", "realtime", "ingest", "rollups", "charts",
            "charts_error", "cluster"} == set(body)
    assert body["cluster"] is None  # a single host: no Patroni, no Sentinels
    assert "circusd" in body["processes"]["error"]
    assert {None} == {body[name]["error"] for name in ("postgres", "redis", "queues", "realtime", "rollups")}
    assert [4.0] == [value for _, value in next(c for c in body["charts"] if c["key"] == "queue_ready")["points"]]


def test_monitoring_page_renders_every_section(api: str, settings: Settings, db: None,
                                               redis_client: redis.Redis) -> None:
    """The page renders every section, and says which part is unavailable."""
    cookie = {"beacon_session": _session(settings, redis_client, admin=True)}
    page = httpx.get(f"{api}/admin/monitoring", cookies=cookie, headers={"Accept": "text/html"}, timeout=30)
    assert 200 == page.status_code, page.text[:2000]
    for section in ("charts", "processes", "postgres", "redis", "queues", "realtime", "ingest", "rollups"):
        assert f'data-section="{section}"' in page.text
    assert "circusd&#39;s statistics are unavailable" in page.text or "circusd's statistics are unavailable" \
        in page.text


@pytest.mark.parametrize(("admin", "status"), [pytest.param(False, 403, id="not-admin"),
                                               pytest.param(None, 401, id="signed-out")])
def test_monitoring_is_for_admins_only(api: str, settings: Settings, db: None, redis_client: redis.Redis,
                                       admin: bool | None, status: int) -> None:
    """Other users get 403 and signed-out clients 401, as problem+json."""
    cookies = {} if admin is None else {"beacon_session": _session(settings, redis_client, admin=admin)}
    answer = httpx.get(f"{api}/api/admin/monitoring", cookies=cookies, timeout=30)
    assert status == answer.status_code
    assert answer.headers["content-type"].startswith("application/problem+json")
