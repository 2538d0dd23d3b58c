"""Primary failover seen by a client: HAProxy on Patroni-style health checks against libpq multi-host URLs.

On demand: ``python -m tests.benchmarks.bench_pg_failover`` or ``make bench
PYTEST_ARGS=tests/benchmarks/bench_pg_failover.py`` (prints figures; not part of ``make test``). Needs
Debian's ``haproxy`` (``make system-deps EXTRA_APT=haproxy``).

Two PostgreSQL clusters on 127.0.0.1: a primary and a streaming standby (``pg_basebackup -R``). Each has a
small HTTP responder that answers ``GET /primary`` the way Patroni's REST API does (200 on the read-write
node, 503 on a replica), so that HAProxy runs with the multi-host role's own settings
(ansible/roles/beacon_haproxy: ``option httpchk GET /primary``, ``inter 1000 fall 2 rise 1``,
``on-marked-down shutdown-sessions``, ``timeout connect 3s``, ``timeout check 2s``). Patroni itself is not
run: its leader lease decides *when* a standby is promoted, and that is the same for both ways of reaching
it; what differs, and what this measures, is how long after the promotion each way writes again.

The primary's host "loses power": every process of the old primary and its responder is frozen (SIGSTOP: a
connection gets no answer, as from a host that lost power; on loopback the kernel still completes the TCP
handshake, so a connect does not fail, it waits, like a SYN into silence). ``BENCH_DETECT`` seconds later
(default 10, about Patroni's ``ttl`` minus a loop) the standby is promoted (``pg_ctl promote``). From then,
two clients each open a new connection per attempt (what a pool does once its connection broke) and insert
one row:

- ``haproxy``: ``host=127.0.0.1 port=<HAProxy>`` with ``connect_timeout=3``;
- ``libpq``: ``host=127.0.0.1,127.0.0.1 port=<old>,<new> target_session_attrs=read-write connect_timeout=2``
  (the old primary listed first: the order an inventory gives when data1 is the one that died);
- ``libpq-rw``: the same with the hosts the other way round (the standby first, the old primary last).

Printed: seconds from the promotion to each client's first committed insert, and what each new connection
costs afterwards while the old primary stays down (median of ``BENCH_CONNECTIONS``, default 10).
"""

from __future__ import annotations

import contextlib
import http.server
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest

from app.devstack import Postgres, _chown, _run, free_port, postgres_bindir, wait_for_port

DETECT = float(os.environ.get("BENCH_DETECT", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "10"))

HAPROXY_CFG = """
global
    maxconn 200
defaults
    mode tcp
    timeout connect 3s
    timeout client 30m
    timeout server 30m
    timeout check 2s
listen postgresql_primary
    bind 127.0.0.1:{port}
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 1000 fall 2 rise 1 on-marked-down shutdown-sessions
    server pg1 127.0.0.1:{pg1} check port {check1}
    server pg2 127.0.0.1:{pg2} check port {check2}
"""


