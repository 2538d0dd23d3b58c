"""`beacon check` on several hosts: Patroni's cluster read from its REST API (a real loopback HTTP server
answering as Patroni's GET /cluster does) and judged: a primary, a synchronous standby, no lagging replica."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.checks import cluster_lines, cluster_problem, cluster_view
from app.core.settings import Settings

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
