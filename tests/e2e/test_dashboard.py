"""The site dashboard in a real Chromium: data sent by the tracker, live feed, filters, dates, share link.

Visitors are real browsers on a test page served on loopback (see test_tracker.py); the owner's browser is
signed in with the session cookie of a login through the form. The site is shared by the whole e2e session,
so figures are checked through paths only this module sends (``/dash/...``) or as lower bounds.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from app.core.db import make_engine
from app.core.sessions import SESSION_COOKIE
from app.domain.sites.services import token_hash
from tests.support.browser import DESKTOP_UA, PageProblems, launch, screenshot, watch
from tests.support.stack import HOSTS, SITE, Stack, last_id, login, wait_for, watcher_pids

pytestmark = pytest.mark.e2e

MOBILE_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/126.0.0.0 Mobile Safari/537.36")
MANIFEST = Path(__file__).resolve().parents[2] / "app" / "static" / "dist" / "manifest.json"


@dataclass
class Visitors:
    """Two visitors' browsers on the test page: A saw /dash/pricing and signed up, B only the home page."""

    browser: Any
    page: Any


def sql(stack: Stack, statement: str, **params: object) -> None:
    engine = make_engine(stack.settings.database)
    with engine.begin() as conn:
        conn.execute(text(statement), params)
    engine.dispose()


@pytest.fixture(scope="module")
def visitors(running: Stack, pages: int, playwright: Any) -> Iterator[Visitors]:
    if not MANIFEST.exists():
        pytest.fail(f"{MANIFEST} is missing: run `make assets` (make test and make e2e do)")
    since = last_id(running)
    browser = launch(playwright, automated=False, host_rules=HOSTS)
    first = browser.new_context(user_agent=DESKTOP_UA, ignore_https_errors=True).new_page()
    first.goto(f"http://tracker.test:{pages}/index.html")
    first.wait_for_function("typeof window.plausible === 'function' && !window.plausible.q")
    first.evaluate("history.pushState({}, '', '/dash/pricing')")
    first.evaluate("""() => new Promise(resolve => plausible('Dash Signup', {props: {dash_plan: 'pro'},
        callback: resolve}))""")
    second = browser.new_context(user_agent=MOBILE_UA, ignore_https_errors=True).new_page()
    second.goto(f"http://tracker.test:{pages}/index.html")
    second.wait_for_function("typeof window.plausible === 'function' && !window.plausible.q")
    # The queued event and the pageview of each page load, the SPA pageview and the custom event.
    assert len(wait_for(running, since, 6)) >= 6
    sql(running, "INSERT INTO annotations (site_id, date, body, created_by) SELECT s.id, :day, :body, u.id "
        "FROM sites s, users u WHERE s.domain = :site ORDER BY u.id LIMIT 1",
        day=datetime.now(UTC).date(), body="Dashboard test launch", site=SITE)
    sql(running, "INSERT INTO goals (site_id, event_name, display_name) SELECT id, 'Dash Signup', 'Dash Signup' "
        "FROM sites WHERE domain = :site ON CONFLICT DO NOTHING", site=SITE)
    try:
        yield Visitors(browser, first)
    finally:
        browser.close()


@pytest.fixture
def owner(running: Stack, playwright: Any) -> Iterator[tuple[Any, PageProblems]]:
    """The owner's dashboard page, signed in, watched for console, page and request errors."""
    with login(running) as client:
        session = client.cookies.get(SESSION_COOKIE)
    assert session
    browser = launch(playwright)
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    context.add_cookies([{"name": SESSION_COOKIE, "value": session, "url": running.base_url}])
    page = context.new_page()
    problems = watch(page)
    try:
        yield page, problems
    finally:
        browser.close()


def metric(page: Any, name: str) -> str:
    return str(page.inner_text(f'.dash-metric[data-metric="{name}"] .dash-value'))


def wait_metric(page: Any, name: str, expected: str) -> None:
    page.wait_for_function("([name, expected]) => document.querySelector("
                           "`.dash-metric[data-metric='${name}'] .dash-value`).textContent.trim() === expected",
                           arg=[name, expected], timeout=15000)


def wait_idle(page: Any) -> None:
    page.wait_for_function("() => !document.getElementById('dashboard').hasAttribute('aria-busy')", timeout=15000)


def wait_connected(page: Any) -> None:
    page.wait_for_function("() => document.getElementById('live-status').textContent === 'connected'", timeout=15000)


