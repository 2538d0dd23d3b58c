"""Plausible CE's CSV export zip imported by the job: exact sums, idempotence, deletion, progress."""

from __future__ import annotations

import datetime as dt
import os
import time
import zipfile
from pathlib import Path

import pytest

from app.core.errors import Conflict
from services.integrations.imports import job, store
from services.integrations.imports.files import imports_dir, store_file
from services.integrations.models import IMPORTED_TABLES
from tests.support.import_files import plausible_export
from tests.support.imports import Imports, Site


def start(imports: Imports, site: Site, path: Path, source: str = "plausible") -> int:
    limits = imports.settings.imports
    stored = store_file(path, imports_dir(imports.settings.paths.state_dir), store.upload_name(), limits.max_upload)
    return store.create_import(imports.engine, site.id, source, stored, path.name, limits, site.owner)


def sums(imports: Imports, table: str, columns: list[str], import_id: int) -> dict[str, int]:
    row = imports.sql(f"SELECT {', '.join(f'sum({c})' for c in columns)} FROM {table} "
                      "WHERE import_id = :id", id=import_id)[0]
    return {c: int(v) for c, v in zip(columns, row, strict=True)}


def test_a_90_day_export_is_stored_exactly(imports: Imports, site: Site, tmp_path: Path) -> None:
    """Every imported_* table holds the export's rows and sums, and the import its range and progress."""
    export = plausible_export(days=90)
    import_id = start(imports, site, export.zip(tmp_path / "export.zip"))

    assert "completed" == job.run_import(imports.engine, imports.settings.imports, import_id)

    for table in IMPORTED_TABLES:
        assert export.rows[table] == imports.sql(f"SELECT count(*) FROM {table} WHERE import_id = :id",
                                                 id=import_id)[0][0], table
        assert export.sums[table] == sums(imports, table, list(export.sums[table]), import_id), table
    status, first, last, days, percent, rows, upload = imports.sql(
        "SELECT status, start_date, end_date, days_done, percent, rows_done, upload_path FROM site_imports "
        "WHERE id = :id", id=import_id)[0]
    assert ("completed", export.first, export.last, 90, 100.0, sum(export.rows.values()), None) == (
        status, first, last, days, percent, rows, upload)


def test_running_the_job_again_changes_nothing(imports: Imports, site: Site, tmp_path: Path) -> None:
    """A second run of a completed import is skipped and the sums stay."""
    export = plausible_export(days=10)
    import_id = start(imports, site, export.zip(tmp_path / "export.zip"))
    job.run_import(imports.engine, imports.settings.imports, import_id)

    assert "skipped" == job.run_import(imports.engine, imports.settings.imports, import_id)
    assert export.sums["imported_visitors"] == sums(imports, "imported_visitors",
                                                    list(export.sums["imported_visitors"]), import_id)


def test_the_same_file_cannot_be_imported_twice(imports: Imports, site: Site, tmp_path: Path) -> None:
    """Importing the same export into the same site again is refused: counts would double."""
    path = plausible_export(days=5).zip(tmp_path / "export.zip")
    job.run_import(imports.engine, imports.settings.imports, start(imports, site, path))

    with pytest.raises(Conflict, match="already imported"):
        start(imports, site, path)
    assert 1 == imports.sql("SELECT count(*) FROM site_imports")[0][0]


def test_a_job_resumes_from_its_cursor_without_doubling(imports: Imports, site: Site, tmp_path: Path) -> None:
    """A job that stops after some batches (its lease lost) leaves a cursor; the next run completes exactly."""
    export = plausible_export(days=60, pages_per_day=5)
    import_id = start(imports, site, export.zip(tmp_path / "export.zip"))
    run = job.claim(imports.engine, imports.settings.imports, import_id)
    assert run is not None
    commits = 0
    real_commit = run.commit

    def commit_then_die(*args: object, **kwargs: object) -> None:
        nonlocal commits
        commits += 1
        if commits == 4:
            raise job.LeaseLost  # as if the process had died after three batches
        real_commit(*args, **kwargs)  # type: ignore[arg-type]

    run.commit = commit_then_die  # type: ignore[method-assign]
    with pytest.raises(job.LeaseLost):
        job.IMPORTERS["plausible"](run)
    assert 0 < imports.sql("SELECT rows_done FROM site_imports WHERE id = :id", id=import_id)[0][0]
    imports.sql("UPDATE site_imports SET leased_until = now() - interval '1 second' WHERE id = :id", id=import_id)

    assert "completed" == job.run_import(imports.engine, imports.settings.imports, import_id)
    for table in IMPORTED_TABLES:
        assert export.sums[table] == sums(imports, table, list(export.sums[table]), import_id), table


def test_deleting_an_import_deletes_its_rows(imports: Imports, site: Site, tmp_path: Path) -> None:
    """Rows of every imported_* table go with their import."""
    import_id = start(imports, site, plausible_export(days=7).zip(tmp_path / "export.zip"))
    job.run_import(imports.engine, imports.settings.imports, import_id)

    imports.sql("DELETE FROM site_imports WHERE id = :id", id=import_id)

    for table in IMPORTED_TABLES:
        assert 0 == imports.sql(f"SELECT count(*) FROM {table}")[0][0], table


def test_days_are_checked_in_the_site_time_zone(imports: Imports, site: Site, tmp_path: Path) -> None:
    """Today in the site's zone is importable even where UTC is still yesterday (Pacific/Kiritimati, +14)."""
    imports.sql("UPDATE sites SET timezone = 'Pacific/Kiritimati' WHERE id = :id", id=site.id)
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=14))).date()
    import_id = start(imports, site, plausible_export(days=3, last=today).zip(tmp_path / "export.zip"))

    assert "completed" == job.run_import(imports.engine, imports.settings.imports, import_id)


def test_orphaned_uploads_are_purged_after_a_day(imports: Imports, site: Site, tmp_path: Path) -> None:
    """A day-old upload no import points at is removed; a pending import's upload and a fresh file stay."""
    directory = imports_dir(imports.settings.paths.state_dir)
    import_id = start(imports, site, plausible_export(days=2).zip(tmp_path / "export.zip"))
    kept = Path(imports.sql("SELECT upload_path FROM site_imports WHERE id = :id", id=import_id)[0][0])
    orphan, fresh = directory / "upload-orphan", directory / "upload-fresh"
    orphan.write_bytes(b"x")
    fresh.write_bytes(b"x")
    day_ago = time.time() - 90_000
    for path in (kept, orphan):
        os.utime(path, (day_ago, day_ago))

    assert ["upload-orphan"] == store.purge_orphans(imports.engine, directory)
    assert (True, False, True) == (kept.exists(), orphan.exists(), fresh.exists())
    fresh.unlink()


def test_archivers_own_entries_are_skipped(imports: Imports, site: Site, tmp_path: Path) -> None:
    """A zip made by macOS's Finder (with __MACOSX/ and .DS_Store entries) imports its CSV files."""
    export = plausible_export(days=4)
    path = export.zip(tmp_path / "export.zip")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(f"__MACOSX/._{export.name('imported_visitors')}", b"\x00\x05\x16\x07")
        archive.writestr(".DS_Store", b"\x00\x00\x00\x01Bud1")
    import_id = start(imports, site, path)

    assert "completed" == job.run_import(imports.engine, imports.settings.imports, import_id)
    assert export.sums["imported_visitors"] == sums(imports, "imported_visitors",
                                                    list(export.sums["imported_visitors"]), import_id)
