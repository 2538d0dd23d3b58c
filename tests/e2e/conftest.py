"""The whole stack: every watcher under circusd, behind Nginx, on free ports, against the test servers."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from app.core.settings import DEFAULT_PORTS, load_settings
from app.devstack import Circus, Nginx, Postgres, Redis, free_port
from app.mailsink import MailSink
from app.migrate import migrate
from tests.support.browser import AXE, CHROMIUM, Visit, launch
from tests.support.servers import make_environment
from tests.support.stack import ADMIN_EMAIL, ADMIN_PASSWORD, PAGE, SITE, QuietHandler, Stack


@pytest.fixture(scope="session")
def stack(postgres: Postgres, redis_server: Redis, state_dir: Path) -> Iterator[Stack]:
    ports = {name: free_port() for name in DEFAULT_PORTS}
    state = state_dir / "e2e"
    environment = make_environment(postgres, redis_server, state, "beacon_e2e", redis_db=2, ports=ports)
    https_port = free_port()
    environment["BEACON_BASE_URL"] = f"https://localhost:{https_port}"
    # Heartbeats every second, so the health check sees the scheduler and workers quickly.
    environment["BEACON_HEARTBEAT_INTERVAL"] = "1"
    # Webhook receivers of the tests listen on loopback; goal conversions are coalesced over 5 s.
    environment["BEACON_WEBHOOKS_ALLOW_PRIVATE"] = "1"
    environment["BEACON_WEBHOOKS_GOAL_INTERVAL"] = "5"
    # A delivery whose worker was killed is leased again after 10 s (60 s in production).
    environment["BEACON_WEBHOOKS_LEASE"] = "10"
    # The API fuzzing sends thousands of requests with one key in a few minutes: no hourly limit per key.
    environment["BEACON_API_KEY_HOURLY_LIMIT"] = "0"
    mail = MailSink(state / "mail", free_port())
    environment["BEACON_SMTP_URL"] = mail.url
    settings = load_settings(environment)
    migrate(settings)
    nginx = Nginx(state / "nginx", free_port(), https_port,
                  {name: [f"127.0.0.1:{ports[name]}"] for name in ("api", "realtime", "ingest")})
    circus = Circus(environment)
    result = Stack(environment, settings, circus, nginx, f"https://localhost:{https_port}",
                   state / "nginx" / "tls" / "cert.pem", mail)
    created = result.beacon("createuser", "--email", ADMIN_EMAIL, "--password-stdin", "--admin",
                            stdin=ADMIN_PASSWORD + "\n")
    assert 0 == created.returncode, created.stderr
    assert 0 == result.beacon("site", "add", SITE).returncode
    mail.start()
    nginx.start()
    circus.start()
    try:
        result.wait_healthy(90)
        yield result
    finally:
        circus.stop()
        nginx.stop()
        mail.stop()


@pytest.fixture(scope="module")
def running(stack: Stack) -> Stack:
    """The session's stack, started again if an earlier test stopped it and did not start it again."""
    if stack.circus.process is None or stack.circus.process.poll() is not None:
        stack.circus.start()
    stack.wait_healthy(90)
    return stack


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """Playwright, for Debian's Chromium (see tests/support/browser.py), for one module at a time.

    A running sync Playwright keeps an event loop set on the main thread: two at once fail ("Sync API inside
    the asyncio loop"), and one left running breaks the ``asyncio.run()`` of later modules.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test installs it)")

    with sync_playwright() as started:
        yield started


# Browser fixtures shared by the page tests (one Chromium per module, one admin sign-in per module).
@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core, a development package of app/frontend/package.json (``make assets`` installs it)."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make assets` (npm ci in app/frontend)")
    return AXE.read_text()


@pytest.fixture(scope="module")
def chromium(running: Stack, playwright: Any) -> Iterator[Any]:
    browser = launch(playwright)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def admin_state(running: Stack, chromium: Any) -> dict[str, Any]:
    """The admin's signed-in cookies, from one sign-in through the form (sign-ins per address are limited)."""
    first = Visit(running, chromium)
    try:
        first.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        assert first.page.url.rstrip("/") == running.base_url
        return dict(first.context.storage_state())
    finally:
        first.close()


@pytest.fixture
def visit(running: Stack, chromium: Any) -> Iterator[Visit]:
    opened = Visit(running, chromium)
    yield opened
    opened.close()


@pytest.fixture
def admin(running: Stack, chromium: Any, admin_state: dict[str, Any]) -> Iterator[Visit]:
    opened = Visit(running, chromium, storage_state=admin_state)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def pages(running: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A static site on 127.0.0.1 with the tracker embedded (default options and hash routing)."""
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text(PAGE % {"site": SITE, "beacon": running.base_url,
                                             "options": "data-outbound-links data-file-downloads"})
    (root / "hash.html").write_text(PAGE % {"site": SITE, "beacon": running.base_url, "options": "data-hash"})
    handler = functools.partial(QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
