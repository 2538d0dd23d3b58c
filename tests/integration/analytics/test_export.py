"""The CSV export (Plausible's ``imported_*.csv`` zip) built by the analytics service, checked by hand.

Site ``export.example`` (UTC):

- 2026-03-10 visit 1, visitor 1 (Google, Desktop, Chrome, DE): 09:00 pageview /, 09:05 pageview /pricing
  (300 s, no bounce);
- 2026-03-10 visit 2, visitor 2 (direct, Mobile, Safari, FR): 10:00 pageview /blog (a bounce);
- 2026-03-11 visit 3, visitor 1 (Google, Desktop, Chrome, DE): 08:00 pageview /, 08:01 Signup (interactive:
  no bounce, 60 s).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text

from app.core.db import make_engine
from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.settings import Settings

EVENTS = [
    # visitor, visit, (day, hour, minute), name, path, source, device, browser, country
    (1, 1, (10, 9, 0), "pageview", "/", "Google", "Desktop", "Chrome", "DE"),
    (1, 1, (10, 9, 5), "pageview", "/pricing", "Google", "Desktop", "Chrome", "DE"),
    (2, 2, (10, 10, 0), "pageview", "/blog", "", "Mobile", "Safari", "FR"),
    (1, 3, (11, 8, 0), "pageview", "/", "Google", "Desktop", "Chrome", "DE"),
    (1, 3, (11, 8, 1), "Signup", "/", "Google", "Desktop", "Chrome", "DE"),
]


@pytest.fixture
def site_id(settings: Settings, db: None) -> int:
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        site = int(conn.execute(text("INSERT INTO sites (domain, timezone, created_at) VALUES "
                                     "('export.example', 'UTC', '2026-01-01') RETURNING id")).scalar_one())
        for visitor, session, (day, hour, minute), name, path, source, device, browser, country in EVENTS:
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, "
                "referrer, referrer_source, device, browser, os, country, interactive, props) VALUES (:site, :ts, "
                ":name, :visitor, :session, 'export.example', :path, :referrer, :source, :device, :browser, "
                "'Mac', :country, true, '{}')"),
                {"site": site, "ts": datetime(2026, 3, day, hour, minute, tzinfo=UTC), "name": name,
                 "visitor": visitor, "session": session, "path": path, "source": source, "device": device,
                 "browser": browser, "country": country,
                 "referrer": f"https://www.{source.lower()}.com/" if source else ""})
    engine.dispose()
    return site


def export(settings: Settings, serve: Callable[[str], int], site: int, date_range: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{serve('analytics')}/sites/{site}/export", params={"date_range": date_range},
                     headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=60)


def tables(response: httpx.Response) -> dict[str, list[dict[str, str]]]:
    assert 200 == response.status_code, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: list(csv.DictReader(io.StringIO(archive.read(name).decode()))) for name in archive.namelist()}


def test_export_files_and_daily_rows(settings: Settings, serve: Callable[[str], int], site_id: int) -> None:
    """Ten files named after the range; each day's aggregates computed by hand."""
    response = export(settings, serve, site_id, "2026-03-10,2026-03-11")
    assert "application/zip" == response.headers["content-type"]
    assert 'filename="export.example_20260310_20260311.zip"' in response.headers["content-disposition"]
    files = tables(response)
    assert {f"{t}_20260310_20260311.csv" for t in (
        "imported_visitors", "imported_sources", "imported_pages", "imported_entry_pages", "imported_exit_pages",
        "imported_custom_events", "imported_locations", "imported_devices", "imported_browsers",
        "imported_operating_systems")} == set(files)
    assert [
        {"date": "2026-03-10", "visitors": "2", "pageviews": "3", "bounces": "1", "visits": "2",
         "visit_duration": "300"},
        {"date": "2026-03-11", "visitors": "1", "pageviews": "1", "bounces": "0", "visits": "1",
         "visit_duration": "60"},
    ] == files["imported_visitors_20260310_20260311.csv"]
    sources = [(r["date"], r["source"], r["referrer"], r["visitors"], r["visits"], r["bounces"], r["visit_duration"])
               for r in files["imported_sources_20260310_20260311.csv"]]
    assert [("2026-03-10", "", "", "1", "1", "1", "0"), ("2026-03-10", "Google", "google.com/", "1", "1", "0", "300"),
            ("2026-03-11", "Google", "google.com/", "1", "1", "0", "60")] == sorted(sources)
    pages = [(r["date"], r["hostname"], r["page"], r["visitors"], r["visits"], r["pageviews"])
             for r in files["imported_pages_20260310_20260311.csv"]]
    assert [("2026-03-10", "export.example", "/", "1", "1", "1"),
            ("2026-03-10", "export.example", "/blog", "1", "1", "1"),
            ("2026-03-10", "export.example", "/pricing", "1", "1", "1"),
            ("2026-03-11", "export.example", "/", "1", "1", "1")] == sorted(pages)
    entries = [(r["date"], r["entry_page"], r["entrances"], r["bounces"], r["visit_duration"], r["pageviews"])
               for r in files["imported_entry_pages_20260310_20260311.csv"]]
    assert [("2026-03-10", "/", "1", "0", "300", "2"), ("2026-03-10", "/blog", "1", "1", "0", "1"),
            ("2026-03-11", "/", "1", "0", "60", "1")] == sorted(entries)
    exits = [(r["date"], r["exit_page"], r["exits"]) for r in files["imported_exit_pages_20260310_20260311.csv"]]
    assert [("2026-03-10", "/blog", "1"), ("2026-03-10", "/pricing", "1"), ("2026-03-11", "/", "1")] == sorted(exits)
    assert [{"date": "2026-03-11", "name": "Signup", "link_url": "", "path": "", "visitors": "1", "events": "1"}] \
        == files["imported_custom_events_20260310_20260311.csv"]
    countries = [(r["date"], r["country"], r["visitors"]) for r in files["imported_locations_20260310_20260311.csv"]]
    assert [("2026-03-10", "DE", "1"), ("2026-03-10", "FR", "1"), ("2026-03-11", "DE", "1")] == sorted(countries)


