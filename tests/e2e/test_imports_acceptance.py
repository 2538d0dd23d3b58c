"""Issue 17's acceptance through Nginx on the running stack: a 90-day Plausible CSV export imported with the
CLI shows on the dashboard with imports on (Chromium: the "Include imported data" box changes the numbers;
axe-clean) and in the Stats API's ``include.imports`` with Plausible's meta fields; a Beacon export re-imported
into a new site gives the same 90-day aggregate; a malformed file is refused with its line number."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from app.core.db import make_engine
from tests.support.browser import AXE, DESKTOP, Visit, axe_violations, launch, screenshot
from tests.support.datagen import generate
from tests.support.stack import ADMIN_EMAIL, ADMIN_PASSWORD, Stack

LAST = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
FIRST = LAST - dt.timedelta(days=89)
RANGE = [FIRST.isoformat(), LAST.isoformat()]
IMPORTED = "imported.e2e.example"
SOURCE = "source.e2e.example"
COPY = "copy.e2e.example"
# The columns of Plausible CE's export files (Plausible.Exports) this test writes.
VISITORS = ["date", "visitors", "pageviews", "bounces", "visits", "visit_duration"]
SOURCES = ["date", "source", "referrer", "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term",
           "pageviews", "visitors", "visits", "visit_duration", "bounces"]


def beacon(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI against the stack (an import waits for the worker: a longer timeout than ``Stack.beacon``)."""
    return subprocess.run([str(Path(sys.prefix) / "bin" / "beacon"), *args], env={**os.environ, **stack.environment},
                          capture_output=True, text=True, timeout=600, check=False)


