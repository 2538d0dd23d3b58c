"""systemd/beacon-reload.py (``systemctl reload beacon``) against a real circusd shaped like circus.ini.

Watchers as in production: an HTTP service of two processes sharing a port (SO_REUSEPORT), a worker pool that
listens only for its /metrics, a singleton scheduler that also serves /metrics, and one that listens on nothing.
Each process takes a moment to "import" before it binds, as Beacon's do.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.settings import CODE_DIR
from app.devstack import Circus, free_port

RELOAD = CODE_DIR / "systemd" / "beacon-reload.py"

# Binds host:port with SO_REUSEPORT after a start-up delay, answers "ok" to every connection, and on SIGTERM
# finishes the connection it holds and those the kernel has already queued to it, then stops listening and exits
# (the graceful stop of a real server: a SIGTERM between accept and answer used to drop that connection
# unanswered, and closing a listener resets the connections still in its queue).
SERVER = textwrap.dedent("""\
    import signal, socket, sys, time
    time.sleep(1.0)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", int(sys.argv[1])))
    listener.listen(64)
    listener.settimeout(0.1)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def answer(connection):
        connection.settimeout(None)
        connection.sendall(b"ok")
        connection.close()

    while not stopping:
        try:
            answer(listener.accept()[0])
        except TimeoutError:
            continue
    listener.setblocking(False)
    while True:
        try:
            answer(listener.accept()[0])
        except BlockingIOError:
            break
    listener.close()
""")

CONFIG = textwrap.dedent("""\
    [circus]
    endpoint = ipc://$(circus.env.BEACON_RUN_DIR)/circus.sock
    pubsub_endpoint = ipc://$(circus.env.BEACON_RUN_DIR)/circus-pubsub.sock
    statsd = False
    check_delay = 1

    [watcher:api]
    cmd = {python} {server} {api_port}
    numprocesses = 2
    copy_env = True
    graceful_timeout = 5

    [watcher:worker]
    cmd = {python} {server} {worker_port}
    numprocesses = 2
    copy_env = True
    graceful_timeout = 5

    [watcher:scheduler]
    cmd = {python} {server} {scheduler_port}
    numprocesses = 1
    singleton = True
    copy_env = True
    graceful_timeout = 5

    [watcher:quiet]
    cmd = {python} -c "import time; time.sleep(3600)"
    numprocesses = 1
    copy_env = True
    graceful_timeout = 5
""")
WATCHERS = ("api", "worker", "scheduler", "quiet")


@pytest.fixture
def circus(tmp_path: Path) -> Iterator[tuple[Circus, int]]:
    server = tmp_path / "server.py"
    server.write_text(SERVER)
    api_port = free_port()
    config = tmp_path / "circus.ini"
    config.write_text(CONFIG.format(python=sys.executable, server=server, api_port=api_port,
                                    worker_port=free_port(), scheduler_port=free_port()))
    run_dir = tmp_path / "run"
    started = Circus({"BEACON_RUN_DIR": str(run_dir), "BEACON_LOG_DIR": str(tmp_path / "log")}, config=config)
    started.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if all(len(_pids(started, w)) == n for w, n in (("api", 2), ("worker", 2), ("scheduler", 1))):
                    with socket.create_connection(("127.0.0.1", api_port), 1) as probe:
                        if probe.recv(2) == b"ok":
                            break
            except Exception:
                pass
            time.sleep(0.2)
        yield started, api_port
    finally:
        started.stop(30)


def _pids(circus: Circus, watcher: str) -> set[str]:
    return {p for p in circus.ctl("list", watcher, timeout=10).strip().split(",") if p}


class Probe(threading.Thread):
    """Connects to the HTTP watcher's port in a loop and counts what fails."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stopped = threading.Event()
        self.answered = 0
        self.failures: list[str] = []

    def run(self) -> None:
        deadline = time.monotonic() + 120
        while not self.stopped.is_set() and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 2) as connection:
                    if connection.recv(2) == b"ok":
                        self.answered += 1
                    else:
                        self.failures.append("no answer")
            except OSError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.02)


def test_reload_rolls_listeners_restarts_the_singleton_and_refuses_nothing(circus: tuple[Circus, int]) -> None:
    """Every watcher's processes are replaced, counts unchanged, and the shared port never refuses."""
    server, api_port = circus
    before = {w: _pids(server, w) for w in WATCHERS}
    assert {"api": 2, "worker": 2, "scheduler": 1, "quiet": 1} == {w: len(p) for w, p in before.items()}

    probe = Probe(api_port)
    probe.start()
    try:
        completed = subprocess.run(
            [sys.executable, str(RELOAD)], capture_output=True, text=True, timeout=180, check=False,
            env={**os.environ, "BEACON_RUN_DIR": server.environment["BEACON_RUN_DIR"], "CIRCUSCTL_ENDPOINT": "",
                 "BEACON_RELOAD_TIMEOUT": "30"},
        )
    finally:
        probe.stopped.set()
        probe.join(10)

    assert 0 == completed.returncode, completed.stdout + completed.stderr
    # The listeners roll (new ones first), the singleton and the quiet one are restarted.
    assert {"reloaded api", "reloaded worker", "restarted scheduler", "restarted quiet"} == \
        set(completed.stdout.splitlines())
    after = {w: _pids(server, w) for w in WATCHERS}
    assert {w: set() for w in WATCHERS} == {w: before[w] & after[w] for w in WATCHERS}
    assert {w: len(before[w]) for w in WATCHERS} == {w: len(after[w]) for w in WATCHERS}
    assert probe.answered > 20
    assert [] == probe.failures
