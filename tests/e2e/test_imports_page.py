"""The imports page in Debian's Chromium through Nginx: a Plausible export uploaded by the page's script (past
Nginx's unbuffered upload location), imported by the worker, its progress followed to "completed", a malformed
file refused with its line and column, the import deleted; axe-clean at desktop and phone width."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from app.core.db import make_engine
from tests.support.browser import AXE, DESKTOP, PHONE, Visit, axe_violations, screenshot
from tests.support.stack import SITE, Stack


def sql(stack: Stack, statement: str) -> list[Any]:
    engine = make_engine(stack.settings.database)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(statement))]
    finally:
        engine.dispose()


def export_zip(path: Path, days: int) -> tuple[Path, int]:
    """A Plausible export of ``days`` days ending yesterday (its visitors file) and its total visitors."""
    last = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    rows = ["date,visitors,pageviews,bounces,visits,visit_duration"]
    total = 0
    for i in range(days):
        rows.append(f"{last - dt.timedelta(days=i)},{50 + i},{90 + i},10,{60 + i},{600 + i}")
        total += 50 + i
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"imported_visitors_{last - dt.timedelta(days=days - 1):%Y%m%d}_{last:%Y%m%d}.csv",
                         "\n".join(rows) + "\n")
    path.write_bytes(buffer.getvalue())
    return path, total


def test_upload_an_export_follow_it_and_delete_it(running: Stack, admin: Visit, tmp_path: Path) -> None:
    """The page uploads, shows the import reach "completed" with its rows and days, and deletes it."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make assets` (npm ci in app/frontend)")
    page = admin.page
    path, visitors = export_zip(tmp_path / "plausible-export.zip", 90)
    admin.go(f"/sites/{SITE}/imports")
    page.select_option("#import-source", "plausible")
    page.set_input_files("#import-file", str(path))
    page.click("#import-form button[type=submit]")

    row = page.locator("#imports-table tbody tr").first
    expect(row.locator(".import-status")).to_have_text("completed", timeout=90_000)
    expect(row.locator(".import-progress")).to_contain_text("90 rows · 90 days")
    expect(row).to_contain_text("plausible-export.zip")
    assert [(visitors,)] == sql(running, "SELECT sum(visitors) FROM imported_visitors")
    for width, name in ((DESKTOP, "site-imports"), (PHONE, "site-imports-375")):
        page.set_viewport_size(width)
        assert [] == admin.audit() + axe_violations(page, AXE.read_text())
        screenshot(page, name)
    page.set_viewport_size(DESKTOP)

    wrong = tmp_path / "imported_visitors_20240101_20240102.csv"
    wrong.write_text("date,visitors\n2024-01-01,1\n")
    page.set_input_files("#import-file", str(wrong))
    page.click("#import-form button[type=submit]")
    expect(page.locator("#import-message")).to_contain_text(
        "imported_visitors_20240101_20240102.csv, line 1, column pageviews: missing columns", timeout=30_000)

    wrong.write_text("date,visitors,pageviews,bounces,visits,visit_duration\n2024-01-01,1,1,0,1,5\n"
                     "2024-01-02,1,1,0,1,5,7\n")
    page.set_input_files("#import-file", str(wrong))
    page.click("#import-form button[type=submit]")
    newest = page.locator("#imports-table tbody tr").first
    expect(newest.locator(".import-status")).to_contain_text("failed", timeout=90_000)
    expect(newest).to_contain_text("line 3: 7 fields where the header has 6")

    for _ in range(2):
        with page.expect_navigation():
            page.locator("#imports-table tbody tr").first.get_by_role("button", name="Delete").click()
        expect(page.locator("main")).to_contain_text("Import deleted")
    assert [(0, 0)] == sql(running, "SELECT (SELECT count(*) FROM site_imports), "
                                  "(SELECT count(*) FROM imported_visitors)")
    # The one expected failure: Chromium logs the refused upload's 422 as a console error.
    assert [] == [p for p in admin.problems.all() if "status of 422" not in p]