def row(page: Any, panel: str, value: str) -> Any:
    return page.locator(f"#list-{panel} button.dash-row[data-value='{value}']")


def test_owner_sees_tracked_events_and_live_ones(running: Stack, visitors: Visitors, owner: Any) -> None:
    """Tracked pageviews, the custom event, its property and the annotation are on the dashboard; a new
    pageview reaches the live feed and the pageviews total without a reload."""
    page, problems = owner
    page.goto(f"{running.base_url}/sites/{SITE}")
    wait_idle(page)
    assert int(metric(page, "visitors").replace(",", "")) >= 2
    row(page, "pages", "/dash/pricing").wait_for()
    assert row(page, "goals", "Dash Signup").is_visible()  # the goal set up for the site, with its CR
    assert "Queued" not in page.inner_text("#list-goals")
    assert "%" in page.inner_text("#list-goals")
    page.click("#tab-event")  # every custom event by name
    row(page, "goals", "Queued").wait_for()
    assert row(page, "goals", "Dash Signup").is_visible()
    page.select_option("#prop-key", "dash_plan")
    row(page, "props", "pro").wait_for()
    assert page.locator("#chart canvas").count() == 1
    assert "24" == page.get_attribute("#chart", "data-points")  # a site added today opens on today, by hour
    assert int(page.get_attribute("#chart", "data-annotations") or 0) >= 1
    assert "Dashboard test launch" in page.inner_text("#annotations")
    wait_connected(page)

    shown = int(page.get_attribute("#pageviews", "data-count") or 0)
    visitors.page.evaluate("history.pushState({}, '', '/dash/live')")
    page.locator("#live-feed li", has_text="/dash/live").wait_for(timeout=15000)
    page.wait_for_function("(before) => Number(document.getElementById('pageviews').dataset.count) > before",
                           arg=shown)
    assert int(page.inner_text("#live-visitors")) >= 1
    screenshot(page, "dashboard-desktop")
    assert [] == problems.all()


def test_live_feed_reconnects_with_backoff_when_the_realtime_process_goes(running: Stack, visitors: Visitors,
                                                                          owner: Any) -> None:
    """The realtime process stops (its app host died, or it restarts): the dashboard says it is reconnecting,
    tries again with a growing wait rather than every half second, and once realtime is back it is connected
    again and the live feed receives new pageviews without a reload. Then realtime goes silent (stopped by
    SIGSTOP, nothing closed): the page notices by its own pings and connects again once it answers."""
    page, _ = owner  # Chromium logs every refused WebSocket handshake as a console error: expected here.
    page.goto(f"{running.base_url}/sites/{SITE}")
    wait_idle(page)
    wait_connected(page)
    # Sockets opened from now on check their path every second (10 s in production).
    page.evaluate("document.getElementById('live').dataset.liveCheckMs = '1000'")
    attempts: list[float] = []
    page.on("websocket", lambda _socket: attempts.append(time.monotonic()))
    running.circus.ctl("stop", "realtime")
    try:
        page.wait_for_function("() => document.getElementById('live-status').textContent === 'reconnecting…'",
                               timeout=15000)
        stopped = time.monotonic()
        # Let the backoff run for a while: 0.5 s doubling (each wait 50-100 % of it) makes at most 6 attempts
        # in 8 s; a fixed half-second retry would make 16.
        page.wait_for_timeout(8000)
        during = [moment for moment in attempts if moment >= stopped]
    finally:
        running.circus.ctl("start", "realtime")
    assert 3 <= len(during) <= 6, [round(moment - stopped, 2) for moment in during]
    gaps = [later - earlier for earlier, later in itertools.pairwise(during)]
    assert gaps[-1] > gaps[0], gaps
    # Back within the longest wait so far (4 s) plus the start of the process.
    page.wait_for_function("() => document.getElementById('live-status').textContent === 'connected'",
                           timeout=30000)
    assert "2" == page.get_attribute("#live", "data-connections")
    visitors.page.evaluate("history.pushState({}, '', '/dash/after-reconnect')")
    page.locator("#live-feed li", has_text="/dash/after-reconnect").wait_for(timeout=15000)

    # The realtime process goes silent without closing anything (as behind another app host's Nginx when
    # that host loses power): the page's own pings go unanswered, it drops the socket and tries again.
    frozen = watcher_pids(running, "realtime")
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        page.wait_for_function("() => document.getElementById('live-status').textContent === 'reconnecting…'",
                               timeout=15000)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    page.wait_for_function("() => document.getElementById('live').dataset.connections === '3'", timeout=30000)
    assert "connected" == page.inner_text("#live-status")


