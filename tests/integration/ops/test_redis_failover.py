"""Beacon's processes, run as production runs them, follow a Redis failover: three redis-servers with a Sentinel
each on loopback, an ingest process (Granian on uvloop), the realtime process, the Dramatiq worker and the
scheduler, all through Sentinel; the master's host is lost under a steady stream of events.

What must hold (issue #19, "power off the Redis master"): every process reaches the promoted replica within a
bound — ingest answers 202 again, the realtime process is subscribed on the new master, the worker's
heartbeat (sent by the scheduler through Dramatiq) is written there — no request waits as long as Nginx's
30 s ``proxy_read_timeout`` (it would answer 504), and every 202 is a row in PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from app.core.settings import Settings
from app.devstack import free_port, stop_processes, wait_for_port
from tests.support.beacon import BEACON
from tests.support.ingest import UA, sql
from tests.support.polling import wait_until
from tests.support.sentinel import RedisHost, SentinelGroup, sentinel_knows_replicas, start_group

DB = 5
SITE = "failover.example"
BOUND = 30.0
"""Seconds from the promotion within which every process must work on the new master."""
NGINX_READ_TIMEOUT = 30.0
"""``proxy_read_timeout`` of nginx/beacon.conf.j2: a request answered later is a 504 to the client."""


@pytest.fixture()
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    started = start_group(tmp_path / "redis", count=3, down_after_ms=1000)
    try:
        master = started.client(started.hosts[0].port)
        wait_until(lambda: master.info("replication").get("connected_slaves") == 2, 15,
                   "both replicas connected")
        wait_until(lambda: all(_sentinel_peers(started, host) == 2 for host in started.hosts), 20,
                   "every Sentinel to know the two others")
        wait_until(lambda: all(sentinel_knows_replicas(host.sentinel_port, started.password, started.master_name) == 2
                               for host in started.hosts), 20, "every Sentinel to know both replicas")
        yield started
    finally:
        started.stop()


def _sentinel_peers(group: SentinelGroup, host: RedisHost) -> int:
    state: dict[str, Any] = redis.Redis(port=host.sentinel_port, password=group.password, decode_responses=True
                                        ).sentinel_master(group.master_name)  # type: ignore[assignment]
    return int(state["num-other-sentinels"])


@dataclass
class Sent:
    path: str
    started: float
    finished: float
    status: int | str


class Load:
    """Pageviews to the ingest process, each with its own pathname, with Nginx's read timeout."""

    def __init__(self, url: str, per_second: float = 5.0) -> None:
        self.url, self.interval = url, 1.0 / per_second
        self.sent: list[Sent] = []
        self.stopped = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(2)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        for thread in self._threads:
            thread.join(NGINX_READ_TIMEOUT + 5)

    def _run(self, number: int) -> None:
        sequence = 0
        with httpx.Client(base_url=self.url, timeout=NGINX_READ_TIMEOUT) as client:
            while not self.stopped.is_set():
                sequence += 1
                path = f"/failover/{number}/{sequence}"
                body = json.dumps({"name": "pageview", "url": f"https://{SITE}{path}", "domain": SITE})
                started = time.monotonic()
                try:
                    status: int | str = client.post("/api/event", content=body, headers={
                        "User-Agent": UA, "X-Forwarded-For": f"198.51.100.{sequence % 200 + 1}"}).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                finished = time.monotonic()
                self.sent.append(Sent(path, started, finished, status))
                self.stopped.wait(max(0.0, self.interval - (finished - started)))

    def accepted_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first 202 to a request sent after it."""
        return min((s.finished - moment for s in self.sent if s.started >= moment and s.status == 202), default=None)


@dataclass
class Processes:
    ingest_url: str
    realtime_port: int
    log_dir: Path
    started: list[subprocess.Popen[bytes]]

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
                         for path in sorted(self.log_dir.glob("*.log")))


@pytest.fixture()
def processes(environment: dict[str, str], settings: Settings, group: SentinelGroup, db: None,
              tmp_path: Path) -> Iterator[Processes]:
    sql(settings, "INSERT INTO sites (domain) VALUES (:d)", {"d": SITE})
    ingest_port, realtime_port = free_port(), free_port()
    env = {**os.environ, **environment,
           "BEACON_REDIS_URL": group.url(DB), "BEACON_REDIS_SENTINELS": group.sentinels_setting(),
           "BEACON_INGEST_PORT": str(ingest_port), "BEACON_REALTIME_PORT": str(realtime_port),
           "BEACON_WORKER_METRICS_PORT": str(free_port()), "BEACON_SCHEDULER_METRICS_PORT": str(free_port()),
           "BEACON_HEARTBEAT_INTERVAL": "1", "BEACON_WORKER_THREADS": "2", "BEACON_INGEST_RATE_PER_IP": "0"}
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    started = []
    for argv in (("serve", "ingest"), ("serve", "realtime"), ("worker",), ("scheduler",)):
        with (log_dir / f"{'-'.join(argv)}.log").open("ab") as log:
            started.append(subprocess.Popen([BEACON, *argv], env=env, stdout=log, stderr=log))
    try:
        wait_for_port(ingest_port, 30)
        wait_for_port(realtime_port, 30)
        yield Processes(f"http://127.0.0.1:{ingest_port}", realtime_port, log_dir, started)
    finally:
        stop_processes(started, 30)


def _on_master(group: SentinelGroup, port: int) -> tuple[float, int]:
    """(the worker's last heartbeat, pattern subscriptions) on the redis-server at ``port``; (0, 0) if down."""
    client = group.client(port, DB)
    try:
        raw = client.get("beacon:heartbeat:worker")
        return (float(raw) if raw else 0.0), int(client.pubsub_numpat())
    except redis.RedisError:
        return 0.0, 0


def _promoted(group: SentinelGroup, survivors: list[RedisHost], old: RedisHost) -> int | None:
    """The port of the master the surviving Sentinels name, once it is not ``old``."""
    ports = {group.master_port(host) for host in survivors}
    return next((port for port in ports if port not in (None, old.port)), None)


def _ingest_healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("loss", ["freeze", "kill"])
def test_every_process_follows_the_master_when_its_host_is_lost(group: SentinelGroup, processes: Processes,
                                                                 settings: Settings, loss: str) -> None:
    old = group.hosts[0]
    survivors = group.hosts[1:]
    # Ready on the first master: ingest healthy, realtime subscribed, the worker's heartbeat written.
    wait_until(lambda: _ingest_healthy(processes.ingest_url), 30, "ingest healthy")
    wait_until(lambda: all(_on_master(group, old.port)), 60, "heartbeat and realtime subscription on the master")

    with Load(processes.ingest_url) as load:
        time.sleep(3)
        lost_at = time.monotonic()
        getattr(old, loss)()
        promoted = wait_until(lambda: _promoted(group, survivors, old) or 0, 30, "a Sentinel to promote a replica",
                              interval=0.2)
        promoted_at, promoted_wall = time.monotonic(), time.time()
        # Every process on the new master within the bound.
        def state() -> dict[str, bool]:
            heartbeat, patterns = _on_master(group, promoted)
            return {"realtime subscribed": patterns >= 1, "worker heartbeat": heartbeat > promoted_wall,
                    "ingest 202": load.accepted_after(promoted_at) is not None}

        with contextlib.suppress(AssertionError):
            wait_until(lambda: all(state().values()), BOUND, "every process on the new master", interval=0.5)
        reached = state()
        assert all(reached.values()), f"{reached} {BOUND:g} s after the promotion\n{processes.logs()}"
        time.sleep(3)
    assert _ingest_healthy(processes.ingest_url), processes.logs()

    slow = [s for s in load.sent if s.finished - s.started >= NGINX_READ_TIMEOUT - 1]
    failed = [s for s in load.sent if s.status not in (202, 503)]
    print(f"[redis {loss}] promoted {promoted_at - lost_at:.1f} s after the loss; {len(load.sent)} sent, "
          f"{sum(s.status == 202 for s in load.sent)} accepted, {len(failed)} failed, slowest "
          f"{max(s.finished - s.started for s in load.sent):.1f} s; first 202 after the promotion "
          f"{load.accepted_after(promoted_at):.1f} s")
    assert [] == slow, processes.logs()
    assert [] == failed, processes.logs()
    stored = {str(row[0]) for row in sql(settings, "SELECT pathname FROM events WHERE pathname LIKE '/failover/%'")}
    assert set() == {s.path for s in load.sent if s.status == 202} - stored
