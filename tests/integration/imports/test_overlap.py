"""An import keeps no day of the site's own tracked stats nor of its other completed imports (Plausible's
``Imported.clamp_dates``); an import with no day left is refused in Plausible's words."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from services.integrations.imports import job, store
from services.integrations.imports.files import imports_dir, store_file
from services.integrations.imports.window import NO_WINDOW
from tests.support.import_files import plausible_export
from tests.support.imports import Imports, Site

TODAY = dt.datetime.now(dt.UTC).date()


def start(imports: Imports, site: Site, path: Path) -> int:
    limits = imports.settings.imports
    stored = store_file(path, imports_dir(imports.settings.paths.state_dir), store.upload_name(), limits.max_upload)
    return store.create_import(imports.engine, site.id, "plausible", stored, path.name, limits, site.owner)


def ago(days: int) -> dt.date:
    return TODAY - dt.timedelta(days=days)


def stored(imports: Imports, import_id: int) -> tuple[object, ...]:
    status, first, last, days, error = imports.sql(
        "SELECT status, start_date, end_date, days_done, error FROM site_imports WHERE id = :id", id=import_id)[0]
    dates = imports.sql("SELECT min(date), max(date), count(*), sum(visitors) FROM imported_visitors "
                        "WHERE import_id = :id", id=import_id)[0]
    return (status, first, last, days, error, *dates)


def test_imports_keep_off_native_stats_and_each_other(imports: Imports, site: Site, tmp_path: Path) -> None:
    """Native stats from 5 days ago: a 20-day export keeps the 15 days before them; a 30-day export ending
    inside it keeps the 20 days before it; an export wholly inside kept days is refused and stores nothing."""
    imports.sql(
        "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, referrer, "
        "referrer_source, device, browser, country, interactive, props) VALUES (:site, :ts, 'pageview', 1, 1, "
        "'imports.example', '/', '', '', 'Desktop', 'Chrome', 'DE', true, '{}')",
        site=site.id, ts=dt.datetime.combine(ago(5), dt.time(12), tzinfo=dt.UTC))
    limits = imports.settings.imports

    first = plausible_export(days=20)  # ago(20)..ago(1); visitors 100 + i on day i
    first_id = start(imports, site, first.zip(tmp_path / "first.zip"))
    assert "completed" == job.run_import(imports.engine, limits, first_id)
    assert ("completed", ago(20), ago(6), 15, None, ago(20), ago(6), 15, sum(range(100, 115))) == stored(
        imports, first_id)

    second = plausible_export(days=30, last=ago(11))  # ago(40)..ago(11)
    second_id = start(imports, site, second.zip(tmp_path / "second.zip"))
    assert "completed" == job.run_import(imports.engine, limits, second_id)
    assert ("completed", ago(40), ago(21), 20, None, ago(40), ago(21), 20, sum(range(100, 120))) == stored(
        imports, second_id)
    pages = imports.sql("SELECT min(date), max(date) FROM imported_pages WHERE import_id = :id", id=second_id)[0]
    assert (ago(40), ago(21)) == tuple(pages)

    inside = plausible_export(days=8, last=ago(8))  # ago(15)..ago(8): all the first import's
    inside_id = start(imports, site, inside.zip(tmp_path / "inside.zip"))
    assert "failed" == job.run_import(imports.engine, limits, inside_id)
    assert ("failed", None, None, 0, NO_WINDOW, None, None, 0, None) == stored(imports, inside_id)


def test_an_import_before_any_tracked_stats_keeps_every_day(imports: Imports, site: Site, tmp_path: Path) -> None:
    """No native stats and no other import: nothing is cut (today's rows included)."""
    export = plausible_export(days=7, last=TODAY)
    import_id = start(imports, site, export.zip(tmp_path / "export.zip"))
    assert "completed" == job.run_import(imports.engine, imports.settings.imports, import_id)
    assert ("completed", ago(6), TODAY, 7, None, ago(6), TODAY, 7, sum(range(100, 107))) == stored(
        imports, import_id)