class Responder:
    """Answers ``GET /primary`` like Patroni: 200 when the node is read-write, 503 otherwise; silent when
    frozen (its host lost power)."""

    def __init__(self, node: Postgres, password: str) -> None:
        self.node, self.password = node, password
        self.frozen = threading.Event()
        self.port = free_port()
        responder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if responder.frozen.is_set():
                    time.sleep(3600)
                    return
                self.send_response(200 if self.path == "/primary" and responder.read_write() else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def read_write(self) -> bool:
        try:
            with psycopg.connect(host="127.0.0.1", port=self.node.port, user="postgres", password=self.password,
                                 dbname="postgres", connect_timeout=1) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                return row is not None and row[0] is False
        except psycopg.Error:
            return False


def postmaster_tree(node: Postgres) -> list[int]:
    """The postmaster's PID and its children's (every process of the cluster)."""
    leader = int((node.datadir / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{leader}/task/{leader}/children").read_text().split()
    return [leader, *map(int, children)]


def insert(conninfo: str) -> float:
    """Open a new connection, insert one row and commit; return the seconds it took (raises on failure)."""
    started = time.monotonic()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO probe DEFAULT VALUES")
    return time.monotonic() - started


def first_write(conninfo: str, since: float, results: dict[str, float], name: str) -> None:
    while time.monotonic() - since < 120:
        try:
            insert(conninfo)
        except psycopg.Error:
            time.sleep(0.05)
            continue
        results[name] = time.monotonic() - since
        return


def start_standby(primary: Postgres, standby: Postgres, password: str) -> None:
    """``standby`` streaming from ``primary`` (pg_basebackup -R), started."""
    standby._prepare()  # the same place and ownership as an initdb-made cluster
    _chown(standby.home, standby.user)
    _run([str(postgres_bindir() / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U",
          "postgres", "-D", str(standby.datadir), "-R", "-X", "stream", "-c", "fast"],
         user=standby.user, env={**os.environ, "PGPASSWORD": password}, what="pg_basebackup")
    standby.start()


def start_haproxy(root: Path, port: int, nodes: list[tuple[Postgres, Responder]]) -> subprocess.Popen[bytes]:
    cfg = root / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.format(port=port, pg1=nodes[0][0].port, pg2=nodes[1][0].port,
                                      check1=nodes[0][1].port, check2=nodes[1][1].port))
    haproxy = subprocess.Popen(["haproxy", "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_for_port(port, 10)
    return haproxy


def run() -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Seconds from the promotion to each client's first write, and the median seconds of a new connection
    plus an insert before the failure and after it (old primary still down), per client."""
    root = Path(tempfile.mkdtemp(prefix="beacon-bench-failover-"))
    password = secrets.token_hex(16)
    primary = Postgres(root / "pg1", free_port(), password)
    standby = Postgres(root / "pg2", free_port(), password)
    frozen: list[int] = []
    haproxy: subprocess.Popen[bytes] | None = None
    responders: list[Responder] = []
    try:
        primary.init()
        primary.start()
        primary.psql("CREATE TABLE probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
        start_standby(primary, standby, password)
        responders = [Responder(primary, password), Responder(standby, password)]
        for responder in responders:
            responder.thread.start()
        port = free_port()
        haproxy = start_haproxy(root, port, [(primary, responders[0]), (standby, responders[1])])
        auth = f"user=postgres password={password} dbname=postgres"
        urls = {
            "haproxy": f"host=127.0.0.1 port={port} connect_timeout=3 {auth}",
            "libpq": (f"host=127.0.0.1,127.0.0.1 port={primary.port},{standby.port} "
                      f"target_session_attrs=read-write connect_timeout=2 {auth}"),
            "libpq-rw": (f"host=127.0.0.1,127.0.0.1 port={standby.port},{primary.port} "
                         f"target_session_attrs=read-write connect_timeout=2 {auth}"),
        }
        time.sleep(3)  # HAProxy's checks have seen the primary up
        before = {name: statistics.median(insert(url) for _ in range(CONNECTIONS)) for name, url in urls.items()}

        responders[0].frozen.set()
        frozen = postmaster_tree(primary)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(DETECT)
        _run([str(postgres_bindir() / "pg_ctl"), "-D", str(standby.datadir), "-w", "promote"], user=standby.user,
             what="promote")
        promoted = time.monotonic()
        results: dict[str, float] = {}
        threads = [threading.Thread(target=first_write, args=(url, promoted, results, name))
                   for name, url in urls.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = {name: statistics.median(insert(url) for _ in range(CONNECTIONS)) for name, url in urls.items()
                 if name in results}
        return results, before, after
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        for responder in responders:
            responder.frozen.clear()
            responder.server.shutdown()
            responder.server.server_close()
        if haproxy is not None:
            haproxy.terminate()
            haproxy.wait(10)
        for node in (standby, primary):
            with contextlib.suppress(Exception):
                node.stop()
        shutil.rmtree(root, ignore_errors=True)
        for node in (standby, primary):
            with contextlib.suppress(Exception):
                node.remove()


def report(results: dict[str, float], before: dict[str, float], after: dict[str, float]) -> str:
    lines = [f"old primary silent for {DETECT:g} s, then the standby promoted; a new connection per attempt",
             f"{'client':9} {'first write after promotion':>28} {'connect+insert before':>22} "
             f"{'connect+insert after':>21}"]
    for name, median in before.items():
        first = results.get(name)
        lines.append(f"{name:9} {'none in 120 s' if first is None else f'{first:.2f} s':>28} "
                     f"{median * 1000:19.1f} ms {after.get(name, float('nan')) * 1000:18.1f} ms")
    return "\n".join(lines)


def test_pg_failover_benchmark() -> None:
    """Prints the figures; asserts only that every client writes to the new primary."""
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed: make system-deps EXTRA_APT=haproxy")
    results, before, after = run()
    print(f"\n{report(results, before, after)}")
    assert set(before) == set(results), f"no write after the promotion through {set(before) - set(results)}"


if __name__ == "__main__":
    print(report(*run()))
