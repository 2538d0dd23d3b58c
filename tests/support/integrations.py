"""The integrations tests' stack (api, integrations service, worker, scheduler on a database and Redis db of
their own), a real HTTP receiver on loopback, and the sites and keys they use."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

from app.core.db import make_engine
from app.core.settings import DEFAULT_PORTS, Settings, load_settings
from app.devstack import Postgres, Redis, free_port, stop_processes, wait_for_port
from app.migrate import migrate
from tests.support.beacon import BEACON
from tests.support.servers import make_environment

KEY = "bk_integrations_owner_key_0123456789"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A webhook receiver on loopback. Paths choose its answer:

    ``/ok`` 200 · ``/gone`` 410 · ``/fail/<n>`` 500 for the first n requests of each webhook-id, then 200 ·
    ``/hang`` holds the first request of each webhook-id until released, then 200 · ``/redirect`` 302 to /ok.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.hung = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                item = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver.lock:
                    receiver.requests.append(item)
                    seen = sum(1 for r in receiver.requests if r.headers.get("webhook-id") == item.headers.get(
                        "webhook-id") and r.path == self.path)
                status = 200
                if self.path == "/gone":
                    status = 410
                elif self.path.startswith("/fail/"):
                    status = 500 if seen <= int(self.path.rsplit("/", 1)[1]) else 200
                elif self.path == "/hang" and seen == 1:
                    receiver.hung.set()
                    receiver.release.wait(60)
                elif self.path == "/redirect":
                    status = 302
                payload = b"x" * 5000 if self.path == "/big" else b"received"
                try:
                    self.send_response(status)
                    if status == 302:
                        self.send_header("Location", "/ok")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
        self.release.set()
        self.release = threading.Event()
        self.hung.clear()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Stack:
    api: str
    environment: dict[str, str]
    settings: Settings
    engine: Engine
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"integrations-{name}.log").open("ab") as log:
            process = subprocess.Popen([BEACON, *args], env={**os.environ, **self.environment},
                                       stdout=log, stderr=log)
        self.processes[name] = process
        return process

    def kill(self, name: str) -> None:
        """SIGKILL a process, as a crash or the OOM killer would."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        stop_processes(list(self.processes.values()), 20)
        self.processes.clear()

    def sql(self, statement: str, **params: object) -> list[Any]:
        with self.engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []

    def client(self, key: str = KEY) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=15, headers={"Authorization": f"Bearer {key}"})


def start_stack(postgres: Postgres, redis_server: Redis, state: Path, database: str, redis_db: int,
                extra: dict[str, str], names: tuple[str, ...]) -> Stack:
    ports = {name: free_port() for name in DEFAULT_PORTS}
    environment = make_environment(postgres, redis_server, state, database, redis_db=redis_db, ports=ports)
    environment.update({"BEACON_BASE_URL": f"http://127.0.0.1:{ports['api']}", "BEACON_WORKER_THREADS": "2",
                        "BEACON_WEBHOOKS_RETRY_SCALE": "0.001", "BEACON_WEBHOOKS_LEASE": "3",
                        "BEACON_WEBHOOKS_READ_TIMEOUT": "20", **extra})
    settings = load_settings(environment)
    migrate(settings)
    log_dir = Path(os.environ.get("BEACON_TEST_LOG_DIR") or environment["BEACON_LOG_DIR"])
    log_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(f"http://127.0.0.1:{ports['api']}", environment, settings, make_engine(settings.database), log_dir)
    try:
        for name in names:
            stack.start(name, *(("serve", name) if name in DEFAULT_PORTS else (name,)))
        for name in names:
            if name in DEFAULT_PORTS:
                wait_for_port(ports[name], 120)  # the machine may be busy
    except BaseException:
        stack.stop()
        raise
    return stack


@dataclass
class Site:
    id: int
    domain: str
    owner: int


def make_site(stack: Stack, domain: str = "hooks.example") -> Site:
    """A site owned by a user with the ``sites:write`` key :data:`KEY`."""
    user = stack.sql("INSERT INTO users (email, password_hash) VALUES ('owner@hooks.example', 'x') RETURNING id")[0][0]
    site = stack.sql("INSERT INTO sites (domain) VALUES (:d) RETURNING id", d=domain)[0][0]
    stack.sql("INSERT INTO memberships (site_id, user_id, role) VALUES (:s, :u, 'owner')", s=site, u=user)
    stack.sql("INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes) VALUES (:u, 'k', 'bk_', :h, :s)",
              u=user, h=hashlib.sha256(KEY.encode()).digest(), s=["sites:write", "stats:read"])
    return Site(site, domain, user)


def delivery_status(stack: Stack, delivery_id: int) -> str:
    return str(stack.sql("SELECT status FROM webhook_deliveries WHERE id = :d", d=delivery_id)[0][0])


def body(received: Received) -> dict[str, Any]:
    return dict(json.loads(received.body))
