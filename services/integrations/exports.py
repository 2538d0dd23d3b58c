"""Export jobs: a large site's stats as Plausible's CSV export, built to a file, linked on the imports page and
emailed to whoever asked.

A site with fewer than ``BEACON_IMPORT_EXPORT_JOB_EVENTS`` events streams its export at once (the api passes the
analytics service's zip on). A larger one gets a row in ``site_exports`` (the outbox: the Dramatiq message only
points at it) and a job that takes the export's lease, asks the analytics service for the same zip and writes
it to ``$BEACON_STATE_DIR/exports/`` while recording the bytes written (the page's progress). When the zip is
whole the export becomes ``ready`` with an expiry (``BEACON_IMPORT_EXPORT_TTL`` seconds) and, in the same
transaction, an email with a signed download link joins the mail outbox. A job that dies leaves the export
``building`` under a lease that expires; the scheduler's ``dispatch_exports`` then sends it again and it starts
the zip over (a zip cannot be resumed in the middle of a deflate stream). ``purge_exports`` removes expired
files and marks their exports ``expired``.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import re
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ClientError, Conflict, NotFound
from app.core.http import ServiceClient, ServiceError
from app.core.import_contracts import SiteExport
from app.core.settings import Settings
from app.core.tokens import sign_token
from services.integrations import mail

logger = logging.getLogger("beacon.integrations")

DOWNLOAD_PURPOSE = "export-download"
"""The signed download link's token purpose (``app.core.tokens``); its payload is ``{"export", "site"}``."""
DATE_RANGE = re.compile(r"^(all|7d|30d|month|12mo|year|\d{4}-\d{2}-\d{2},\d{4}-\d{2}-\d{2})$")
"""The export's ``date_range`` values (the analytics service checks the dates themselves)."""
EXPORT_TIMEOUT = httpx.Timeout(600.0, connect=2.0)
MAX_ATTEMPTS = 5
"""Jobs an export may take (a worker killed, the analytics service down) before it is failed."""
_PROGRESS_EVERY = 1024 * 1024


class ShortOfDisk(Exception):
    """The exports directory's file system has less than ``BEACON_IMPORT_MIN_FREE_DISK`` free."""


SHORT_OF_DISK = ("the server is short of disk space for exports (BEACON_IMPORT_MIN_FREE_DISK); ask again later or "
                 "for a shorter range")


def _check_space(directory: Path, reserve: int) -> None:
    """Raises :class:`ShortOfDisk` when ``directory`` has less than ``reserve`` bytes free (0: no check)."""
    if reserve and shutil.disk_usage(directory).free < reserve:
        raise ShortOfDisk
"""Bytes between two progress updates (each also renews the lease)."""

COLUMNS = "id, date_range, status, bytes_done, file_name, error, created_at, finished_at, expires_at"


class LeaseLost(Exception):
    """Another job builds the export now, or it was deleted: stop without writing."""


def exports_dir(state_dir: Path) -> Path:
    """``$BEACON_STATE_DIR/exports`` (mode 0700), created on first use."""
    directory = state_dir / "exports"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def _struct(row: Any) -> SiteExport:
    return SiteExport(id=row.id, date_range=row.date_range, status=row.status, bytes_done=row.bytes_done,
                      file_name=row.file_name, error=row.error, created_at=row.created_at,
                      finished_at=row.finished_at, expires_at=row.expires_at)


async def is_large(session: AsyncSession, site_id: int, threshold: int) -> bool:
    """Whether the site has at least ``threshold`` events (counted up to the threshold only)."""
    count = (await session.execute(text(
        "SELECT count(*) FROM (SELECT 1 FROM events WHERE site_id = :site LIMIT :limit) e"),
        {"site": site_id, "limit": threshold})).scalar_one()
    return int(count) >= threshold


