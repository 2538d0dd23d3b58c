"""Creating, listing and deleting imports (the service's routes and the CLI), and the dispatcher's sweep.

An import is created ``pending`` after its upload has been stored and its files' names and headers checked
(so a wrong file is refused at once, with its file, line and column, and nothing is created); the scheduler's
``dispatch_imports`` then sends its job (the row is the outbox, the message only points at it).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound
from app.core.import_contracts import SiteImport
from app.core.settings import ImportSettings
from services.integrations.imports import plausible, umami
from services.integrations.imports.files import ImportRefused, Stored, entries, read_csv, remove

COLUMNS = ("id, source, label, status, start_date, end_date, upload_name, upload_size, rows_done, days_done, "
           "percent, error, error_location, created_at, finished_at")

FILE_SOURCES = ("plausible", "umami")


def upload_name() -> str:
    """A fresh file name in the imports directory (never the user's)."""
    return f"upload-{secrets.token_hex(12)}"


def inspect(path: Path, source: str, display: str, limits: ImportSettings) -> None:
    """Check an upload before it becomes an import: the zip's limits, each file's name and header.

    Raises:
        ImportRefused: naming the file, line and column.
    """
    if source not in FILE_SOURCES:
        raise ImportRefused(f"{source!r} imports do not take a file")
    for entry in entries(path, display, limits):
        name = entry.name or display
        if source == "umami" and entry.name and not entry.name.lower().endswith(".csv"):
            raise ImportRefused("not a CSV file of Umami's export", file=name)
        header, records = read_csv(path, entry, display, 0, 1)
        with records:
            if source == "plausible":
                plausible.check_header(plausible.SPECS[plausible.table_of(name)], header, name)
            else:
                umami.check_header(header, name)


def _insert(site_id: int, source: str, stored: Stored, display: str, imported_by: int | None,
            label: str) -> tuple[str, dict[str, Any]]:
    return ("INSERT INTO site_imports (site_id, source, label, upload_path, upload_name, upload_size, checksum, "
            "imported_by) VALUES (:site, :source, :label, :path, :name, :size, :checksum, :by) RETURNING id",
            {"site": site_id, "source": source, "label": label[:200], "path": str(stored.path),
             "name": display[:300], "size": stored.size, "checksum": stored.checksum, "by": imported_by})


_DUPLICATE = ("SELECT id, status FROM site_imports WHERE site_id = :site AND checksum = :checksum "
              "AND status <> 'failed'")


def _duplicate(found: Any, display: str) -> Conflict:
    return Conflict(f"{display} was already imported into this site (import {found.id}, {found.status}); delete "
                    "that import first to import the file again")


def create_import(engine: Engine, site_id: int, source: str, stored: Stored, display: str, limits: ImportSettings,
                  imported_by: int | None = None, label: str = "") -> int:
    """Check the stored upload and create its pending import (the CLI's path). Removes the upload when refused.

    Raises:
        ImportRefused: the upload cannot be imported. Conflict: the same file is already imported.
    """
    try:
        inspect(stored.path, source, display, limits)
        statement, params = _insert(site_id, source, stored, display, imported_by, label)
        with engine.begin() as conn:
            found = conn.execute(text(_DUPLICATE), {"site": site_id, "checksum": stored.checksum}).first()
            if found is not None:
                raise _duplicate(found, display)
            return int(conn.execute(text(statement), params).scalar_one())
    except BaseException:
        remove(str(stored.path))
        raise


async def create_import_async(session: AsyncSession, site_id: int, source: str, stored: Stored, display: str,
                              imported_by: int | None, label: str = "") -> SiteImport:
    """Create the pending import of an upload already stored and inspected (the service's path)."""
    found = (await session.execute(text(_DUPLICATE), {"site": site_id, "checksum": stored.checksum})).first()
    if found is not None:
        raise _duplicate(found, display)
    statement, params = _insert(site_id, source, stored, display, imported_by, label)
    try:
        import_id = int((await session.execute(text(statement), params)).scalar_one())
    except IntegrityError:
        raise Conflict(f"{display} is being imported into this site already") from None
    return await get_import(session, site_id, import_id)


def _struct(row: Any) -> SiteImport:
    return SiteImport(id=row.id, source=row.source, label=row.label, status=row.status, start_date=row.start_date,
                      end_date=row.end_date, upload_name=row.upload_name, upload_size=row.upload_size,
                      rows=row.rows_done, days=row.days_done, percent=round(float(row.percent), 1),
                      error=row.error, error_location=row.error_location, created_at=row.created_at,
                      finished_at=row.finished_at)


async def list_imports(session: AsyncSession, site_id: int) -> list[SiteImport]:
    rows = await session.execute(text(f"SELECT {COLUMNS} FROM site_imports WHERE site_id = :site "  # noqa: S608 - constants
                                      "ORDER BY id DESC"), {"site": site_id})
    return [_struct(row) for row in rows]


async def get_import(session: AsyncSession, site_id: int, import_id: int) -> SiteImport:
    row = (await session.execute(text(f"SELECT {COLUMNS} FROM site_imports WHERE site_id = :site "  # noqa: S608 - constants
                                      "AND id = :id"), {"site": site_id, "id": import_id})).first()
    if row is None:
        raise NotFound(f"no import {import_id} on this site")
    return _struct(row)


def read_import(engine: Engine, import_id: int) -> SiteImport:
    """The import's state (the CLI's progress)."""
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT {COLUMNS} FROM site_imports WHERE id = :id"),  # noqa: S608 - constants
                           {"id": import_id}).first()
    if row is None:
        raise NotFound(f"import {import_id} was deleted")
    return _struct(row)


async def delete_import(session: AsyncSession, site_id: int, import_id: int) -> str | None:
    """Delete an import and (by cascade) every row it wrote; returns its upload's path, to remove after commit.
    A job still running it stops at its next batch, writing nothing."""
    row = (await session.execute(text("DELETE FROM site_imports WHERE site_id = :site AND id = :id "
                                      "RETURNING upload_path"), {"site": site_id, "id": import_id})).first()
    if row is None:
        raise NotFound(f"no import {import_id} on this site")
    return str(row.upload_path) if row.upload_path else None


def dispatch(engine: Engine, limits: ImportSettings) -> list[int]:
    """Imports to send a job for: pending or importing with no live lease (a new import, a lost message, a
    killed worker). Each is held for one lease so it is not sent again while its message waits in the queue."""
    with engine.begin() as conn:
        return [int(row[0]) for row in conn.execute(text(
            "UPDATE site_imports SET leased_until = now() + make_interval(secs => :lease), lease_token = NULL "
            "WHERE id IN (SELECT id FROM site_imports WHERE status IN ('pending', 'importing') "
            "AND (leased_until IS NULL OR leased_until < now()) ORDER BY id FOR UPDATE SKIP LOCKED) RETURNING id"),
            {"lease": limits.lease})]


def purge_orphans(engine: Engine, directory: Path, older_than: float = 86400.0) -> list[str]:
    """Remove uploads no import points at (a process that died between storing a file and creating its import,
    an import deleted while its job held the file) once they are ``older_than`` seconds old; returns their names."""
    cutoff = time.time() - older_than
    candidates = [path for path in directory.glob("upload-*") if path.stat().st_mtime < cutoff]
    if not candidates:
        return []
    with engine.connect() as conn:
        kept = {str(row[0]) for row in conn.execute(text(
            "SELECT upload_path FROM site_imports WHERE upload_path IS NOT NULL"))}
    removed = []
    for path in candidates:
        if str(path) not in kept:
            remove(str(path))
            removed.append(path.name)
    return removed
