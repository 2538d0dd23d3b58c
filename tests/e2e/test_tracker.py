"""The tracker in a real headless Chromium: a test page on loopback posts to the whole stack through Nginx.

The page is served as http://tracker.test:<port>/ (Chromium's host resolver maps the name to 127.0.0.1):
the tracker ignores localhost on purpose, as Plausible's does, so the page must not be on localhost. It
also ignores automated browsers (``navigator.webdriver``); the browser that must be counted is launched
without the automation switch and with an ordinary User-Agent, as a visitor's browser would be, and a
second test checks that the default automated browser sends nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.browser import DESKTOP_UA, launch
from tests.support.stack import HOSTS, Stack, last_id, wait_for


def test_pageviews_spa_navigation_and_custom_events(stack: Stack, pages: int, playwright: Any) -> None:
    """Queued event, pageview, History API navigation, custom event with revenue, outbound link, download."""
    since = last_id(stack)
    browser = launch(playwright, automated=False, host_rules=HOSTS)
    try:
        context = browser.new_context(user_agent=DESKTOP_UA, ignore_https_errors=True)
        page = context.new_page()
        page.goto(f"http://tracker.test:{pages}/index.html")
        page.wait_for_function("typeof window.plausible === 'function' && !window.plausible.q")
        assert wait_for(stack, since, 2)  # the queued event and the first pageview are in
        page.evaluate("history.pushState({}, '', '/spa/second')")
        status = page.evaluate("""() => new Promise(resolve => plausible('Purchase', {props: {plan: 'pro'},
            revenue: {currency: 'EUR', amount: '9.99'}, callback: resolve}))""")
        page.click("#out")
        page.click("#file")
        rows = wait_for(stack, since, 6)
    finally:
        browser.close()
    assert 202 == status["status"]
    # Requests run concurrently into two ingest processes: the order of the rows is not the order sent.
    expected = [
        ("Queued", "/index.html", {"early": "yes"}, None, None),
        ("pageview", "/index.html", {}, None, None),
        ("pageview", "/spa/second", {}, None, None),
        ("Purchase", "/spa/second", {"plan": "pro"}, "9.9900", "EUR"),
        ("Outbound Link: Click", "/spa/second", {"url": "https://elsewhere.test/away"}, None, None),
        ("File Download", "/spa/second", {"url": f"http://tracker.test:{pages}/files/report.pdf"}, None, None),
    ]
    assert sorted(expected, key=repr) == sorted((row[:5] for row in rows), key=repr)
    assert {("tracker.test", "Chrome")} == {row[5:] for row in rows}


def test_hash_routing_option(stack: Stack, pages: int, playwright: Any) -> None:
    """With data-hash, a change of location.hash is a pageview whose path includes the fragment."""
    since = last_id(stack)
    browser = launch(playwright, automated=False, host_rules=HOSTS)
    try:
        page = browser.new_context(user_agent=DESKTOP_UA, ignore_https_errors=True).new_page()
        page.goto(f"http://tracker.test:{pages}/hash.html")
        assert wait_for(stack, since, 2)
        page.evaluate("location.hash = '#/settings'")
        rows = wait_for(stack, since, 3)
    finally:
        browser.close()
    assert ["/hash.html", "/hash.html", "/hash.html#/settings"] == [row[1] for row in rows]


@pytest.mark.parametrize("case", ["automated", "localhost", "opted-out"])
def test_nothing_is_sent(stack: Stack, pages: int, playwright: Any, case: str) -> None:
    """No request leaves an automated browser, a page on localhost, or a browser that opted out."""
    browser = launch(playwright, automated=case == "automated", host_rules=HOSTS)
    sent: list[str] = []
    try:
        page = browser.new_context(user_agent=DESKTOP_UA, ignore_https_errors=True).new_page()
        page.on("request", lambda request: sent.append(request.url) if "/api/event" in request.url else None)
        host = "localhost" if case == "localhost" else "tracker.test"
        if case == "opted-out":
            page.goto(f"http://{host}:{pages}/missing")
            page.evaluate("localStorage.plausible_ignore = 'true'")
        page.goto(f"http://{host}:{pages}/index.html")
        page.wait_for_function("typeof window.plausible === 'function' && !window.plausible.q")
        status = page.evaluate("() => new Promise(resolve => plausible('Probe', {callback: resolve}))")
    finally:
        browser.close()
    assert ([], 0) == (sent, status["status"])