def test_filter_by_row_chip_url_and_back(running: Stack, visitors: Visitors, owner: Any) -> None:
    """Clicking a row filters everything, shows a chip and puts the filter in the URL; Back undoes it."""
    page, problems = owner
    page.goto(f"{running.base_url}/sites/{SITE}")
    wait_idle(page)
    unfiltered = metric(page, "visitors")
    # Hovered, a row keeps its text's colour and no background of its own, so its text stays readable on its bar.
    style = "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]"
    resting = row(page, "pages", "/dash/pricing").evaluate(style)
    row(page, "pages", "/dash/pricing").hover()
    assert resting == row(page, "pages", "/dash/pricing").evaluate(style)
    row(page, "pages", "/dash/pricing").click()
    page.locator("#filters .dash-chip", has_text="/dash/pricing").wait_for()
    assert "f=page%3D%3D%2Fdash%2Fpricing" in page.url
    wait_metric(page, "visitors", "1")
    wait_idle(page)
    assert ["/dash/pricing"] == [v.strip() for v in page.locator("#list-pages .dash-row").evaluate_all(
        "rows => rows.map(r => r.dataset.value)")]

    page.go_back()
    page.wait_for_function("() => document.querySelectorAll('#filters .dash-chip').length === 0")
    assert "f=" not in page.url
    wait_metric(page, "visitors", unfiltered)

    page.go_forward()
    page.locator("#filters .dash-chip").wait_for()
    page.locator("#filters .dash-chip-remove").click()
    page.wait_for_function("() => document.querySelectorAll('#filters .dash-chip').length === 0")
    assert "f=" not in page.url
    assert [] == problems.all()


def test_goal_filter_shows_conversions(running: Stack, visitors: Visitors, owner: Any) -> None:
    """Filtered by a goal, the tiles are Plausible's: the site's unique visitors, the goal's unique and total
    conversions and its conversion rate; the chart offers those but the first, and reports count conversions."""
    page, problems = owner
    page.goto(f"{running.base_url}/sites/{SITE}")
    wait_idle(page)
    row(page, "goals", "Dash Signup").click()
    page.locator("#filters .dash-chip", has_text="Dash Signup").wait_for()
    page.locator('.dash-metric[data-metric="conversion_rate"]').wait_for()
    wait_idle(page)
    labels = page.locator(".dash-metric .dash-label").all_text_contents()  # as written; CSS capitalises
    assert ["Unique visitors", "Unique conversions", "Total conversions", "Conversion rate"] == labels
    everyone = int(metric(page, "total_visitors").replace(",", ""))
    # Only this module's visitor A sent "Dash Signup", once; the site's visitors are everyone's today.
    rate = (Decimal(100) / everyone).quantize(Decimal("0.1"), ROUND_HALF_UP)
    assert ("1", "1", f"{rate}".removesuffix(".0") + "%") == (
        metric(page, "visitors"), metric(page, "events"), metric(page, "conversion_rate"))
    assert ["Unique conversions", "Total conversions", "Conversion rate"] == \
        page.locator("#chart-metrics button").all_text_contents()
    page.click('#chart-metrics button[data-chart-metric="conversion_rate"]')
    page.wait_for_function("() => document.getElementById('chart').ariaLabel.startsWith('Conversion rate')")
    assert "metric=conversion_rate" in page.url
    assert ["Source", "Conversions", "CR"] == page.locator("#list-sources .dash-row-head span").all_text_contents()
    assert [] == problems.all()


def _range_label(first: date, last: date) -> str:
    """The dates the dashboard shows beside its period picker: "23 Nov \N{EN DASH} 29 Nov 2026"."""
    def day(d: date) -> str:
        return f"{d.day} {d:%b}"
    if first == last:
        return f"{day(last)} {last.year}"
    return f"{day(first)}{'' if first.year == last.year else f' {first.year}'} \N{EN DASH} {day(last)} {last.year}"