def check_range(date_range: str) -> None:
    """Raises ClientError unless ``date_range`` has the form the export takes."""
    if not DATE_RANGE.match(date_range):
        raise ClientError(f"date_range must be YYYY-MM-DD,YYYY-MM-DD or one of all, 7d, 30d, month, 12mo, "
                          f"year; got {date_range[:40]!r}")


MAX_UNFINISHED = 3
"""Export jobs one site may have pending or building at once (of different ranges); a further one is refused."""


async def create_export(session: AsyncSession, site_id: int, date_range: str, requested_by: int | None) -> SiteExport:
    """A pending export of the site over ``date_range``; the scheduler's ``dispatch_exports`` sends its job. While
    one of the same range is still pending or building, that one is returned instead: each export reads every
    event of its range and keeps its zip for days, so a repeated click (or a script) must not multiply them.

    Raises:
        ClientError: ``date_range`` is not one the export takes.
        Conflict: the site already has :data:`MAX_UNFINISHED` unfinished exports of other ranges.
    """
    check_range(date_range)
    # Two clicks at once must not both find nothing and both insert: one site's requests take turns.
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('site_exports'), :site)"), {"site": site_id})
    running = (await session.execute(text(
        f"SELECT {COLUMNS} FROM site_exports WHERE site_id = :site AND date_range = :range "  # noqa: S608 - constants
        "AND status IN ('pending', 'building') ORDER BY id LIMIT 1"), {"site": site_id, "range": date_range})).first()
    if running is not None:
        return _struct(running)
    unfinished = (await session.execute(text(
        "SELECT count(*) FROM site_exports WHERE site_id = :site AND status IN ('pending', 'building')"),
        {"site": site_id})).scalar_one()
    if unfinished >= MAX_UNFINISHED:
        raise Conflict(f"{unfinished} exports of this site are being built already; ask again once one is ready")
    row = (await session.execute(text(
        f"INSERT INTO site_exports (site_id, date_range, requested_by) VALUES (:site, :range, :by) "  # noqa: S608 - constants
        f"RETURNING {COLUMNS}"), {"site": site_id, "range": date_range, "by": requested_by})).one()
    return _struct(row)


async def list_exports(session: AsyncSession, site_id: int) -> list[SiteExport]:
    rows = await session.execute(text(f"SELECT {COLUMNS} FROM site_exports WHERE site_id = :site "  # noqa: S608 - constants
                                      "ORDER BY id DESC LIMIT 20"), {"site": site_id})
    return [_struct(row) for row in rows]


async def ready_file(session: AsyncSession, site_id: int, export_id: int) -> tuple[Path, str]:
    """The file and name of a ready, unexpired export.

    Raises:
        NotFound: no such export, not ready, or expired.
    """
    row = (await session.execute(text(
        "SELECT file_path, file_name FROM site_exports WHERE id = :id AND site_id = :site AND status = 'ready' "
        "AND expires_at > now()"), {"id": export_id, "site": site_id})).first()
    if row is None or not row.file_path or not await asyncio.to_thread(Path(row.file_path).is_file):
        raise NotFound(f"export {export_id} is not ready or has expired")
    return Path(row.file_path), str(row.file_name)


def dispatch(engine: Engine, lease: float) -> list[int]:
    """Exports to send a job for: pending, or building under an expired lease (a killed worker). Each is held
    for one lease so that it is not sent again while its message waits."""
    with engine.begin() as conn:
        return [int(row[0]) for row in conn.execute(text(
            "UPDATE site_exports SET leased_until = now() + make_interval(secs => :lease), lease_token = NULL "
            "WHERE id IN (SELECT id FROM site_exports WHERE status IN ('pending', 'building') "
            "AND (leased_until IS NULL OR leased_until < now()) ORDER BY id FOR UPDATE SKIP LOCKED) RETURNING id"),
            {"lease": lease})]


