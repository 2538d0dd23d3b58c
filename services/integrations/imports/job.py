"""The import job: one import, leased, written in batches whose cursor commits with their rows.

Every batch is one transaction that first renews the lease (``UPDATE site_imports ... WHERE lease_token``),
then writes its rows with ``COPY`` and the cursor after them. So a job killed at any point leaves either a
whole batch and its cursor or neither, and the next job (sent again by the scheduler's ``dispatch_imports``
once the lease has expired) reads on from the cursor: nothing is doubled. A job whose lease was taken over, or
whose import was deleted, stops at its next batch without writing.

A refusal (:class:`ImportRefused`) deletes whatever the import had written, marks it ``failed`` with the
message and its file, line and column, and is not retried.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, text

from app.core.settings import ImportSettings
from services.integrations.imports import plausible, umami
from services.integrations.imports.files import Entry, ImportRefused, Records, entries, read_csv, remove
from services.integrations.imports.ga4 import import_ga4
from services.integrations.imports.run import STAGING, LeaseLost, Run
from services.integrations.imports.window import NO_WINDOW, free_window
from services.integrations.models import IMPORTED_TABLES

logger = logging.getLogger(__name__)


Importer = Callable[[Run], None]
"""Reads an import's source into its tables through :meth:`Run.commit`; raises :class:`ImportRefused`."""


def _open_entry(run: Run, index: int, entry: Entry, name: str) -> tuple[list[str], Records, dict[str, Any]]:
    """Entry ``index`` of the upload read as CSV from where the cursor stopped in it (its start otherwise):
    its header, its rows, and the cursor position a batch of those rows commits."""
    assert run.upload is not None
    resume = run.cursor if run.cursor.get("entry") == index else {}
    header, records = read_csv(run.upload, entry, name, resume.get("offset", 0), resume.get("line", 1),
                               resume.get("header"))
    return header, records, {"entry": index, "offset": resume.get("offset", 0), "line": resume.get("line", 1),
                             "header": header}

def import_plausible(run: Run) -> None:
    """Plausible CE's CSV export: each ``imported_*.csv`` straight into its table."""
    assert run.upload is not None
    files = entries(run.upload, run.display, run.limits)
    tables = {entry.name: plausible.table_of(entry.name or run.display) for entry in files}
    total = sum(entry.size for entry in files)
    done_before = sum(entry.size for entry in files[:run.cursor.get("entry", 0)])
    today = run.today()
    for index in range(run.cursor.get("entry", 0), len(files)):
        entry = files[index]
        name = entry.name or run.display
        spec = plausible.SPECS[tables[entry.name]]
        header, records, position = _open_entry(run, index, entry, name)
        batch: list[Sequence[Any]] = []
        with records:
            plausible.check_header(spec, header, name)
            for row in records:
                day, values = plausible.parse_row(spec, row.values, name, row.line, today)
                run.days.add(day.isoformat())
                batch.append((day, *values))
                position.update(offset=row.end, line=row.line)
                if len(batch) >= run.limits.batch_rows:
                    run.commit(spec.table, ("date", *spec.columns), batch, position, done_before + row.end, total)
                    batch = []
        done_before += entry.size
        run.commit(spec.table, ("date", *spec.columns), batch, {"entry": index + 1}, done_before, total)


_FOLD_SHARE = 90.0
"""Percent reached when Umami's events are staged; folding them into aggregates is the rest."""