def test_date_range_comparison_and_keyboard_tabs(running: Stack, visitors: Visitors, owner: Any) -> None:
    """Presets and a custom range change the chart and the URL; comparison adds the previous period. With no
    period in the URL, the picker names the one served: today, for a site added today."""
    page, problems = owner
    page.goto(f"{running.base_url}/sites/{SITE}")
    wait_idle(page)
    assert "today" == page.input_value("#period")
    assert "24" == page.get_attribute("#chart", "data-points")
    today = datetime.now(UTC).date()
    assert _range_label(today, today) == page.text_content("#period-dates")
    # "Last 7 days" ends yesterday, as on Plausible's dashboard: the dates beside the picker say so.
    page.select_option("#period", "7d")
    page.wait_for_function("() => document.getElementById('chart').dataset.points === '7'")
    assert _range_label(today - timedelta(days=7), today - timedelta(days=1)) == page.text_content("#period-dates")
    page.select_option("#period", "today")
    page.wait_for_function("() => document.getElementById('chart').dataset.points === '24'")
    assert "period=today" in page.url

    page.select_option("#period", "custom")
    page.fill("#from", (today - timedelta(days=2)).isoformat())
    page.fill("#to", today.isoformat())
    page.wait_for_function("() => document.getElementById('chart').dataset.points === '3'")
    assert f"from={(today - timedelta(days=2)).isoformat()}" in page.url and "period=custom" in page.url
    assert _range_label(today - timedelta(days=2), today) == page.text_content("#period-dates")

    page.check("#compare")
    page.wait_for_function("() => document.getElementById('chart').ariaLabel.includes('previous period')")
    assert "compare=previous" in page.url
    assert 3 == page.locator("#chart .u-legend .u-series").count()
    wait_idle(page)

    page.focus("#tab-page")
    page.keyboard.press("ArrowRight")
    assert "true" == page.get_attribute("#tab-entry_page", "aria-selected")
    row(page, "pages", "/index.html").wait_for()

    page.go_back()
    page.wait_for_function("() => !location.search.includes('compare')")
    assert not page.is_checked("#compare")
    assert [] == problems.all()


def test_phone_width(running: Stack, visitors: Visitors, owner: Any) -> None:
    """At 375 px the dashboard fits the screen without sideways scrolling."""
    page, problems = owner
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{running.base_url}/sites/{SITE}")
    wait_idle(page)
    row(page, "pages", "/dash/pricing").wait_for()
    assert page.evaluate("document.getElementById('dashboard').scrollWidth") <= 375
    assert page.evaluate("document.querySelector('#chart canvas').getBoundingClientRect().right") <= 375
    screenshot(page, "dashboard-375px")
    assert [] == problems.all()


def test_share_link_read_only(running: Stack, visitors: Visitors, playwright: Any) -> None:
    """Signed out, the share link shows the same dashboard, without settings."""
    token = secrets.token_urlsafe(24)
    sql(running, "UPDATE sites SET share_token_hash = :h WHERE domain = :site", h=token_hash(token), site=SITE)
    browser = launch(playwright)
    try:
        page = browser.new_context(ignore_https_errors=True).new_page()
        problems = watch(page)
        page.goto(f"{running.base_url}/share/{token}")
        wait_idle(page)
        row(page, "pages", "/dash/pricing").click()
        page.locator("#filters .dash-chip").wait_for()
        wait_metric(page, "visitors", "1")
        assert page.locator("text=read-only").count() == 1
        assert page.locator("a[href$='/settings']").count() == 0
        wait_connected(page)
        screenshot(page, "dashboard-shared")
        assert [] == problems.all()
    finally:
        browser.close()
        sql(running, "UPDATE sites SET share_token_hash = NULL WHERE domain = :site", site=SITE)


def test_fingerprinted_assets_cached_for_a_year(running: Stack) -> None:
    """Built assets are served by Nginx as immutable; the page links them by their fingerprinted names."""
    manifest = json.loads(MANIFEST.read_text())
    with login(running) as client:
        page = client.get(f"/sites/{SITE}")
        script = client.get(f"/static/dist/{manifest['dashboard.js']}", headers={"Accept-Encoding": "gzip"})
    assert f"/static/dist/{manifest['dashboard.js']}" in page.text
    assert f"/static/dist/{manifest['css/beacon.css']}" in page.text
    assert re.fullmatch(r"dashboard\.[0-9a-f]{12}\.js", manifest["dashboard.js"])
    assert 200 == script.status_code
    assert "max-age=31536000, immutable" in script.headers["cache-control"]
    assert "gzip" == script.headers.get("content-encoding")