def sql(stack: Stack, statement: str, **params: object) -> list[Any]:
    engine = make_engine(stack.settings.database)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def plausible_zip(path: Path) -> tuple[Path, dict[str, int]]:
    """Plausible's export of 90 days (visitors and sources files): day i has 1 + i % 9 visitors from Google."""
    visitors, sources = [VISITORS], [SOURCES]
    totals = {"visitors": 0, "pageviews": 0, "visits": 0}
    for i in range(90):
        day = (FIRST + dt.timedelta(days=i)).isoformat()
        v = 1 + i % 9
        visitors.append([day, v, 3 * v, v // 2, v + 1, 60 * v])
        sources.append([day, "Google", "google.com", "", "", "", "", "", 3 * v, v, v + 1, 60 * v, v // 2])
        totals["visitors"] += v
        totals["pageviews"] += 3 * v
        totals["visits"] += v + 1
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for table, rows in (("imported_visitors", visitors), ("imported_sources", sources)):
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(rows)
            archive.writestr(f"{table}_{FIRST:%Y%m%d}_{LAST:%Y%m%d}.csv", out.getvalue())
    return path, totals


@pytest.fixture(scope="module")
def key(running: Stack) -> Iterator[str]:
    """The admin's stats:read key; the sites this module adds are deleted afterwards."""
    for domain in (IMPORTED, SOURCE, COPY):
        added = running.beacon("site", "add", domain, "--owner", ADMIN_EMAIL)
        assert 0 == added.returncode, added.stderr
    created = running.beacon("apikey", "create", "--email", ADMIN_EMAIL, "--name", "acceptance")
    assert 0 == created.returncode, created.stderr
    yield created.stdout.strip()
    sql(running, "DELETE FROM sites WHERE domain IN (:a, :b, :c)", a=IMPORTED, b=SOURCE, c=COPY)


def api(stack: Stack, key: str) -> httpx.Client:
    """A client of the stack's Nginx with the key, patient enough for a 90-day export."""
    return httpx.Client(base_url=stack.base_url, verify=stack.ssl_context(), timeout=600,
                        headers={"Authorization": f"Bearer {key}"})


def query(stack: Stack, key: str, **body: Any) -> dict[str, Any]:
    with api(stack, key) as client:
        answer = client.post("/api/v2/query", json=body)
    assert 200 == answer.status_code, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_a_plausible_export_imported_with_the_cli(running: Stack, key: str, playwright: Any,
                                                  tmp_path: Path) -> None:
    """`beacon import plausible` completes; the Stats API and the dashboard count it only with imports on."""
    path, totals = plausible_zip(tmp_path / "plausible-export.zip")
    done = beacon(running, "import", "plausible", "--site", IMPORTED, str(path))
    assert 0 == done.returncode, done.stdout + done.stderr

    with_imports = query(running, key, site_id=IMPORTED, metrics=["visitors", "pageviews", "visits"],
                         date_range=RANGE, include={"imports": True})
    assert [totals["visitors"], totals["pageviews"], totals["visits"]] == with_imports["results"][0]["metrics"]
    assert {"imports_included": True} == {k: v for k, v in with_imports["meta"].items() if k.startswith("imports")}
    native = query(running, key, site_id=IMPORTED, metrics=["visitors"], date_range=RANGE)
    assert [0] == native["results"][0]["metrics"]
    by_source = query(running, key, site_id=IMPORTED, metrics=["visitors"], date_range=RANGE,
                      dimensions=["visit:source"], include={"imports": True})
    assert [{"dimensions": ["Google"], "metrics": [totals["visitors"]]}] == by_source["results"]
    week = [(LAST - dt.timedelta(days=6)).isoformat(), LAST.isoformat()]
    by_hour = query(running, key, site_id=IMPORTED, metrics=["visitors"], date_range=week,
                    dimensions=["time:hour"], include={"imports": True})
    assert (False, "unsupported_interval") == (by_hour["meta"]["imports_included"],
                                               by_hour["meta"]["imports_skip_reason"])
    assert "the time dimension (i.e. the interval) is too short" in by_hour["meta"]["imports_warning"]
    mixed = query(running, key, site_id=IMPORTED, metrics=["visitors"], date_range=RANGE,
                  dimensions=["visit:source"], filters=[["is", "visit:device", ["Desktop"]]],
                  include={"imports": True})
    assert (False, "unsupported_query") == (mixed["meta"]["imports_included"], mixed["meta"]["imports_skip_reason"])

    browser = launch(playwright)
    try:
        visit = Visit(running, browser)
        visit.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        page = visit.page
        value = '.dash-metric[data-metric="visitors"] .dash-value'
        visit.go(f"/sites/{IMPORTED}?period=custom&from={FIRST}&to={LAST}")
        expect(page.locator("#imports")).to_be_checked()
        expect(page.locator(value)).to_have_text(f"{totals['visitors']:,}", timeout=20_000)
        page.locator("#imports").uncheck()
        expect(page.locator(value)).to_have_text("0", timeout=20_000)
        page.locator("#imports").check()
        expect(page.locator(value)).to_have_text(f"{totals['visitors']:,}", timeout=20_000)
        if not AXE.exists():
            pytest.fail(f"{AXE} is missing: run `make assets` (npm ci in app/frontend)")
        page.set_viewport_size(DESKTOP)
        assert [] == visit.audit() + axe_violations(page, AXE.read_text())
        screenshot(page, "dashboard-imported")
        assert [] == visit.problems.all()
        visit.close()
    finally:
        browser.close()


def test_a_beacon_export_reimported_gives_the_same_aggregate(running: Stack, key: str, tmp_path: Path) -> None:
    """90 days of tracked events exported through Nginx and imported with the CLI into an empty site: every
    day's visitors, visits and pageviews, and the range's visits (summed per day), pageviews, bounce rate and
    visit duration (within a second: the export's totals are whole seconds) are the original's."""
    site_id = sql(running, "SELECT id FROM sites WHERE domain = :d", d=SOURCE)[0][0]
    generate(running.settings.database.libpq_url, site_id, SOURCE, events=3000, days=90, end=LAST, seed=17)
    with api(running, key) as client:
        exported = client.get(f"/api/v1/sites/{SOURCE}/export", params={"date_range": ",".join(RANGE)})
    assert (200, "application/zip") == (exported.status_code, exported.headers["content-type"])
    path = tmp_path / "beacon-export.zip"
    path.write_bytes(exported.content)
    done = beacon(running, "import", "plausible", "--site", COPY, str(path))
    assert 0 == done.returncode, done.stdout + done.stderr

    daily = ["visitors", "visits", "pageviews"]
    original = query(running, key, site_id=SOURCE, metrics=daily, date_range=RANGE, dimensions=["time:day"])
    copy = query(running, key, site_id=COPY, metrics=daily, date_range=RANGE, dimensions=["time:day"],
                 include={"imports": True})
    assert original["results"] == copy["results"]
    assert 90 == len(copy["results"])
    total = ["visits", "pageviews", "bounce_rate", "visit_duration"]
    first = query(running, key, site_id=SOURCE, metrics=total, date_range=RANGE)["results"][0]["metrics"]
    second = query(running, key, site_id=COPY, metrics=total, date_range=RANGE, include={"imports": True})
    copied = second["results"][0]["metrics"]
    # The export holds visits per day, a visit with events on two local days on each of them: the copy's visits
    # are the original's daily visits summed (more than the range's visits when a visit crosses midnight, which
    # depends on where the generated days fall), and its rates follow from those day rows.
    crossing = sum(row["metrics"][1] for row in original["results"]) - first[0]
    assert crossing >= 0
    assert (first[0] + crossing, first[1]) == (copied[0], copied[1])
    assert abs(first[2] - copied[2]) <= (0 if not crossing else 1)
    assert abs(first[3] - copied[3]) <= (1 if not crossing else 2)
    assert second["meta"]["imports_included"] is True


def test_a_malformed_file_is_refused_with_its_line(running: Stack, key: str, tmp_path: Path) -> None:
    """The CLI refuses a file whose third line has a negative count, naming file, line and column; nothing of
    it is imported."""
    bad = tmp_path / f"imported_visitors_{FIRST:%Y%m%d}_{FIRST + dt.timedelta(days=1):%Y%m%d}.csv"
    bad.write_text(f"{','.join(VISITORS)}\n{FIRST},1,1,0,1,5\n{FIRST + dt.timedelta(days=1)},1,-4,0,1,5\n")
    before = sql(running, "SELECT count(*) FROM site_imports")[0][0]
    refused = beacon(running, "import", "plausible", "--site", IMPORTED, str(bad))
    assert 1 == refused.returncode
    assert f"{bad.name}, line 3, column pageviews: -4 is negative" in refused.stdout + refused.stderr
    assert [] == sql(running, "SELECT 1 FROM site_imports WHERE status = 'completed' AND id > :n", n=before)