def import_umami(run: Run) -> None:
    """Umami's export: stage its events, then fold them into daily aggregates in one transaction."""
    assert run.upload is not None
    files = entries(run.upload, run.display, run.limits)
    total = sum(entry.size for entry in files)
    done_before = sum(entry.size for entry in files[:run.cursor.get("entry", 0)])
    now = dt.datetime.now(dt.UTC)
    zone = ZoneInfo(run.timezone)
    columns = umami.STAGED
    for index in range(run.cursor.get("entry", 0), len(files)):
        entry = files[index]
        name = entry.name or run.display
        if entry.name and not entry.name.lower().endswith(".csv"):
            raise ImportRefused("not a CSV file of Umami's export", file=name)
        header, records, position = _open_entry(run, index, entry, name)
        batch: list[Sequence[Any]] = []
        with records:
            umami.check_header(header, name)
            for row in records:
                parsed = umami.parse_row(row.values, name, row.line, now)
                position.update(offset=row.end, line=row.line)
                if parsed is not None:
                    moment, values = parsed
                    run.days.add(moment.astimezone(zone).date().isoformat())
                    batch.append(values)
                if len(batch) >= run.limits.batch_rows:
                    run.commit(STAGING, columns, batch, position, done_before + row.end, total, _FOLD_SHARE)
                    batch = []
        done_before += entry.size
        run.commit(STAGING, columns, batch, {"entry": index + 1}, done_before, total, _FOLD_SHARE)
    with run.engine.begin() as conn:
        _hold(conn, run)
        for statement in umami.FOLD.split(";\n\n"):
            if statement.strip():
                conn.execute(text(statement), {"import_id": run.import_id, "site_id": run.site_id,
                                               "tz": run.timezone})


IMPORTERS: dict[str, Importer] = {"plausible": import_plausible, "umami": import_umami, "ga4": import_ga4}
"""The importer of each source; the GA4 importer registers itself here."""


def _hold(conn: Connection, run: Run) -> None:
    held = conn.execute(text("SELECT 1 FROM site_imports WHERE id = :id AND lease_token = :token "
                             "AND status = 'importing' FOR UPDATE"), {"id": run.import_id, "token": run.token})
    if held.first() is None:
        raise LeaseLost


def claim(engine: Engine, limits: ImportSettings, import_id: int) -> Run | None:
    """Take the import's lease if it is pending, or importing under an expired lease; ``None`` otherwise."""
    token = secrets.token_hex(16)
    with engine.begin() as conn:
        row = conn.execute(text(
            "UPDATE site_imports i SET status = 'importing', lease_token = :token, "
            "leased_until = now() + make_interval(secs => :lease), attempts = attempts + 1, "
            "started_at = coalesce(started_at, now()), updated_at = now() FROM sites s "
            "WHERE i.id = :id AND s.id = i.site_id AND i.status IN ('pending', 'importing') "
            "AND (i.lease_token IS NULL OR i.leased_until IS NULL OR i.leased_until < now()) "
            "RETURNING i.site_id, i.source, i.upload_path, i.upload_name, i.params, i.cursor, i.rows_done, "
            "s.timezone"), {"token": token, "lease": limits.lease, "id": import_id}).first()
    if row is None:
        return None
    cursor = dict(row.cursor or {})
    return Run(engine, limits, import_id, row.site_id, row.source, token, row.timezone,
               Path(row.upload_path) if row.upload_path else None, row.upload_name or "upload", dict(row.params),
               cursor, row.rows_done, set(cursor.get("days", [])))


def run_import(engine: Engine, limits: ImportSettings, import_id: int) -> str:
    """Run (or resume) an import to its end; returns its status afterwards (``skipped`` when another job
    holds it or it is finished). Safe to call any number of times."""
    run = claim(engine, limits, import_id)
    if run is None:
        return "skipped"
    importer = IMPORTERS.get(run.source)
    try:
        if importer is None:
            raise ImportRefused(f"no importer for {run.source!r} in this installation")
        importer(run)
        _complete(run)
    except LeaseLost:
        logger.info("import lease lost", extra={"import_id": import_id})
        return "skipped"
    except ImportRefused as exc:
        _fail(run, exc)
        return "failed"
    except BaseException:
        _release(run)  # the retry (or the sweep) resumes from the cursor at once
        raise
    logger.info("import completed", extra={"import_id": import_id, "rows": run.rows_done})
    return "completed"


_UNION = " UNION ALL ".join(f"SELECT date FROM {table} WHERE import_id = :id"  # noqa: S608 - constants
                            for table in IMPORTED_TABLES)
_DATES = f"SELECT min(date), max(date), count(DISTINCT date) FROM ({_UNION}) d"  # noqa: S608 - constants


