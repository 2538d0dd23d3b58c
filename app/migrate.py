"""Database initialisation and migrations, behind ``beacon migrate``.

On the first initialisation of an empty database the ``*.sql`` files of the init directory (``backups/``)
are applied in alphabetical order, all in one transaction; a marker table records that this happened,
so they are never applied again. Alembic migrations run after that.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg.errors import LockNotAvailable
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from app.core.db import make_engine
from app.core.errors import AppError
from app.core.settings import Settings

logger = logging.getLogger("beacon.migrate")

MIGRATIONS = Path(__file__).parent / "migrations"
MARKER = "beacon_init"
LOCK_ID = 7_201_003  # pg_advisory_lock key that serialises concurrent `beacon migrate` runs


class MigrationError(AppError):
    status_code = 500
    title = "Migration failed"


@dataclass
class MigrateResult:
    seeded: list[str]
    """Init SQL files applied by this run (empty unless the database was new)."""
    revision_before: str | None
    revision_after: str | None


def build_index_concurrently(name: str, table: str, definition: str) -> None:
    """In a migration script: index ``table`` as ``CREATE INDEX name ON table definition`` without blocking writers.

    ``definition`` is what follows the table (``(site_id, pathname) INCLUDE (name) WHERE ...``). A plain CREATE
    INDEX holds a SHARE lock while it reads the whole table: every insert waits, and ingest answers 503 once its
    hold runs out. This builds it CONCURRENTLY, outside the migration's transaction (alembic's
    ``autocommit_block``: what the migration did before is committed first). A partitioned table (``events``)
    cannot be indexed concurrently, so its index is made on the parent alone (``ON ONLY``, no rows to read:
    a moment's lock, asked for with a 1 s ``lock_timeout`` and retried, so writers wait at most that long),
    then built concurrently on each partition and attached; partitions created later inherit it. A build
    interrupted earlier leaves an invalid index: it is dropped and built again; what is valid is kept.
    """
    from alembic import op  # noqa: PLC0415 - only inside a running migration

    with op.get_context().autocommit_block():
        bind = op.get_bind()
        partitioned = bind.execute(text("SELECT relkind = 'p' FROM pg_class WHERE oid = CAST(:table AS regclass)"),
                                   {"table": table}).scalar_one()
        if not partitioned:
            _build_concurrently(bind, name, f"ON {table} {definition}")
            return
        _with_short_locks(bind, f"CREATE INDEX IF NOT EXISTS {name} ON ONLY {table} {definition}")
        partitions = bind.execute(text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:table AS regclass) ORDER BY c.relname"), {"table": table}).scalars().all()
        for partition in partitions:
            attached = bind.execute(text(
                "SELECT count(*) FROM pg_inherits i JOIN pg_index x ON x.indexrelid = i.inhrelid "
                "WHERE i.inhparent = CAST(:name AS regclass) AND x.indrelid = CAST(:partition AS regclass)"),
                {"name": name, "partition": partition}).scalar_one()
            if attached:
                continue
            child = f"{partition}_{name.removeprefix(table + '_')}"[:63]
            _build_concurrently(bind, child, f"ON {partition} {definition}")
            _with_short_locks(bind, f"ALTER INDEX {name} ATTACH PARTITION {child}")


def cut_long_paths(limit: int = 1000) -> None:
    """In a migration script: cut stored page paths longer than ``limit`` bytes of UTF-8 to their longest prefix
    within it, as the ingest service cuts them (``services.ingest.logic.MAX_PATH_BYTES``), and the visits' entry
    and exit pages with them, so that they fit the indexes that hold them (PostgreSQL refuses an index row over
    2,704 bytes). One scan of the events; the rows it changes are few."""
    from alembic import op  # noqa: PLC0415 - only inside a running migration

    prefix = (f"left({{0}}, (SELECT max(n) FROM generate_series(0, {int(limit)}) n "  # noqa: S608 - a number
              f"WHERE octet_length(left({{0}}, n)) <= {int(limit)}))")
    op.execute(f"UPDATE events SET pathname = {prefix.format('pathname')} "  # noqa: S608 - a number and names
               f"WHERE octet_length(pathname) > {int(limit)}")
    op.execute(f"UPDATE sessions SET entry_page = {prefix.format('entry_page')}, "  # noqa: S608
               f"exit_page = {prefix.format('exit_page')} "
               f"WHERE octet_length(entry_page) > {int(limit)} OR octet_length(exit_page) > {int(limit)}")


def execute_with_short_locks(statement: str) -> None:
    """In a migration script: run ``statement`` in a transaction of its own under a 1 s ``lock_timeout``, retried
    (for 10 minutes), so that while it waits for a lock nothing queues behind it for longer than that: a
    ``TRUNCATE`` of the rollups waiting for a running roll-up would otherwise hold up every ingest batch, whose
    events trigger reads ``rollup_state``."""
    from alembic import op  # noqa: PLC0415 - only inside a running migration

    with op.get_context().autocommit_block():
        _with_short_locks(op.get_bind(), statement)


def _build_concurrently(bind: Connection, name: str, on: str) -> None:
    """Build index ``name`` (``CREATE INDEX CONCURRENTLY name on``) unless a valid one exists, without the
    connection's ``statement_timeout`` (``BEACON_DATABASE_STATEMENT_TIMEOUT_MS``, 30 s): at 10 M events the
    rollups' pair index (0023) takes longer than that to build, and a cancelled build leaves an invalid index and a
    failed upgrade. Readers and writers do not wait for a concurrent build, so there is nothing the timeout
    protects. The connection's own timeout is set back after."""
    valid = bind.execute(text(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = :name AND c.relnamespace = 'public'::regnamespace"), {"name": name}).scalar()
    if valid is True:
        return
    with _without_statement_timeout(bind):
        if valid is False:
            bind.execute(text(f"DROP INDEX CONCURRENTLY {name}"))
        bind.execute(text(f"CREATE INDEX CONCURRENTLY {name} {on}"))


@contextmanager
def _without_statement_timeout(bind: Connection) -> Iterator[None]:
    """No ``statement_timeout`` on ``bind`` (outside a transaction) meanwhile; the connection's own after."""
    previous = bind.execute(text("SHOW statement_timeout")).scalar_one()
    bind.execute(text("SET statement_timeout = 0"))
    try:
        yield
    finally:
        bind.execute(text("SELECT set_config('statement_timeout', :previous, false)"), {"previous": previous})


def execute_after_commit(*statements: str) -> None:
    """In a migration script, as its last step: commit, then run ``statements`` outside a transaction and without
    the statement timeout. For maintenance a transaction cannot hold or that should not hold the migration's
    locks: ``VACUUM`` of a table the migration filled (it has no page marked all-visible until then, so every
    index-only scan of it would read the table too until autovacuum came; the rollups, see 0020), ``ALTER TABLE
    ... VALIDATE CONSTRAINT`` of a foreign key added ``NOT VALID`` (a scan that locks neither table against
    reads or writes)."""
    from alembic import op  # noqa: PLC0415 - only inside a running migration

    with op.get_context().autocommit_block():
        bind = op.get_bind()
        with _without_statement_timeout(bind):
            for statement in statements:
                bind.execute(text(statement))


def execute_in_transaction_with_short_locks(*statements: str) -> None:
    """In a migration script, inside its transaction: run ``statements`` in a savepoint under a 1 s
    ``lock_timeout``; when a lock is not granted in time, roll back to the savepoint and try again (for 10
    minutes). For DDL whose lock readers or writers would queue behind while it waits (``DROP TABLE``, ``LOCK
    TABLE ... ACCESS EXCLUSIVE``, a foreign key's lock on the table it references) after steps of the same
    transaction that must not be redone. The locks taken are held to the transaction's end."""
    from alembic import op  # noqa: PLC0415 - only inside a running migration

    bind = op.get_bind()
    previous = bind.execute(text("SHOW lock_timeout")).scalar_one()
    bind.execute(text("SET LOCAL lock_timeout = '1s'"))
    for attempt in _lock_retries():
        with attempt, bind.begin_nested():
            for statement in statements:
                bind.execute(text(statement))
    bind.execute(text("SELECT set_config('lock_timeout', :previous, true)"), {"previous": previous})


def _lock_timed_out(error: BaseException) -> bool:
    return isinstance(error, OperationalError) and isinstance(error.orig, LockNotAvailable)


def _lock_retries() -> Retrying:
    """Attempts at a statement run under a short ``lock_timeout``: again after 0.5 s while the lock is not
    granted, for 10 minutes; any other error at once."""
    return Retrying(retry=retry_if_exception(_lock_timed_out), stop=stop_after_delay(600), wait=wait_fixed(0.5),
                    reraise=True)


def _with_short_locks(bind: Connection, statement: str) -> None:
    """Run DDL that needs a lock writers would queue behind: give up after 1 s and try again (for 10 minutes)."""
    bind.execute(text("SET lock_timeout = '1s'"))
    try:
        for attempt in _lock_retries():
            with attempt:
                bind.execute(text(statement))
    finally:
        bind.execute(text("RESET lock_timeout"))


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _is_empty(conn: Connection) -> bool:
    count = conn.execute(text(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
        "AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
    )).scalar_one()
    return int(count) == 0


def _has_marker(conn: Connection) -> bool:
    return conn.execute(text("SELECT to_regclass(:name)"), {"name": f"public.{MARKER}"}).scalar() is not None


def _apply_sql_files(settings: Settings, files: list[Path]) -> None:
    psql = shutil.which("psql")
    if psql is None:
        raise MigrationError("psql is not installed; it is needed to apply the init SQL files")
    args = [psql, "--no-psqlrc", "--quiet", "--single-transaction", "-v", "ON_ERROR_STOP=1",
            "--dbname", settings.database.libpq_url]
    for path in files:
        args += ["--file", str(path)]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["psql failed"]
        message = next((line for line in lines if "ERROR:" in line or "FATAL:" in line), lines[-1])
        raise MigrationError(f"init SQL failed, nothing was applied: {message}")


def migrate(settings: Settings) -> MigrateResult:
    """Seed a new database from the init SQL files (once), then upgrade to the newest schema."""
    engine = make_engine(settings.database, application_name="beacon-migrate")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": LOCK_ID})
            conn.commit()
            try:
                seeded: list[str] = []
                if not _has_marker(conn):
                    if _is_empty(conn):
                        files = sorted(settings.paths.init_sql_dir.glob("*.sql"))
                        if files:
                            logger.info("seeding a new database", extra={"files": [f.name for f in files]})
                            _apply_sql_files(settings, files)
                            seeded = [f.name for f in files]
                    conn.execute(text(
                        f"CREATE TABLE {MARKER} (initialised_at timestamptz NOT NULL DEFAULT now(), "
                        "applied_files text[] NOT NULL)"
                    ))
                    conn.execute(text(f"INSERT INTO {MARKER} (applied_files) VALUES (:files)"),  # noqa: S608 - a constant
                                 {"files": seeded})
                    conn.commit()
                before = current_revision(conn)
                conn.commit()  # each migration runs in a transaction of its own (app/migrations/env.py)
                config = alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
                conn.commit()
                after = current_revision(conn)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": LOCK_ID})
                conn.commit()
    finally:
        engine.dispose()
    return MigrateResult(seeded=seeded, revision_before=before, revision_after=after)