def test_header_rows_are_plausibles_columns(settings: Settings, serve: Callable[[str], int], site_id: int) -> None:
    """Every file starts with Plausible's export header, even without rows in the range."""
    response = export(settings, serve, site_id, "2026-02-01,2026-02-02")
    assert 200 == response.status_code
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        header = archive.read("imported_browsers_20260201_20260202.csv").decode()
    assert "date,browser,browser_version,visitors,visits,visit_duration,bounces,pageviews\n" == header


@pytest.mark.parametrize(("date_range", "status"), [
    pytest.param("2026-03-11,2026-03-10", 400, id="end-before-start"),
    pytest.param("2026-13-01,2026-13-02", 400, id="not-a-date"),
    pytest.param("someday", 400, id="unknown-shortcut"),
])
def test_bad_range_is_refused_before_streaming(settings: Settings, serve: Callable[[str], int], site_id: int,
                                               date_range: str, status: int) -> None:
    """A bad range is a 400 naming date_range, not a broken zip."""
    response = export(settings, serve, site_id, date_range)
    assert status == response.status_code
    assert "date_range" in response.text


def test_unknown_site_is_not_found(settings: Settings, serve: Callable[[str], int], site_id: int) -> None:
    assert 404 == export(settings, serve, site_id + 1000, "all").status_code


def test_pages_carry_scroll_depth_and_time_on_page(settings: Settings, serve: Callable[[str], int],
                                                   site_id: int) -> None:
    """The pages' totals from the engagement events, per day and page, as Plausible's exporter writes them.

    Engagement events: visit 1 on / 40 % then 70 % (12.4 s and 7.7 s), on /pricing no scroll (30 s); visit 2 on
    /blog 25 % (0.4 s); visit 3 on / (11 March) 90 % (61.5 s). So on 10 March: / deepest 70 over 1 visit, 20.1 s
    -> 20 over 1; /pricing no depth (0 over 0), 30 over 1; /blog 25 over 1, 0.4 s -> 0 over 1 (a visit that
    reported engaged time, if under half a second); on 11 March / 90 over 1, 61.5 s -> 62 (half to even)."""
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        for session, (day, hour, minute), path, depth, milliseconds in [
                (1, (10, 9, 1), "/", 40, 12_400), (1, (10, 9, 4), "/", 70, 7_700), (1, (10, 9, 6), "/pricing", None,
                                                                                    30_000),
                (2, (10, 10, 1), "/blog", 25, 400), (3, (11, 8, 2), "/", 90, 61_500)]:
            conn.execute(text(
                "INSERT INTO engagements (site_id, timestamp, visitor_id, session_id, hostname, pathname, "
                "scroll_depth, engagement_time) VALUES (:site, :ts, :session, :session, 'export.example', :path, "
                ":depth, :ms)"),
                {"site": site_id, "ts": datetime(2026, 3, day, hour, minute, tzinfo=UTC), "session": session,
                 "path": path, "depth": depth, "ms": milliseconds})
    engine.dispose()
    files = tables(export(settings, serve, site_id, "2026-03-10,2026-03-11"))
    pages = [(r["date"], r["page"], r["total_scroll_depth"], r["total_scroll_depth_visits"],
              r["total_time_on_page"], r["total_time_on_page_visits"])
             for r in files["imported_pages_20260310_20260311.csv"]]
    assert [("2026-03-10", "/", "70", "1", "20", "1"), ("2026-03-10", "/blog", "25", "1", "0", "1"),
            ("2026-03-10", "/pricing", "0", "0", "30", "1"), ("2026-03-11", "/", "90", "1", "62", "1")] == sorted(pages)
