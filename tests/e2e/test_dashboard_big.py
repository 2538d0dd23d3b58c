"""The dashboard of a site with a year of generated traffic, filtered by country, page or both country and source over
12 months, in Chromium.

Opt-in (it generates and rolls up ``BEACON_E2E_BIG_EVENTS`` events, a million in about five minutes on a shared
2-core machine): ``BEACON_E2E_BIG_EVENTS=1000000 .venv/bin/python -m pytest tests/e2e/test_dashboard_big.py -s``.
Every panel must fill with rows, none may show an error, and the page must raise no console or request error;
the time from navigation to the last panel filled is printed (recorded in docs/benchmarks.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from app.core.db import make_engine
from services.analytics import rollups
from tests.support.browser import launch, watch
from tests.support.datagen import generate
from tests.support.stack import Stack, login

pytestmark = pytest.mark.e2e

EVENTS = int(os.environ.get("BEACON_E2E_BIG_EVENTS", "0"))
DOMAIN = "big.e2e.example"
TZ = "Europe/Berlin"
PANELS = ("pages", "sources", "locations", "devices", "goals")


@pytest.fixture(scope="module")
def big_site(running: Stack) -> Iterator[str]:
    if not EVENTS:
        pytest.skip("set BEACON_E2E_BIG_EVENTS (e.g. 1000000) to run the large-site dashboard check")
    assert 0 == running.beacon("site", "add", DOMAIN, "--timezone", TZ).returncode
    url = running.settings.database.libpq_url
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT id FROM sites WHERE domain = %s", (DOMAIN,)).fetchone()
    assert row is not None
    site_id = int(row[0])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO goals (site_id, display_name, event_name) VALUES (%s, 'Signup', 'Signup')",
                     (site_id,))
    started = time.perf_counter()
    loaded = generate(url, site_id, DOMAIN, events=EVENTS, days=365, end=datetime.now(UTC).date(), tz=TZ)
    db = make_engine(running.settings.database)
    while True:
        with db.begin() as conn:
            if not rollups.refresh(conn, site_id, datetime.now(UTC)).days:
                break
    db.dispose()
    print(f"\n{loaded.events:,} events generated and rolled up in {time.perf_counter() - started:.0f} s")
    yield DOMAIN


@pytest.mark.parametrize(("name", "query", "panels"), [
    pytest.param("country DE", "f=country%3D%3DDE", PANELS, id="country"),
    # The page's tiles: its bounce rate (read apart from the rollups), the legacy time on page over a year of the
    # home page's visits (the generated site has no engagement events) and no scroll depth. Its goals may have no
    # conversion on that page: the panel must settle, without an error, rows or not.
    pytest.param("page /", "f=page%3D%3D%2F", tuple(p for p in PANELS if p != "goals"), id="page"),
    # The dashboard's two usual filters together: every visit panel from the pair's rollups (migrations 0028, 0029).
    pytest.param("country DE and source Google", "f=country%3D%3DDE&f=source%3D%3DGoogle", PANELS, id="two"),
])
def test_filter_over_twelve_months_fills_every_panel(running: Stack, big_site: str, playwright: Any, name: str,
                                                     query: str, panels: tuple[str, ...]) -> None:
    with login(running) as client:
        session = client.cookies.get("beacon_session")
    assert session
    browser = launch(playwright)
    try:
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
        context.add_cookies([{"name": "beacon_session", "value": session, "url": running.base_url}])
        page = context.new_page()
        problems = watch(page)
        started = time.perf_counter()
        page.goto(f"{running.base_url}/sites/{big_site}?period=12mo&{query}")
        page.wait_for_function("() => !document.getElementById('dashboard').hasAttribute('aria-busy')",
                               timeout=60000)
        filled = time.perf_counter() - started
        # Every panel's state at once, so that a failure names all the panels left without rows.
        empty = {panel: page.inner_text(f"#list-{panel}") for panel in panels
                 if page.locator(f"#list-{panel} button.dash-row").count() == 0}
        print(f"dashboard settled in {filled * 1000:.0f} ms, load average {os.getloadavg()[0]:.1f}; "
              f"panels without rows: {empty or 'none'}")
        assert not empty, empty
        assert 0 == page.locator("#dashboard .error").count(), page.inner_text("#dashboard")
        assert "" == page.inner_text("#dash-status").strip()
        assert [] == problems.all()
        visitors = page.inner_text('.dash-metric[data-metric="visitors"] .dash-value')
        print(f"dashboard of {big_site}, {name} over 12 months: every panel filled in {filled * 1000:.0f} ms "
              f"(visitors {visitors}), load average {os.getloadavg()[0]:.1f}")
    finally:
        browser.close()
