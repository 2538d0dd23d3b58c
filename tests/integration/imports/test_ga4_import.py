"""GA4 imports run by the import job against the loopback Google (:mod:`tests.support.google`):
every report paged into its table, resumable, idempotent, refusals in words, and ``beacon import ga4``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from services.integrations.ga4 import REPORTS
from services.integrations.imports import ga4, job
from services.integrations.imports.files import ImportRefused
from tests.support.beacon import run_beacon
from tests.support.google import CREDENTIALS, PROPERTY, Google
from tests.support.imports import Imports, Site

FIRST, LAST = dt.date(2026, 3, 1), dt.date(2026, 3, 3)
VISIT = ["3", "2", "2", "1", "30"]  # screenPageViews, totalUsers, sessions, bounces, userEngagementDuration


def serve_property(google: Google) -> None:
    """Three days of the property: 5 rows of visitors, 2 of sources, and one row in every other report."""
    google.rows = {
        "imported_visitors": [[f"2026030{d}", "10", "30", "4", "12", "600"] for d in (1, 2, 3)],
        "imported_sources": [["20260301", "google", "organic", "(not set)", "(not set)", "(not set)", "", *VISIT],
                             ["20260302", "(direct)", "(none)", "(not set)", "(not set)", "(not set)", "", *VISIT]],
        "imported_pages": [["20260301", "www.ga.example", "/pricing?x=1", "2", "3", "2", "40"]],
        "imported_entry_pages": [["20260301", "/", *VISIT]],
        "imported_locations": [["20260301", "DE", "Berlin", "Berlin", *VISIT]],
        "imported_devices": [["20260301", "desktop", *VISIT]],
        "imported_browsers": [["20260301", "Chrome", *VISIT]],
        "imported_operating_systems": [["20260301", "Macintosh", "14.1", *VISIT]],
    }


def start(imports: Imports, site: Site, google: Google) -> int:
    return ga4.create(imports.engine, site.id, PROPERTY, FIRST, LAST, CREDENTIALS, site.owner,
                      data_api=google.url, token_url=f"{google.url}/token")


def test_every_report_is_imported(imports: Imports, site: Site, google: Google) -> None:
    """Each table gets its report's rows converted; the import completes over the days seen and forgets the
    refresh token."""
    serve_property(google)
    import_id = start(imports, site, google)
    assert "completed" == job.run_import(imports.engine, imports.settings.imports, import_id)
    assert [(30, 90, 12, 36, 1800)] == imports.sql(
        "SELECT sum(visitors), sum(pageviews), sum(bounces), sum(visits), sum(visit_duration) FROM "
        "imported_visitors WHERE import_id = :id", id=import_id)
    assert [("", "", 2, 2, 1, 30), ("Google", "organic", 2, 2, 1, 30)] == imports.sql(
        "SELECT source, utm_medium, visitors, visits, bounces, visit_duration FROM imported_sources "
        "WHERE import_id = :id ORDER BY source", id=import_id)
    assert [("ga.example", "/pricing", 2, 3, 2)] == imports.sql(
        "SELECT hostname, page, visitors, pageviews, visits FROM imported_pages WHERE import_id = :id", id=import_id)
    assert [("Desktop", "Chrome", "Mac", "14.1")] == imports.sql(
        "SELECT d.device, b.browser, o.operating_system, o.operating_system_version FROM imported_devices d, "
        "imported_browsers b, imported_operating_systems o WHERE d.import_id = :id AND b.import_id = :id "
        "AND o.import_id = :id", id=import_id)
    assert [("completed", FIRST, LAST, 3, 100.0, False)] == imports.sql(
        "SELECT status, start_date, end_date, days_done, percent, params ? 'credentials' FROM site_imports "
        "WHERE id = :id", id=import_id)


def test_resumes_from_the_cursor_without_doubling(imports: Imports, site: Site, google: Google) -> None:
    """A job that stopped after the visitors report (cursor at report 1) reads on from the sources report;
    running the completed import again is skipped."""
    serve_property(google)
    import_id = start(imports, site, google)
    # What a killed worker leaves: the first report's rows and the cursor committed with them.
    imports.sql("INSERT INTO imported_visitors (site_id, import_id, date, visitors, pageviews, bounces, visits, "
                "visit_duration) VALUES (:site, :id, '2026-03-01', 10, 30, 4, 12, 600), "
                "(:site, :id, '2026-03-02', 10, 30, 4, 12, 600), (:site, :id, '2026-03-03', 10, 30, 4, 12, 600)",
                site=site.id, id=import_id)
    imports.sql("UPDATE site_imports SET status = 'importing', cursor = CAST(:cursor AS jsonb) WHERE id = :id",
                cursor=json.dumps({"report": 1, "days": ["2026-03-01", "2026-03-02", "2026-03-03"]}), id=import_id)
    assert "completed" == job.run_import(imports.engine, imports.settings.imports, import_id)
    assert [(30,)] == imports.sql("SELECT sum(visitors) FROM imported_visitors WHERE import_id = :id", id=import_id)
    dimensions = [request["dimensions"][1]["name"] if len(request["dimensions"]) > 1 else "date"
                  for request in google.requests]
    assert [r.dimensions[1] for r in REPORTS[1:]] == dimensions
    assert "skipped" == job.run_import(imports.engine, imports.settings.imports, import_id)
    assert [(30,)] == imports.sql("SELECT sum(visitors) FROM imported_visitors WHERE import_id = :id", id=import_id)


def test_forbidden_property_fails_in_words(imports: Imports, site: Site, google: Google) -> None:
    """403: the import fails with Google's reason, keeps no rows and no credentials."""
    google.faults = [403]
    import_id = start(imports, site, google)
    assert "failed" == job.run_import(imports.engine, imports.settings.imports, import_id)
    [(status, error, has_credentials, rows)] = imports.sql(
        "SELECT status, error, params ? 'credentials', (SELECT count(*) FROM imported_visitors WHERE import_id = :id) "
        "FROM site_imports WHERE id = :id", id=import_id)
    assert ("failed", False, 0) == (status, has_credentials, rows)
    assert "no access to GA4 property 123456789 (403): User does not have sufficient permissions" in error


