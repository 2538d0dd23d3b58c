"""End to end: the whole stack under circusd behind Nginx, over HTTPS and WebSocket."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import signal
import time

import httpx
import psutil
import pytest
import websockets
from sqlalchemy import text

from app.core.db import make_engine
from tests.support.polling import wait_until
from tests.support.stack import ADMIN_EMAIL, ADMIN_PASSWORD, SITE, UA, Stack, login, watcher_pids
from tests.support.workers import worker_context
from workers.actors import declare_actors

pytestmark = pytest.mark.e2e

WATCHERS = {"api": 2, "realtime": 1, "ingest": 2, "analytics": 1, "integrations": 1, "compute": 1,
            "worker": 2, "scheduler": 1}



def pageviews_in_db(stack: Stack, site: str = SITE, pathname: str | None = None) -> int:
    """Pageviews stored for ``site`` (only those of ``pathname`` when given)."""
    engine = make_engine(stack.settings.database)
    with engine.connect() as conn:
        count = conn.execute(text(
            "SELECT count(*) FROM events e JOIN sites s ON s.id = e.site_id WHERE e.name = 'pageview' "
            "AND s.domain = :site AND (CAST(:path AS text) IS NULL OR e.pathname = :path)"),
            {"site": site, "path": pathname}).scalar_one()
    engine.dispose()
    return int(count)


def post_event(stack: Stack, path: str, site: str = SITE) -> httpx.Response:
    with stack.client() as client:
        return client.post("/api/event", headers={"User-Agent": UA, "Content-Type": "text/plain"},
                           content=json.dumps({"name": "pageview", "url": f"https://{site}{path}", "domain": site}))


def test_health_through_nginx_over_https(stack: Stack) -> None:
    """/api/health is 200 over HTTPS with every component ok; HTTP redirects to HTTPS."""
    with stack.client() as client:
        health = client.get("/api/health")
    assert 200 == health.status_code
    assert {"database", "redis", "ingest", "analytics", "integrations", "compute", "worker", "scheduler"} == set(
        health.json()["checks"])
    assert set(health.json()["checks"].values()) == {"ok"}
    assert "max-age=31536000" in health.headers["strict-transport-security"]
    plain = httpx.get(f"http://127.0.0.1:{stack.nginx.http_port}/api/health", follow_redirects=False)
    assert 301 == plain.status_code
    assert plain.headers["location"].startswith("https://")


def test_static_files_served_by_nginx_with_cache_headers(stack: Stack) -> None:
    """Static assets come from disk with a cache lifetime and gzip; hidden files are refused."""
    with stack.client() as client:
        script = client.get("/static/js/pages.js", headers={"Accept-Encoding": "gzip"})
        hidden = client.get("/static/.gitignore")
    assert 200 == script.status_code
    assert "max-age=3600" in script.headers["cache-control"]
    assert "gzip" == script.headers.get("content-encoding")
    assert 404 == hidden.status_code


def test_dot_segments_under_api_reach_the_api(stack: Stack) -> None:
    """Hidden files stay refused by Nginx; a path value starting with a dot under /api/ is the API's to answer
    (in its own JSON shape, as the OpenAPI document declares), not Nginx's HTML 404."""
    with stack.client() as client:
        dotfile = client.get("/.env")
        dot_domain = client.get("/api/v1/sites/.hidden.example/webhooks")
    assert 404 == dotfile.status_code
    assert (401, "application/json") == (dot_domain.status_code, dot_domain.headers["content-type"])
    assert "error" in dot_domain.json()


def test_event_lands_in_postgres_and_reaches_the_websocket(stack: Stack) -> None:
    """An event posted through Nginx is committed and pushed to a browser's WebSocket through Nginx."""
    with login(stack) as client:
        page = client.get(f"/sites/{SITE}")
    ws_path = re.search(r'data-ws-url="([^"]+)"', page.text)
    assert ws_path is not None
    ws_url = stack.base_url.replace("https://", "wss://") + ws_path.group(1).replace("&amp;", "&")
    # Only this test sends /e2e-live: a pageview a browser test sends late cannot change this count.
    before = pageviews_in_db(stack, pathname="/e2e-live")

    async def scenario() -> dict[str, object]:
        async with websockets.connect(ws_url, ssl=stack.ssl_context()) as socket:
            assert "hello" == json.loads(await socket.recv())["type"]
            response = await asyncio.to_thread(post_event, stack, "/e2e-live")
            assert 202 == response.status_code
            while True:
                message = json.loads(await asyncio.wait_for(socket.recv(), 10))
                if message["type"] == "event":
                    return message

    # In a thread of its own: Playwright's sync API, once started by a browser test, owns this thread's loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        message = pool.submit(asyncio.run, scenario()).result()
    assert ("pageview", "/e2e-live", SITE) == (message["name"], message["pathname"], message["site"])
    assert before + 1 == pageviews_in_db(stack, pathname="/e2e-live")


