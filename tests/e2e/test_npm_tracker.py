"""Plausible's official npm tracker (``@plausible-analytics/tracker``), unmodified, in a real headless Chromium.

The package's own ``plausible.js`` (installed with the front-end assets, ``app/frontend/node_modules``) is served
as an ES module by a page on http://tracker.test:<port>/ and pointed at the stack through Nginx, as a site
owner would bundle it. The visitor opens the page, scrolls half way down, buys, and leaves: Plausible counts one
visitor, one pageview, two events (the engagement event that leaving sends is no event), a scroll depth of
50 % and the engaged seconds as time on page, and so must Beacon.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from app.core.db import make_engine
from app.devstack import free_port
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP_UA
from tests.support.stack import ADMIN_EMAIL, Stack

TRACKER = Path(__file__).resolve().parents[2] / "app/frontend/node_modules/@plausible-analytics/tracker/plausible.js"
DOMAIN = "npm-tracker.example"
KEY = "bk_e2e_npm_tracker_key_0123456789"
HOSTS = "MAP tracker.test 127.0.0.1"
PAGE = """<!doctype html><html><head><title>npm tracker</title></head>
<body style="margin:0"><div style="height:4000px">a long article</div>
<script type="module">
import { init, track } from "./plausible.js";
init({ domain: "%(domain)s", endpoint: "%(beacon)s/api/event" });
window.buy = () => new Promise(resolve => track("Purchase", {
  revenue: { amount: 15.99, currency: "USD" }, callback: resolve }));
</script></body></html>"""


class _QuietHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript"}

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(running: Stack) -> str:
    """A site of its own, owned by the admin, with a stats:read key."""
    assert TRACKER.is_file(), f"{TRACKER} is missing: run `make assets` (npm ci in app/frontend)"
    assert 0 == running.beacon("site", "add", DOMAIN).returncode
    engine = make_engine(running.settings.database)
    with engine.begin() as conn:
        user_id = conn.execute(text("SELECT id FROM users WHERE email = :e"), {"e": ADMIN_EMAIL}).scalar_one()
        site_id = conn.execute(text("SELECT id FROM sites WHERE domain = :d"), {"d": DOMAIN}).scalar_one()
        conn.execute(text("INSERT INTO memberships (site_id, user_id, role) VALUES (:s, :u, 'owner') "
                          "ON CONFLICT (site_id, user_id) DO UPDATE SET role = 'owner'"), {"s": site_id, "u": user_id})
        conn.execute(text("INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes) VALUES "
                          "(:u, 'e2e-npm-tracker', 'bk_', :h, ARRAY['stats:read']) ON CONFLICT DO NOTHING"),
                     {"u": user_id, "h": hashlib.sha256(KEY.encode()).digest()})
    engine.dispose()
    return DOMAIN


@pytest.fixture(scope="module")
def pages(running: Stack, site: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("npm-site")
    shutil.copyfile(TRACKER, root / "plausible.js")  # byte for byte what npm installed
    (root / "index.html").write_text(PAGE % {"domain": site, "beacon": running.base_url})
    (root / "away.html").write_text("<!doctype html><title>away</title><p>no tracker here</p>")
    server = ThreadingHTTPServer(("127.0.0.1", free_port()),
                                 functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def stored(stack: Stack) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    engine = make_engine(stack.settings.database)
    with engine.connect() as conn:
        events = [tuple(row) for row in conn.execute(text(
            "SELECT e.name, e.pathname, e.revenue_amount::text, e.revenue_currency FROM events e "
            "JOIN sites s ON s.id = e.site_id WHERE s.domain = :d ORDER BY e.id"), {"d": DOMAIN})]
        engagements = [tuple(row) for row in conn.execute(text(
            "SELECT g.pathname, g.scroll_depth, g.engagement_time, g.session_id = ("
            "SELECT max(session_id) FROM events e WHERE e.site_id = g.site_id) FROM engagements g "
            "JOIN sites s ON s.id = g.site_id WHERE s.domain = :d ORDER BY g.id"), {"d": DOMAIN})]
    engine.dispose()
    return events, engagements


def wait_stored(stack: Stack, events: int, engagements: int, timeout: float = 30) -> tuple[list[Any], list[Any]]:
    deadline = time.monotonic() + timeout
    found = stored(stack)
    while (len(found[0]) < events or len(found[1]) < engagements) and time.monotonic() < deadline:
        time.sleep(0.2)
        found = stored(stack)
    return found


def test_official_npm_tracker_counts_as_plausible(running: Stack, pages: int, playwright: Any) -> None:
    """Pageview, half-way scroll, a purchase with revenue, leaving the page: what is stored and what the Stats
    API answers through Nginx."""
    # The engagement event leaves while the page unloads (a keepalive fetch, sent by the browser once the
    # page is gone): the context's User-Agent and ignore_https_errors no longer apply to it (it went out as
    # HeadlessChrome, a bot), so the browser itself carries the ordinary User-Agent and accepts the stack's
    # self-signed certificate, as a visitor's browser would with a real one.
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, ignore_default_args=["--enable-automation"],
        args=[*CHROMIUM_ARGS, f"--host-resolver-rules={HOSTS}", "--disable-blink-features=AutomationControlled",
              "--ignore-certificate-errors", f"--user-agent={DESKTOP_UA}"])
    try:
        context = browser.new_context(user_agent=DESKTOP_UA, ignore_https_errors=True,
                                      viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(f"http://tracker.test:{pages}/index.html")
        page.bring_to_front()
        assert wait_stored(running, 1, 0)[0], "no pageview arrived"
        # (1200 + 800) / 4000 px: the deepest point seen is half the page.
        page.evaluate("window.scrollTo(0, 1200)")
        page.wait_for_function("window.scrollY === 1200")
        status = page.evaluate("window.buy()")
        page.wait_for_timeout(3200)
        page.goto(f"http://tracker.test:{pages}/away.html")  # leaving: the tracker sends its engagement event
        events, engagements = wait_stored(running, 2, 1)
    finally:
        browser.close()
    assert 202 == status["status"]
    assert [("pageview", "/index.html", None, None), ("Purchase", "/index.html", "15.9900", "USD")] == events
    assert 1 == len(engagements), engagements
    path, depth, engaged_ms, same_visit = engagements[0]
    assert ("/index.html", 50, True) == (path, depth, same_visit)
    assert engaged_ms >= 3000  # visible and focused from the pageview until it left

    body = {"site_id": DOMAIN, "date_range": "day", "filters": [["is", "event:page", ["/index.html"]]],
            "metrics": ["visitors", "visits", "pageviews", "events", "scroll_depth", "time_on_page"]}
    with running.client(headers={"Authorization": f"Bearer {KEY}"}) as client:
        answer = client.post("/api/v2/query", json=body)
    assert 200 == answer.status_code, answer.text
    assert [{"dimensions": [], "metrics": [1, 1, 1, 2, 50, (engaged_ms + 500) // 1000]}] == answer.json()["results"]
