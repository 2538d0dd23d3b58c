"""`beacon check` on several hosts: Patroni's cluster read from its REST API (a real loopback HTTP server
answering as Patroni's GET /cluster does) and judged: a primary, a synchronous standby, no lagging replica."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.checks import cluster_lines, cluster_problem, cluster_view
from app.core.cluster import cluster_state
from app.core.db import make_engine
from app.core.sessions import new_session
from app.core.settings import RedisSettings, Settings
from app.devstack import free_port, stop_processes, wait_for_port
from tests.support.beacon import BEACON
from tests.support.sentinel import start_group

HEALTHY: dict[str, Any] = {"members": [
    {"name": "data2", "role": "sync_standby", "state": "streaming", "host": "10.0.0.12", "port": 5432, "lag": 0},
    {"name": "data1", "role": "leader", "state": "running", "host": "10.0.0.11", "port": 5432},
    {"name": "data3", "role": "replica", "state": "streaming", "host": "10.0.0.13", "port": 5432, "lag": 4096},
]}


@pytest.fixture()
def patroni() -> Iterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"body": HEALTHY}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(state["body"]).encode()
            self.send_response(200 if self.path == "/cluster" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def test_healthy_cluster_is_listed_leader_first() -> None:
    assert cluster_problem(HEALTHY) is None
    lines = cluster_lines(HEALTHY, ("10.0.0.11", 6379))
    assert lines[0].startswith("postgresql leader") and "10.0.0.11:5432 running" in lines[0]
    assert "lag 0 B" in lines[1] and "lag 4096 B" in lines[2]
    assert lines[-1].endswith("10.0.0.11:6379")


@pytest.mark.parametrize(("members", "problem"), [
    ([m for m in HEALTHY["members"] if m["role"] != "leader"], "no running primary"),
    ([{**m, "role": "replica"} if m["role"] == "sync_standby" else m for m in HEALTHY["members"]],
     "no synchronous standby"),
    ([{**m, "lag": 10**9} if m["name"] == "data3" else m for m in HEALTHY["members"]],
     "replica data3 is behind by 1000000000 B"),
])
def test_unsafe_cluster_is_a_problem(members: list[dict[str, Any]], problem: str) -> None:
    assert problem in (cluster_problem({"members": members}) or "")


def test_cluster_view_asks_the_first_member_that_answers(settings: Settings,
                                                         patroni: tuple[str, dict[str, Any]]) -> None:
    url, state = patroni
    # The first URL is a closed port: the check goes on to the next member.
    database = dataclasses.replace(settings.database, patroni_urls=("http://127.0.0.1:1", url))
    configured = dataclasses.replace(settings, database=database)
    checks, lines = asyncio.run(cluster_view(configured))
    assert ["postgresql cluster"] == list(checks)
    assert asyncio.run(checks["postgresql cluster"]()) is None
    assert 3 == len(lines)
    state["body"] = {"members": HEALTHY["members"][:1]}
    checks, _ = asyncio.run(cluster_view(configured))
    assert "no running primary" == asyncio.run(checks["postgresql cluster"]())


def test_without_patroni_or_sentinel_nothing_is_added(settings: Settings) -> None:
    assert ({}, []) == asyncio.run(cluster_view(settings))


def test_cluster_state_lists_members_leader_first_and_the_sentinels_master(settings: Settings, tmp_path: Path,
                                                                          patroni: tuple[str, dict[str, Any]]) -> None:
    """The monitoring report's cluster part: Patroni's members (leader first, lag in bytes), the problem
    `beacon check` would report, and the master a real Sentinel names."""
    url, state = patroni
    group = start_group(tmp_path / "redis", count=1)
    try:
        redis_settings = RedisSettings(url=group.url(0), sentinels=(("127.0.0.1", group.hosts[0].sentinel_port),))
        configured = dataclasses.replace(settings, redis=redis_settings,
                                         database=dataclasses.replace(settings.database, patroni_urls=(url,)))
        cluster = asyncio.run(cluster_state(configured))
        assert cluster is not None
        assert [("data1", "leader", None), ("data2", "sync_standby", 0), ("data3", "replica", 4096)] == [
            (m.name, m.role, m.lag) for m in cluster.members]
        assert (None, f"127.0.0.1:{group.hosts[0].port}", None) == (cluster.problem, cluster.redis_master,
                                                                     cluster.redis_error)
        state["body"] = {"members": [m for m in HEALTHY["members"] if m["role"] != "sync_standby"]}
        degraded = asyncio.run(cluster_state(configured))
        assert degraded is not None and "no synchronous standby" in (degraded.problem or "")
    finally:
        group.stop()
    assert asyncio.run(cluster_state(settings)) is None


def test_monitoring_page_shows_the_cluster(environment: dict[str, str], settings: Settings, db: None,
                                           tmp_path: Path, patroni: tuple[str, dict[str, Any]]) -> None:
    """An api on several hosts (Patroni and Sentinels configured) shows them on /admin/monitoring and in its
    JSON; a Patroni that stops answering is that part's error, not the page's."""
    url, _ = patroni
    group = start_group(tmp_path / "redis", count=1)
    port = free_port()
    env = {**os.environ, **environment, "BEACON_API_PORT": str(port), "BEACON_BASE_URL": f"http://127.0.0.1:{port}",
           "BEACON_PATRONI_URLS": url, "BEACON_REDIS_URL": group.url(0),
           "BEACON_REDIS_SENTINELS": group.sentinels_setting()}
    with (tmp_path / "api.log").open("ab") as log:
        process = subprocess.Popen([BEACON, "serve", "api"], env=env, stdout=log, stderr=log)
    try:
        wait_for_port(port, 30)
        engine = make_engine(settings.database)
        with engine.begin() as conn:
            user = conn.execute(text("INSERT INTO users (email, password_hash, is_admin) VALUES (:e, 'x', true) "
                                     "RETURNING id, session_epoch"), {"e": "cluster@monitoring.test"}).one()
        engine.dispose()
        session = secrets.token_hex(32)
        group.client(group.hosts[0].port).set(f"{settings.redis.key_prefix}sessions:{session}",
                                              json.dumps(new_session(user[0], user[1])), ex=600)
        cookies = {"beacon_session": session}
        page = httpx.get(f"http://127.0.0.1:{port}/admin/monitoring", cookies=cookies,
                         headers={"Accept": "text/html"}, timeout=30)
        assert 200 == page.status_code, page.text[:2000]
        assert 'data-section="cluster"' in page.text
        members = page.text[page.text.index('id="cluster-members"'):]
        assert members.index("data1") < members.index("data2") < members.index("data3")
        assert "4.0 KiB" in members or "4 KiB" in members, members[:1500]
        assert f"<code>127.0.0.1:{group.hosts[0].port}</code>" in page.text
        body = httpx.get(f"http://127.0.0.1:{port}/api/admin/monitoring", cookies=cookies, timeout=30).json()
        assert "leader" == body["cluster"]["members"][0]["role"]
        assert body["cluster"]["error"] is None

        env_away = {**env, "BEACON_PATRONI_URLS": "http://127.0.0.1:1"}
        stop_processes([process], 20)
        with (tmp_path / "api.log").open("ab") as log:
            process = subprocess.Popen([BEACON, "serve", "api"], env=env_away, stdout=log, stderr=log)
        wait_for_port(port, 30)
        away = httpx.get(f"http://127.0.0.1:{port}/api/admin/monitoring", cookies=cookies, timeout=30).json()
        assert "no Patroni member answered" in away["cluster"]["error"]
        assert away["postgres"]["error"] is None
    finally:
        stop_processes([process], 20)
        group.stop()
