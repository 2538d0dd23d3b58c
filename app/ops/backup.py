"""Database backups: ``pg_dump`` custom-format archives with retention, and ``pg_restore`` with progress.

Both shell out to the PostgreSQL client tools rather than reimplementing them: the custom format is what
operators already know how to inspect (``pg_restore --list``) and restore by hand. The password never
appears on a command line (where ``ps`` would show it); it is passed through ``PGPASSWORD``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from app.core.errors import AppError
from app.core.settings import Settings

__all__ = [
    "BACKUP_GLOB",
    "BackupError",
    "RestoreResult",
    "backup",
    "list_backups",
    "prune",
    "restore",
]

BACKUP_PREFIX = "beacon-"
BACKUP_SUFFIX = ".dump"
BACKUP_GLOB = f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}"
"""Pattern of the files ``backup`` writes; retention only ever deletes files that match it."""

_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
_NAME_RE = re.compile(rf"^{re.escape(BACKUP_PREFIX)}\d{{8}}T\d{{12}}Z{re.escape(BACKUP_SUFFIX)}$")
# pg_restore --verbose announces each archive item it acts on with one of these verbs.
_ITEM_RE = re.compile(r"^pg_restore: (creating|processing data for|executing|restoring|dropping) ")
_DROP_RE = re.compile(r"^pg_restore: dropping ")


class BackupError(AppError):
    """A backup or restore could not be done; the message says why in one line."""

    status_code = 500
    title = "Backup failed"


@dataclass(frozen=True)
class RestoreResult:
    """What a restore did."""

    path: Path
    """The archive that was restored."""
    items: int
    """Entries in the archive's table of contents (``pg_restore --list``)."""
    restored: int
    """Entries pg_restore reported creating or loading."""


@dataclass(frozen=True)
class _Connection:
    dsn: str
    """libpq URL without the password."""
    env: dict[str, str]
    """Environment for the client tools (``PGPASSWORD`` when the URL carries one)."""


def _connection(settings: Settings) -> _Connection:
    env = dict(os.environ)
    if settings.database.password is not None:
        env["PGPASSWORD"] = settings.database.password
    # Never let a stray PGDATABASE/PGSERVICE in the caller's environment point the tools elsewhere.
    for name in ("PGDATABASE", "PGSERVICE", "PGSERVICEFILE"):
        env.pop(name, None)
    return _Connection(dsn=settings.database.libpq_url_without_password, env=env)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found on PATH; install the PostgreSQL client (postgresql-client)")
    return path


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
    chosen = errors[0] if errors else (lines[-1] if lines else "no output")
    return chosen.removeprefix("pg_dump: ").removeprefix("pg_restore: ")


def list_backups(directory: Path) -> list[Path]:
    """Backups written by :func:`backup` in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(BACKUP_GLOB) if _NAME_RE.match(p.name) and p.is_file())


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups in ``directory``; return what was deleted."""
    if keep < 1:
        raise BackupError(f"keep must be at least 1, got {keep}")
    backups = list_backups(directory)
    doomed = backups[:-keep]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def backup(settings: Settings, output_dir: Path | None = None, keep: int | None = None) -> Path:
    """Dump the database with ``pg_dump -Fc`` into ``output_dir`` and keep only the newest ``keep`` dumps.

    Args:
        settings: Beacon settings; the database URL and the default backup directory come from them.
        output_dir: Where to write; ``settings.paths.backup_dir`` when omitted.
        keep: How many backups to keep (this one included); ``None`` keeps all.

    Returns:
        The path of the new archive, named ``beacon-<UTC timestamp>.dump``.
    """
    if keep is not None and keep < 1:
        raise BackupError(f"keep must be at least 1, got {keep}")
    directory = Path(output_dir) if output_dir is not None else settings.paths.backup_dir
    try:
        directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create backup directory {directory}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BackupError(f"backup directory {directory} is not writable by this user")

    stamp = datetime.now(UTC).strftime(_TIMESTAMP_FORMAT)
    target = directory / f"{BACKUP_PREFIX}{stamp}{BACKUP_SUFFIX}"
    # Written under a name retention never matches, then renamed: a crash never leaves a truncated
    # file that looks like a good backup.
    partial = target.with_name(f".{target.name}.partial")
    conn = _connection(settings)
    command = [_tool("pg_dump"), "--format=custom", "--no-password", f"--file={partial}", f"--dbname={conn.dsn}"]
    old_umask = os.umask(0o027)
    try:
        completed = subprocess.run(command, env=conn.env, capture_output=True, text=True, check=False)
    finally:
        os.umask(old_umask)
    if completed.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {_last_error(completed.stderr)}")
    partial.rename(target)
    if keep is not None:
        prune(directory, keep)
    return target


# An extension (and its comment) in the archive's table of contents: "3; 3079 16385 EXTENSION - pg_prewarm".
_EXTENSION_RE = re.compile(r"^\d+; \d+ \d+ (EXTENSION|COMMENT - EXTENSION) ")