def _claim(engine: Engine, export_id: int, lease: float) -> tuple[str, Any] | None:
    token = secrets.token_hex(16)
    with engine.begin() as conn:
        row = conn.execute(text(
            "UPDATE site_exports e SET status = 'building', lease_token = :token, bytes_done = 0, "
            "leased_until = now() + make_interval(secs => :lease), attempts = attempts + 1 FROM sites s "
            "WHERE e.id = :id AND s.id = e.site_id AND e.status IN ('pending', 'building') "
            "AND (e.lease_token IS NULL OR e.leased_until IS NULL OR e.leased_until < now()) "
            "RETURNING e.site_id, e.date_range, e.requested_by, e.attempts, s.domain"),
            {"token": token, "lease": lease, "id": export_id}).first()
    return (token, row) if row is not None else None


def _progress(engine: Engine, export_id: int, token: str, done: int, lease: float) -> None:
    with engine.begin() as conn:
        renewed = conn.execute(text(
            "UPDATE site_exports SET bytes_done = :done, leased_until = now() + make_interval(secs => :lease) "
            "WHERE id = :id AND lease_token = :token AND status = 'building'"),
            {"done": done, "lease": lease, "id": export_id, "token": token})
        if renewed.rowcount != 1:
            raise LeaseLost


async def _download(settings: Settings, engine: Engine, export_id: int, token: str, site_id: int,
                    date_range: str, partial: Path) -> str:
    """Write the analytics service's zip to ``partial``; returns its file name (from Content-Disposition)."""
    client = ServiceClient(settings)
    lease = settings.imports.lease
    try:
        upstream = await client.open_stream("analytics", "GET", f"/sites/{site_id}/export",
                                            params={"date_range": date_range}, timeout=EXPORT_TIMEOUT)
        try:
            disposition = upstream.headers.get("content-disposition", "")
            found = re.search(r'filename="([^"/\\]+)"', disposition)
            done, reported = 0, 0
            with partial.open("wb") as out:
                async for chunk in upstream.aiter_bytes():
                    out.write(chunk)
                    done += len(chunk)
                    if done - reported >= _PROGRESS_EVERY:
                        _check_space(partial.parent, settings.imports.min_free_disk)
                        await asyncio.to_thread(_progress, engine, export_id, token, done, lease)
                        reported = done
                out.flush()
                os.fsync(out.fileno())
        finally:
            await upstream.aclose()
    finally:
        await client.aclose()
    return found.group(1) if found else f"export-{export_id}.zip"


def download_url(settings: Settings, domain: str, site_id: int, export_id: int, ttl: float) -> str:
    """The signed, expiring download link of an export (for a signed-in owner or admin of the site)."""
    token = sign_token(settings.security.secret_key, DOWNLOAD_PURPOSE, {"export": export_id, "site": site_id}, ttl)
    return f"{settings.server.base_url}/sites/{domain}/exports/{export_id}/download?token={token}"