def _clamp(conn: Connection, run: Run) -> None:
    """Delete the import's rows on days the site's own stats or its other completed imports hold (see
    :mod:`.window`); refuse it when no day is left. The site's row is locked so that two imports of one site
    ending together see each other."""
    first, last = conn.execute(text(_DATES), {"id": run.import_id}).one()[:2]
    if first is None:
        return
    conn.execute(text("SELECT 1 FROM sites WHERE id = :site FOR UPDATE"), {"site": run.site_id})
    native = conn.execute(text("SELECT min(timestamp) FROM events WHERE site_id = :site"),
                          {"site": run.site_id}).scalar()
    occupied = [(row.start_date, row.end_date) for row in conn.execute(text(
        "SELECT start_date, end_date FROM site_imports WHERE site_id = :site AND id <> :id "
        "AND status = 'completed' AND start_date IS NOT NULL AND end_date IS NOT NULL"),
        {"site": run.site_id, "id": run.import_id})]
    native_day = native.astimezone(ZoneInfo(run.timezone)).date() if native is not None else None
    kept = free_window(first, last, native_day, occupied)
    if kept is None:
        raise ImportRefused(NO_WINDOW)
    if kept == (first, last):
        return
    removed = 0
    for table in IMPORTED_TABLES:
        removed += conn.execute(text(f"DELETE FROM {table} WHERE import_id = :id "  # noqa: S608 - constants
                                     "AND (date < :first OR date > :last)"),
                                {"id": run.import_id, "first": kept[0], "last": kept[1]}).rowcount
    conn.execute(text("UPDATE site_imports SET rows_done = greatest(rows_done - :removed, 0) WHERE id = :id"),
                 {"removed": removed, "id": run.import_id})
    logger.info("import clamped", extra={"import_id": run.import_id, "first": kept[0].isoformat(),
                                         "last": kept[1].isoformat(), "rows_removed": removed})


def _complete(run: Run) -> None:
    with run.engine.begin() as conn:
        _hold(conn, run)
        _clamp(conn, run)
        first, last, days = conn.execute(text(_DATES), {"id": run.import_id}).one()
        conn.execute(text(
            "UPDATE site_imports SET status = 'completed', start_date = :first, end_date = :last, days_done = :days, "
            "percent = 100, bytes_done = upload_size, lease_token = NULL, leased_until = NULL, upload_path = NULL, "
            "has_scroll_depth = EXISTS (SELECT 1 FROM imported_pages WHERE import_id = :id "
            "AND total_scroll_depth_visits > 0), finished_at = now(), updated_at = now() WHERE id = :id"),
            {"first": first, "last": last, "days": days, "id": run.import_id})
    remove(str(run.upload) if run.upload else None)


def _fail(run: Run, exc: ImportRefused) -> None:
    with run.engine.begin() as conn:
        _hold(conn, run)
        for table in (*IMPORTED_TABLES, STAGING):
            conn.execute(text(f"DELETE FROM {table} WHERE import_id = :id"),  # noqa: S608 - constants
                         {"id": run.import_id})
        conn.execute(text(
            "UPDATE site_imports SET status = 'failed', error = :error, error_location = :location, "
            "rows_done = 0, days_done = 0, lease_token = NULL, leased_until = NULL, upload_path = NULL, "
            "finished_at = now(), updated_at = now() WHERE id = :id"),
            {"error": str(exc), "location": json.dumps(exc.location()), "id": run.import_id})
    remove(str(run.upload) if run.upload else None)
    logger.info("import refused", extra={"import_id": run.import_id, "error": str(exc)})


def _release(run: Run) -> None:
    try:
        with run.engine.begin() as conn:
            conn.execute(text("UPDATE site_imports SET leased_until = NULL, lease_token = NULL "
                              "WHERE id = :id AND lease_token = :token"), {"id": run.import_id, "token": run.token})
    except Exception:  # the database may be what failed; the lease then expires on its own
        logger.warning("could not release an import's lease", extra={"import_id": run.import_id})


__all__ = ["IMPORTERS", "Entry", "ImportRefused", "LeaseLost", "Run", "claim", "run_import"]