COUNTED_SITE = "counted.example"
"""A site only test_dashboard_shows_the_count sends to, so its total is known whatever ran before."""


def test_dashboard_shows_the_count(stack: Stack) -> None:
    """The server-rendered dashboard shows the site's total pageviews of all time, as stored for that site."""
    assert 0 == stack.beacon("site", "add", COUNTED_SITE, "--exists-ok").returncode
    before = pageviews_in_db(stack, COUNTED_SITE)
    for path in ("/a", "/b", "/c"):
        assert 202 == post_event(stack, path, COUNTED_SITE).status_code
    with login(stack) as client:
        page = client.get(f"/sites/{COUNTED_SITE}", params={"period": "all"})
    assert 200 == page.status_code
    shown = re.search(r'id="pageviews" data-count="(\d+)"', page.text)
    assert shown is not None
    # The e2e stack caches no query answer (BEACON_ANALYTICS_CACHE_TTL=0): the page is computed now.
    assert (before + 3, before + 3) == (pageviews_in_db(stack, COUNTED_SITE), int(shown.group(1)))


def test_dashboard_requires_sign_in_and_rejects_forged_forms(stack: Stack) -> None:
    """Anonymous visitors are sent to the login page; a form post without the CSRF token is refused."""
    with stack.client() as client:
        anonymous = client.get(f"/sites/{SITE}", follow_redirects=False)
        forged = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert 302 == anonymous.status_code
    assert anonymous.headers["location"].startswith("/login")
    assert 403 == forged.status_code


def test_job_enqueued_runs_in_a_worker(stack: Stack) -> None:
    """rotate_salts, enqueued from outside, runs in a worker and deletes a salt older than 48 hours."""
    engine = make_engine(stack.settings.database)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO salts (salt, created_at) VALUES (:s, now() - interval '3 days')"),
                     {"s": b"o" * 32})
    with worker_context(stack.settings) as worker:
        declare_actors(worker.broker, worker)["rotate_salts"].send()

    def old_salts() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM salts WHERE created_at < now() - interval '2 days'")
                                    ).scalar_one())

    try:
        wait_until(lambda: old_salts() == 0, 20, "the worker to delete the old salt", interval=0.2)
    finally:
        engine.dispose()


def beacon_processes(stack: Stack) -> list[psutil.Process]:
    """Every process started for this stack, found by its environment."""
    run_dir = stack.environment["BEACON_RUN_DIR"]
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("BEACON_RUN_DIR") == run_dir and "circusd" not in " ".join(proc.cmdline()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def listeners(port: int) -> set[int]:
    return {conn.pid for conn in psutil.net_connections("tcp")
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid}


@pytest.mark.parametrize("watcher", list(WATCHERS))
def test_sigkill_is_repaired_within_5_seconds_without_orphans(stack: Stack, watcher: str) -> None:
    """SIGKILL of every process of a watcher: Circus restores it within 5 s and nothing is left over."""
    stack.wait_healthy()
    try:
        old = watcher_pids(stack, watcher)
        assert WATCHERS[watcher] == len(old)
        killed_at = time.monotonic()
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        new: set[int] = set()
        while time.monotonic() - killed_at < 5:
            new = watcher_pids(stack, watcher)
            if len(new) == WATCHERS[watcher] and not new & old:
                break
            time.sleep(0.1)
        assert WATCHERS[watcher] == len(new) and not new & old, f"{watcher}: {old} -> {new}"
        port = stack.settings.server.ports.get(watcher)
        if port is not None:
            while time.monotonic() - killed_at < 5 and listeners(port) != new:
                time.sleep(0.1)
            assert new == listeners(port), "only the new processes serve the port"
        circusd = stack.circus.process.pid if stack.circus.process else -1
        strays = [(p.pid, p.cmdline()) for p in beacon_processes(stack) if p.ppid() != circusd]
        assert [] == strays
    finally:
        # The next test, whatever it is, finds every process serving again, even after a failure here.
        stack.wait_healthy(60)


def test_circusctl_quit_stops_everything_within_its_timeouts(stack: Stack) -> None:
    """quit is graceful: every process exits within the longest graceful_timeout and the ports close."""
    assert stack.circus.process is not None
    stack.wait_healthy()
    started = time.monotonic()
    try:
        stack.circus.ctl("quit")
        stack.circus.process.wait(45)
        elapsed = time.monotonic() - started
        wait_until(lambda: not beacon_processes(stack), 5,
                   f"every Beacon process to exit (left: {[p.pid for p in beacon_processes(stack)]})")
        assert all(not listeners(port) for port in stack.settings.server.ports.values())
        assert elapsed < 30, f"quit took {elapsed:.1f} s"
        print(f"circusctl quit: every process stopped in {elapsed:.2f} s")
    finally:
        # Whatever runs next (in any order: pytest -p randomly) finds the stack up again.
        stack.circus.start()
        stack.wait_healthy(90)
