"""Anomaly markers and the forecast band on the dashboard's chart, in a real Chromium, from the compute service."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from app.core.db import make_engine
from app.core.sessions import SESSION_COOKIE
from tests.support.browser import launch, watch
from tests.support.stack import Stack, login

pytestmark = pytest.mark.e2e
DOMAIN = "insights.example"
DAYS = 60
SPIKE_DAYS_AGO = 5


@pytest.fixture(scope="module")
def history(running: Stack) -> Iterator[str]:
    """60 days of daily visitors with a weekly rhythm up to yesterday, and one day with ten times as many;
    odd visitors see variant B and convert (goal Signup) at 20 %, even ones see A and convert at 5 %."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=DAYS)
    rows = []
    visitor = 0
    for day in range(DAYS):
        moment = start + timedelta(days=day)
        count = round(30 + 10 * math.sin(2 * math.pi * moment.weekday() / 7))
        if moment == today - timedelta(days=SPIKE_DAYS_AGO):
            count *= 10
        for k in range(count):
            visitor += 1
            variant = "B" if visitor % 2 else "A"
            at = moment + timedelta(hours=9, seconds=k)
            rows.append({"ts": at, "visitor": visitor, "name": "pageview", "p": json.dumps({"variant": variant})})
            # B converts at 20 %, A at 5 %
            if visitor % 20 in ((1, 3, 5, 7) if variant == "B" else (0,)):
                rows.append({"ts": at + timedelta(minutes=1), "visitor": visitor, "name": "Signup",
                             "p": json.dumps({"variant": variant})})
    engine = make_engine(running.settings.database)
    with engine.begin() as conn:
        site_id = conn.execute(text("INSERT INTO sites (domain, timezone, created_at) VALUES (:d, 'UTC', :c) "
                                    "RETURNING id"), {"d": DOMAIN, "c": start}).scalar_one()
        conn.execute(text("INSERT INTO memberships (site_id, user_id, role) SELECT :s, id, 'owner' FROM users "
                          "WHERE is_admin"), {"s": site_id})
        conn.execute(text("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, "
                          "props) VALUES (:site, :ts, :name, :visitor, :visitor, :host, '/', CAST(:p AS jsonb))"),
                     [{**row, "site": site_id, "host": DOMAIN} for row in rows])
        conn.execute(text("INSERT INTO goals (site_id, event_name, display_name) VALUES (:s, 'Signup', 'Signup')"),
                     {"s": site_id})
    engine.dispose()
    yield DOMAIN


def test_chart_shows_anomaly_marker_and_forecast_band(running: Stack, history: str, playwright: Any) -> None:
    """Switched on, the chart rings the spike day, explains it, and continues with a 14-day forecast band."""
    with login(running) as client:
        session = client.cookies.get(SESSION_COOKIE)
    browser = launch(playwright)
    try:
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
        context.add_cookies([{"name": SESSION_COOKIE, "value": session, "url": running.base_url}])
        page = context.new_page()
        problems = watch(page)
        page.goto(f"{running.base_url}/sites/{history}?period=30d&interval=day")
        assert 1 == page.locator("#chart").count(), f"{page.url}: {page.content()[-1500:]}"
        page.wait_for_function("() => document.getElementById('chart').dataset.points === '30'", timeout=20000)
        assert "0" == page.get_attribute("#chart", "data-anomalies")
        page.check("#insights")
        page.wait_for_function("() => Number(document.getElementById('chart').dataset.forecast) > 0", timeout=60000)
        chart = page.locator("#chart")
        assert "1" == chart.get_attribute("data-anomalies")
        assert "14" == chart.get_attribute("data-forecast")
        assert "1 anomaly, forecast for 14 days" in (chart.get_attribute("aria-label") or "")
        spike = (datetime.now(UTC) - timedelta(days=SPIKE_DAYS_AGO)).strftime("%a %d %b %Y")
        assert page.inner_text("#anomalies").startswith("visitors ")
        assert f"on {spike}, expected " in page.inner_text("#anomalies")
        page.uncheck("#insights")
        page.wait_for_function("() => document.getElementById('chart').dataset.forecast === '0'", timeout=10000)
        assert "" == page.inner_text("#anomalies")
        assert [] == problems.all()
    finally:
        browser.close()


def test_goals_panel_compares_two_variants(running: Stack, history: str, playwright: Any) -> None:
    """The goals panel's compare form gives the verdict for variant B against A over the chosen range."""
    with login(running) as client:
        session = client.cookies.get(SESSION_COOKIE)
    browser = launch(playwright)
    try:
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
        context.add_cookies([{"name": SESSION_COOKIE, "value": session, "url": running.base_url}])
        page = context.new_page()
        problems = watch(page)
        page.goto(f"{running.base_url}/sites/{history}?period=30d")
        page.click("#compare-values summary")
        page.fill("#compare-goal", "Signup")
        page.fill("#compare-prop", "variant")
        page.fill("#compare-a", "A")
        page.fill("#compare-b", "B")
        page.click("#compare-form button[type=submit]")
        page.wait_for_function("() => document.getElementById('compare-result').textContent.includes('P(B beats A)')",
                               timeout=30000)
        text = page.inner_text("#compare-result")
        assert text.startswith("B converts better"), text
        assert "P(B beats A) 100.0 %" in text
        assert [] == problems.all()
    finally:
        browser.close()