def test_quota_exhausted_is_retried_later(imports: Imports, site: Site, google: Google) -> None:
    """429 through every retry: the job raises for Dramatiq to retry, and the import stays resumable."""
    google.faults = [429] * 20
    import_id = start(imports, site, google)
    with pytest.raises(ga4.GA4Busy, match="quota exceeded"):
        job.run_import(imports.engine, imports.settings.imports, import_id)
    assert [("importing", True)] == imports.sql(
        "SELECT status, params ? 'credentials' FROM site_imports WHERE id = :id", id=import_id)


@pytest.mark.parametrize(("first", "last", "message"), [
    pytest.param(dt.date(2026, 3, 3), dt.date(2026, 3, 1), "before the start", id="reversed"),
    pytest.param(dt.date(2026, 3, 1), dt.date.today() + dt.timedelta(days=2), "in the future", id="future"),
    pytest.param(dt.date(2010, 1, 1), dt.date(2010, 1, 2), "before GA4 existed", id="too-early"),
])
def test_bad_ranges_are_refused(imports: Imports, site: Site, first: dt.date, last: dt.date, message: str) -> None:
    with pytest.raises(ImportRefused, match=message):
        ga4.create(imports.engine, site.id, PROPERTY, first, last, CREDENTIALS)


def test_cli_creates_the_import(imports: Imports, site: Site, google: Google, tmp_path: Path) -> None:
    """``beacon import ga4 … --no-wait`` creates a pending import with the file's credentials."""
    credentials = tmp_path / "ga4.json"
    credentials.write_text(json.dumps({"client_id": "client-1", "client_secret": "secret-1",
                                       "refresh_token": "refresh-1"}))
    done = run_beacon(imports.environment, "import", "ga4", "--site", site.domain, "--property", PROPERTY,
                      "--credentials", str(credentials), "--from", "2026-03-01", "--to", "2026-03-03", "--no-wait")
    assert 0 == done.returncode, done.stderr
    assert [("ga4", "pending", f"GA4 property {PROPERTY}")] == imports.sql(
        "SELECT source, status, label FROM site_imports WHERE site_id = :site", site=site.id)


@pytest.mark.parametrize(("content", "args", "message"), [
    pytest.param('{"client_id": "a"}', [], "field 'client_secret' is missing", id="credentials-field"),
    pytest.param("{", [], "not JSON", id="credentials-json"),
    pytest.param(None, ["--from", "2026-02-30"], "--from: '2026-02-30' is not a date", id="bad-date"),
    pytest.param(None, ["--property", "G-ABC"], "--property: 'G-ABC' is not a GA4 property id", id="property"),
])
def test_cli_refusals(imports: Imports, site: Site, tmp_path: Path, content: str | None, args: list[str],
                      message: str) -> None:
    """Bad input names the option (and the file and field); nothing is created."""
    credentials = tmp_path / "ga4.json"
    credentials.write_text(content or json.dumps({"client_id": "a", "client_secret": "b", "refresh_token": "c"}))
    options = {"--site": site.domain, "--property": PROPERTY, "--credentials": str(credentials),
               "--from": "2026-03-01", "--to": "2026-03-03"}
    options.update(dict(zip(args[::2], args[1::2], strict=True)))
    done = run_beacon(imports.environment, "import", "ga4", *[x for pair in options.items() for x in pair])
    assert 0 != done.returncode
    assert message in done.stderr
    assert [] == imports.sql("SELECT id FROM site_imports WHERE site_id = :site", site=site.id)