def build(engine: Engine, settings: Settings, export_id: int) -> str:
    """Build (or rebuild, after a dead job) one export's zip; returns its status afterwards (``skipped`` when
    another job holds it or it is finished). A range the analytics service refuses fails the export with its
    words; other errors release the lease and raise (Dramatiq retries)."""
    lease = settings.imports.lease
    claimed = _claim(engine, export_id, lease)
    if claimed is None:
        return "skipped"
    token, row = claimed
    if row.attempts > MAX_ATTEMPTS:
        _finish(engine, export_id, token, "UPDATE site_exports SET status = 'failed', error = :error, "
                "lease_token = NULL, leased_until = NULL, finished_at = now() WHERE id = :id AND lease_token = :token",
                {"error": f"the export failed {MAX_ATTEMPTS} times (see the worker's log); ask for it again"})
        return "failed"
    directory = exports_dir(settings.paths.state_dir)
    for leftover in directory.glob(f"export-{export_id}-*.partial"):  # of a job killed while writing
        leftover.unlink(missing_ok=True)
    partial = directory / f"export-{export_id}-{token}.partial"
    try:
        _check_space(directory, settings.imports.min_free_disk)
        name = asyncio.run(_download(settings, engine, export_id, token, row.site_id, row.date_range, partial))
    except (ServiceError, ShortOfDisk) as exc:
        partial.unlink(missing_ok=True)
        _finish(engine, export_id, token, "UPDATE site_exports SET status = 'failed', error = :error, "
                "lease_token = NULL, leased_until = NULL, finished_at = now() WHERE id = :id AND lease_token = :token",
                {"error": exc.detail[:500] if isinstance(exc, ServiceError) else SHORT_OF_DISK})
        return "failed"
    except LeaseLost:
        partial.unlink(missing_ok=True)
        return "skipped"
    except BaseException:
        partial.unlink(missing_ok=True)
        _finish(engine, export_id, token, "UPDATE site_exports SET lease_token = NULL, leased_until = NULL "
                "WHERE id = :id AND lease_token = :token", {})
        raise
    final = directory / f"export-{export_id}-{secrets.token_hex(8)}.zip"
    partial.rename(final)
    ttl = settings.imports.export_ttl
    with engine.begin() as conn:
        done = conn.execute(text(
            "UPDATE site_exports SET status = 'ready', file_path = :path, file_name = :name, bytes_done = :size, "
            "lease_token = NULL, leased_until = NULL, finished_at = now(), "
            "expires_at = now() + make_interval(secs => :ttl) WHERE id = :id AND lease_token = :token "
            "AND status = 'building' RETURNING expires_at"),
            {"path": str(final), "name": name, "size": final.stat().st_size, "ttl": ttl, "id": export_id,
             "token": token}).first()
        if done is None:
            final.unlink(missing_ok=True)
            return "skipped"
        recipient = conn.execute(text("SELECT email FROM users WHERE id = :id"),
                                 {"id": row.requested_by}).scalar() if row.requested_by else None
        if recipient:
            mail.enqueue(conn, ready_mail(settings, recipient, row.domain, row.site_id, export_id, name,
                                          done.expires_at, ttl))
    logger.info("export ready", extra={"export_id": export_id, "bytes": final.stat().st_size})
    return "ready"


def _finish(engine: Engine, export_id: int, token: str, statement: str, params: dict[str, Any]) -> None:
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), {**params, "id": export_id, "token": token})
    except Exception:  # the database may be what failed; the lease then expires on its own
        logger.warning("could not release an export's lease", extra={"export_id": export_id})


def ready_mail(settings: Settings, recipient: str, domain: str, site_id: int, export_id: int, name: str,
               expires_at: datetime, ttl: float) -> mail.Mail:
    """The email with an export's download link (valid until the file expires)."""
    url = download_url(settings, domain, site_id, export_id, ttl)
    until = expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    subject = f"Your export of {domain} is ready"
    text_body = (f"The export of {domain} ({name}) is ready. Download it (signed in as an owner or admin of the "
                 f"site) until {until}:\n\n{url}\n")
    html_body = mail._page(subject, [
        f"The export of {html.escape(domain)} ({html.escape(name)}) is ready.",
        f'<a href="{html.escape(url)}">Download the export</a> (signed in as an owner or admin of the site) '
        f"until {until}."])
    return mail.Mail(kind="export_ready", recipient=recipient, subject=subject, text_body=text_body,
                     html_body=html_body, dedup_key=f"export-ready:{export_id}")


def purge_expired(engine: Engine) -> list[int]:
    """Remove the files of exports past their expiry; their exports become ``expired``. Returns their ids."""
    with engine.begin() as conn:
        rows = list(conn.execute(text(
            "WITH due AS (SELECT id, file_path FROM site_exports WHERE status = 'ready' AND expires_at <= now() "
            "FOR UPDATE SKIP LOCKED) UPDATE site_exports e SET status = 'expired', file_path = NULL FROM due "
            "WHERE e.id = due.id RETURNING e.id, due.file_path")))
    for row in rows:
        if row[1]:
            Path(row[1]).unlink(missing_ok=True)
    return [int(row[0]) for row in rows]
