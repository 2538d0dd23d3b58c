"""Umami's data export folded into Plausible's daily aggregates, checked against hand-computed answers."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

from services.integrations.imports import job, store
from services.integrations.imports.files import imports_dir, store_file
from tests.support.import_files import umami_csv, umami_row
from tests.support.imports import Imports, Site


def run(imports: Imports, site: Site, path: Path) -> int:
    limits = imports.settings.imports
    stored = store_file(path, imports_dir(imports.settings.paths.state_dir), store.upload_name(), limits.max_upload)
    import_id = store.create_import(imports.engine, site.id, "umami", stored, path.name, limits, site.owner)
    assert "completed" == job.run_import(imports.engine, limits, import_id)
    return import_id


EVENTS = [
    # visit v1 of s1: two pageviews and a signup over 120 s, from Hacker News
    umami_row("s1", "v1", "/", "2024-03-15 10:00:00", referrer="news.ycombinator.com"),
    umami_row("s1", "v1", "/pricing", "2024-03-15 10:01:40", referrer="news.ycombinator.com"),
    umami_row("s1", "v1", "/pricing", "2024-03-15 10:02:00", event_type=2, name="Signup"),
    # visit v2 of s2: a bounce on a phone
    umami_row("s2", "v2", "/", "2024-03-15 11:00:00", browser="chrome", os="Mac OS", device="mobile", country="US"),
    # visit v3 of s1 (the same visitor, later): /blog then / over 30 s
    umami_row("s1", "v3", "/blog", "2024-03-15 15:00:00"),
    umami_row("s1", "v3", "/", "2024-03-15 15:00:30"),
    # next day, visit v4 of s3: one pageview and a link event (skipped)
    umami_row("s3", "v4", "/", "2024-03-16 09:00:00"),
    umami_row("s3", "v4", "/", "2024-03-16 09:05:00", event_type=3),
]
D1, D2 = dt.date(2024, 3, 15), dt.date(2024, 3, 16)


def test_umami_events_become_plausible_daily_aggregates(imports: Imports, site: Site, tmp_path: Path) -> None:
    """Visitors, visits, pageviews, bounces and durations per day and per dimension, as Plausible defines them."""
    path = tmp_path / "umami.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("website_event.csv", umami_csv(EVENTS))
    import_id = run(imports, site, path)

    q = imports.sql
    assert [(D1, 2, 5, 1, 3, 150), (D2, 1, 1, 1, 1, 0)] == q(
        "SELECT date, visitors, pageviews, bounces, visits, visit_duration FROM imported_visitors "
        "WHERE import_id = :id ORDER BY date", id=import_id)
    assert [(D1, "/", 2, 2), (D1, "/blog", 1, 1), (D2, "/", 1, 1)] == q(
        "SELECT date, entry_page, visitors, entrances FROM imported_entry_pages WHERE import_id = :id "
        "ORDER BY date, entry_page", id=import_id)
    assert [(D1, "/", 2, 2), (D1, "/pricing", 1, 1), (D2, "/", 1, 1)] == q(
        "SELECT date, exit_page, visitors, exits FROM imported_exit_pages WHERE import_id = :id "
        "ORDER BY date, exit_page", id=import_id)
    assert [(D1, "/", 3, 3, 2, 2), (D1, "/blog", 1, 1, 1, 0), (D1, "/pricing", 1, 1, 1, 1),
            (D2, "/", 1, 1, 1, 1)] == q(
        "SELECT date, page, pageviews, visits, visitors, exits FROM imported_pages WHERE import_id = :id "
        "ORDER BY date, page", id=import_id)
    assert [(D1, "Signup", 1, 1)] == q("SELECT date, name, visitors, events FROM imported_custom_events "
                                       "WHERE import_id = :id", id=import_id)
    assert [(D1, "", 2, 2), (D1, "news.ycombinator.com", 1, 1), (D2, "", 1, 1)] == q(
        "SELECT date, source, visitors, visits FROM imported_sources WHERE import_id = :id ORDER BY date, source",
        id=import_id)
    assert [(D1, "Chrome", 1, 1), (D1, "Firefox", 1, 2), (D2, "Firefox", 1, 1)] == q(
        "SELECT date, browser, visitors, visits FROM imported_browsers WHERE import_id = :id "
        "ORDER BY date, browser", id=import_id)
    assert [(D1, "GNU/Linux", 2), (D1, "Mac", 1), (D2, "GNU/Linux", 1)] == q(
        "SELECT date, operating_system, visits FROM imported_operating_systems WHERE import_id = :id "
        "ORDER BY date, operating_system", id=import_id)
    assert [(D1, "Desktop", 2), (D1, "Mobile", 1), (D2, "Desktop", 1)] == q(
        "SELECT date, device, visits FROM imported_devices WHERE import_id = :id ORDER BY date, device",
        id=import_id)
    assert [(D1, "DE", 2), (D1, "US", 1), (D2, "DE", 1)] == q(
        "SELECT date, country, visits FROM imported_locations WHERE import_id = :id ORDER BY date, country",
        id=import_id)
    assert [(0, D1, D2, 2)] == q("SELECT (SELECT count(*) FROM site_import_events), start_date, end_date, days_done "
                                 "FROM site_imports WHERE id = :id", id=import_id)


def test_umami_days_follow_the_site_time_zone(imports: Imports, site: Site, tmp_path: Path) -> None:
    """An event at 02:00 UTC counts on the previous day for a site in New York."""
    imports.sql("UPDATE sites SET timezone = 'America/New_York' WHERE id = :id", id=site.id)
    path = tmp_path / "website_event.csv"
    path.write_text(umami_csv([umami_row("s1", "v1", "/", "2024-03-16 02:00:00")]))
    import_id = run(imports, site, path)

    assert [(D1, 1)] == imports.sql("SELECT date, visits FROM imported_visitors WHERE import_id = :id",
                                    id=import_id)