def _restored_items(pg_restore: str, path: Path) -> list[str]:
    """The archive's table of contents (``pg_restore --list``) without its extensions.

    Extensions belong to the host, not to Beacon's data: the ``beacon_postgresql`` role creates them as the
    superuser (``pg_prewarm`` is not one a database owner may create), and Beacon's own role, which restores,
    could neither create nor comment on them.
    """
    completed = subprocess.run(
        [pg_restore, "--list", str(path)], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise BackupError(f"{path} is not a pg_dump custom-format archive: {_last_error(completed.stderr)}")
    return [line for line in completed.stdout.splitlines()
            if line.strip() and not line.startswith(";") and not _EXTENSION_RE.match(line)]


def _progress_printer(stream: TextIO, total: int) -> Callable[[str, int], None]:
    """A callback drawing ``[done/total] what`` on one line (a terminal) or at every 10 % (a log)."""
    interactive = stream.isatty()
    last_decile = -1

    def show(what: str, done: int) -> None:
        nonlocal last_decile
        if interactive:
            stream.write(f"\r\033[K[{done:>{len(str(total))}}/{total}] {what[:100]}")
            stream.flush()
            return
        decile = (done * 10) // max(total, 1)
        if decile != last_decile:
            last_decile = decile
            stream.write(f"restore: {done}/{total} items ({done * 100 // max(total, 1)}%)\n")
            stream.flush()

    return show


def restore(settings: Settings, path: Path | str, progress: bool = True) -> RestoreResult:
    """Replace the database's contents with a ``pg_dump -Fc`` archive, atomically.

    ``pg_restore`` turns the archive into SQL, and ``psql --single-transaction`` runs ``DROP OWNED BY
    CURRENT_USER`` followed by that SQL: either the database ends up exactly as dumped, or nothing
    changes. (``pg_restore --clean`` cannot be used: it drops the constraints of partitions one by one,
    which PostgreSQL refuses for partitioned tables such as ``events``.) The archive's extensions are left
    out: the host's own (the ``beacon_postgresql`` role creates ``pg_prewarm``) stay as they are. Connect as
    Beacon's own role, which owns every Beacon object; stop Beacon first (``systemctl stop beacon``) so that no open
    connection holds locks the restore has to wait for.

    Args:
        settings: Beacon settings; the target database comes from them.
        path: The archive to restore.
        progress: Draw a progress counter on stderr.

    Returns:
        How many archive items there were and how many pg_restore reported restoring.
    """
    archive = Path(path)
    if not archive.is_file():
        raise BackupError(f"no such backup file: {archive}")
    if not os.access(archive, os.R_OK):
        raise BackupError(f"backup file {archive} is not readable by this user")
    pg_restore = _tool("pg_restore")
    psql = _tool("psql")
    items = _restored_items(pg_restore, archive)
    total = len(items)
    conn = _connection(settings)
    superuser = subprocess.run(
        [psql, "--no-psqlrc", "--no-password", "-At", "-c",
         "SELECT rolsuper FROM pg_roles WHERE rolname = current_user", f"--dbname={conn.dsn}"],
        env=conn.env, capture_output=True, text=True, check=False,
    )
    if superuser.returncode != 0:
        raise BackupError(f"cannot connect to the database: {_last_error(superuser.stderr)}")
    if superuser.stdout.strip() == "t":
        raise BackupError("refusing to restore as a superuser: use Beacon's own database role (BEACON_DATABASE_URL)")

    show = _progress_printer(sys.stderr, total) if progress else None
    restored = 0
    tail: list[str] = []
    listing = tempfile.NamedTemporaryFile("w", prefix="beacon-restore-", suffix=".list")  # noqa: SIM115 - closed below
    listing.write("\n".join(items) + "\n")
    listing.flush()
    with listing, subprocess.Popen(
        [pg_restore, "--no-owner", "--no-privileges", "--verbose", f"--use-list={listing.name}", "--file=-",
         str(archive)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as producer:
        assert producer.stdout is not None and producer.stderr is not None
        with subprocess.Popen(
            [psql, "--no-psqlrc", "--quiet", "--no-password", "--single-transaction", "-v", "ON_ERROR_STOP=1",
             # DROP OWNED also drops the public schema when this role owns it; dumps never create it.
             "-c", "DROP OWNED BY CURRENT_USER", "-c", "CREATE SCHEMA IF NOT EXISTS public",
             "-f", "-", f"--dbname={conn.dsn}"],
            stdin=producer.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=conn.env, text=True,
        ) as consumer:
            producer.stdout.close()  # psql holds the read end now; pg_restore sees EPIPE if psql stops
            for raw in producer.stderr:
                line = raw.rstrip("\n")
                tail = [*tail[-19:], line]
                if _ITEM_RE.match(line) and not _DROP_RE.match(line):
                    restored += 1
                    if show is not None:
                        show(line.removeprefix("pg_restore: "), min(restored, total))
            assert consumer.stderr is not None
            psql_errors = consumer.stderr.read()
            psql_code = consumer.wait()
        producer_code = producer.wait()
    if psql_code != 0 or producer_code != 0:
        if show is not None and sys.stderr.isatty():
            sys.stderr.write("\n")
        reason = _last_error(psql_errors) if psql_code != 0 else _last_error(chr(10).join(tail))
        raise BackupError(f"restore failed, nothing was changed: {reason.removeprefix('psql:').strip()}")
    if show is not None:
        # Not every archive item is announced by --verbose (comments, ACLs): finish the count here.
        show("done", total)
        if sys.stderr.isatty():
            sys.stderr.write("\n")
    return RestoreResult(path=archive, items=total, restored=restored)
