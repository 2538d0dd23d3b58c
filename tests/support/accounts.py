"""An api and a realtime process of their own (plain HTTP base URL, so cookies work without TLS), and helpers
that build users, sites and sessions straight in PostgreSQL and Redis: the accounts, sites, dashboard, Stats API
and api tests share them through the fixtures in ``tests/integration/conftest.py``."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from argon2 import PasswordHasher
from sqlalchemy import Engine, text

from app.core.sessions import SESSION_COOKIE, new_session
from app.core.settings import Settings, load_settings
from app.devstack import free_port, stop_processes, wait_for_port
from tests.support.beacon import BEACON

PASSWORD = "correct horse battery"
HASH = PasswordHasher().hash(PASSWORD)


@dataclass
class Servers:
    api: str
    realtime_port: int
    settings: Settings
    environment: dict[str, str]


@contextmanager
def start_servers(environment: dict[str, str]) -> Iterator[Servers]:
    """``beacon serve api`` and ``beacon serve realtime`` on free loopback ports, stopped on exit."""
    api_port, rt_port = free_port(), free_port()
    env = {**environment, "BEACON_API_PORT": str(api_port), "BEACON_REALTIME_PORT": str(rt_port),
           "BEACON_BASE_URL": f"http://127.0.0.1:{api_port}", "BEACON_LOGIN_ATTEMPTS_PER_ACCOUNT": "5",
           "BEACON_LOGIN_ATTEMPTS_PER_IP": "8", "BEACON_REGISTRATIONS_PER_IP": "6",
           "BEACON_WS_HEARTBEAT_INTERVAL": "0.5",
           "BEACON_WS_HEARTBEAT_TIMEOUT": "5", "BEACON_WS_STATS_INTERVAL": "0.2",
           "BEACON_WS_SEND_BUFFER_LIMIT": "262144"}
    # BEACON_TEST_LOG_DIR keeps the processes' logs after the run (the state directory is deleted).
    log_dir = Path(os.environ.get("BEACON_TEST_LOG_DIR") or env["BEACON_LOG_DIR"])
    log_dir.mkdir(parents=True, exist_ok=True)
    processes = []
    for name in ("api", "realtime"):
        with (log_dir / f"accounts-{name}.log").open("ab") as log:
            processes.append(subprocess.Popen([BEACON, "serve", name], env={**os.environ, **env},
                                              stdout=log, stderr=log))
    try:
        wait_for_port(api_port, 30)
        wait_for_port(rt_port, 30)
        yield Servers(f"http://127.0.0.1:{api_port}", rt_port, load_settings(env), env)
    finally:
        stop_processes(processes, 20)


@dataclass
class World:
    """Rows made for one test, and sessions that sign their users in."""

    engine: Engine
    redis: redis.Redis
    settings: Settings
    users: dict[str, int] = field(default_factory=dict)
    sites: dict[str, int] = field(default_factory=dict)

    def user(self, email: str, *, admin: bool = False) -> int:
        with self.engine.begin() as conn:
            user_id = int(conn.execute(text(
                "INSERT INTO users (email, password_hash, is_admin) VALUES (:e, :h, :a) RETURNING id"),
                {"e": email, "h": HASH, "a": admin}).scalar_one())
        self.users[email] = user_id
        return user_id

    def site(self, domain: str, members: dict[int, str]) -> int:
        with self.engine.begin() as conn:
            site_id = int(conn.execute(text("INSERT INTO sites (domain) VALUES (:d) RETURNING id"),
                                       {"d": domain}).scalar_one())
            for user_id, role in members.items():
                conn.execute(text("INSERT INTO memberships (site_id, user_id, role) VALUES (:s, :u, :r)"),
                             {"s": site_id, "u": user_id, "r": role})
        self.sites[domain] = site_id
        return site_id

    def session_for(self, user_id: int) -> str:
        """A server-side session as the api writes it at sign-in; returns the cookie value."""
        session_id = secrets.token_hex(32)
        epoch = self.sql("SELECT session_epoch FROM users WHERE id = :u", u=user_id)[0][0]
        assert isinstance(epoch, int)
        self.redis.set(f"{self.settings.redis.key_prefix}sessions:{session_id}",
                       json.dumps(new_session(user_id, epoch)), ex=3600)
        return session_id

    def sql(self, statement: str, **params: object) -> list[tuple[object, ...]]:
        with self.engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []


class Browser(httpx.Client):
    """An HTTP client that fills in the CSRF token of forms."""

    def csrf(self) -> str:
        page = self.get("/register")
        found = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert found is not None, page.text
        return found.group(1)

    def form(self, path: str, data: dict[str, str | list[str]] | None = None, **kwargs: object) -> httpx.Response:
        return self.post(path, data={**(data or {}), "_csrf_token": self.csrf()}, **kwargs)  # type: ignore[arg-type]


def anonymous_browser(servers: Servers) -> Browser:
    """A client without a session, from an address of its own (so per-address limits stay per test)."""
    ip = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
    return Browser(base_url=servers.api, timeout=15, headers={"X-Forwarded-For": ip, "Accept": "text/html"})


def signed_in(servers: Servers, world: World, user_id: int) -> Browser:
    client = Browser(base_url=servers.api, timeout=15, headers={"Accept": "text/html"})
    client.cookies.set(SESSION_COOKIE, world.session_for(user_id), domain="127.0.0.1")
    return client
