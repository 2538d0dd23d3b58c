"""Migrations that index the events and the visits do not stop ingest: a real PostgreSQL, a migration run while
another transaction writes, and a third writer that must get through while the indexes build."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from app.core.db import make_engine
from app.core.settings import Settings
from app.devstack import Postgres, Redis
from app.migrate import _build_concurrently, alembic_config
from tests.support.migrations import schema_at

INDEXES = ("events_site_page", "events_site_custom", "sessions_site_start", "events_site_props",
           "events_props_values")


def _insert_event(conn: Connection, site: int, visitor: int) -> None:
    conn.execute(text(
        "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
        "VALUES (:site, now(), 'pageview', :visitor, :visitor, 'locks.example', '/')"),
        {"site": site, "visitor": visitor})


def _upgrade(engine: Engine, errors: list[BaseException]) -> None:
    try:
        with engine.connect() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            conn.commit()
    except BaseException as error:  # handed to the test, which asserts there is none
        errors.append(error)


def _index_build_waiting(conn: Connection) -> bool:
    return bool(conn.execute(text(
        "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'CREATE INDEX%' AND wait_event_type = 'Lock'"
    )).scalar())


def test_event_indexes_build_while_events_are_written(postgres: Postgres, redis_server: Redis,
                                                      tmp_path: Path) -> None:
    """Upgrading from 0014 while a transaction holds uncommitted events: the index builds wait for it, and
    meanwhile a new event is stored within a 5 s lock timeout (a plain CREATE INDEX queues a SHARE lock that
    every later insert waits behind); the indexes end valid, the visits' index with its included columns."""
    with schema_at(postgres, redis_server, tmp_path, "beacon_miglocks", "0014") as (engine, conn, _):
        site = int(conn.execute(text("INSERT INTO sites (domain) VALUES ('locks.example') RETURNING id")).scalar_one())
        _insert_event(conn, site, 1)
        conn.commit()
        with engine.connect() as holder, engine.connect() as watcher, engine.connect() as writer:
            _insert_event(holder, site, 2)  # left uncommitted while the migration starts
            errors: list[BaseException] = []
            migration = threading.Thread(target=_upgrade, args=(engine, errors))
            migration.start()
            deadline = time.monotonic() + 60
            while not _index_build_waiting(watcher):
                watcher.commit()
                assert migration.is_alive() and time.monotonic() < deadline, errors or "no index build started"
                time.sleep(0.1)
            writer.execute(text("SET lock_timeout = '5s'"))
            _insert_event(writer, site, 3)
            writer.commit()
            holder.commit()
            migration.join(180)
            assert not migration.is_alive()
            assert not errors, errors
        with engine.connect() as check:
            valid = dict(check.execute(text(
                "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = ANY(:names)"), {"names": [*INDEXES, "sessions_site_start_covering"]}).all())
            definition = check.execute(text("SELECT pg_get_indexdef('sessions_site_start'::regclass)")).scalar_one()
            stored = check.execute(text("SELECT count(*) FROM events WHERE site_id = :site"), {"site": site}).scalar()
    assert dict.fromkeys(INDEXES, True) == valid
    assert "INCLUDE (ended_at" in definition
    assert 3 == stored


def test_concurrent_builds_outlast_the_statement_timeout(settings: Settings) -> None:
    """An index a migration builds concurrently (``app.migrate._build_concurrently``) is not cancelled by the
    connection's statement timeout, which a large site's build exceeds (the rollups' pair index, 0023), and the
    connection keeps its own timeout after. A plain concurrent build under the same timeout (20 ms, far under the
    400,000 rows' build) is cancelled."""
    engine = make_engine(settings.database)
    try:
        with engine.connect() as raw:
            conn = raw.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("DROP TABLE IF EXISTS build_probe"))
            conn.execute(text("CREATE TABLE build_probe AS SELECT g AS id, md5(g::text) AS word "
                              "FROM generate_series(1, 400000) g"))
            try:
                conn.execute(text("SET statement_timeout = '20ms'"))
                with pytest.raises(OperationalError, match="statement timeout"):
                    conn.execute(text("CREATE INDEX CONCURRENTLY build_probe_plain ON build_probe (word, id)"))
                _build_concurrently(conn, "build_probe_word", "ON build_probe (word, id)")
                assert "20ms" == conn.execute(text("SHOW statement_timeout")).scalar_one()
                assert conn.execute(text(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE c.relname = 'build_probe_word'")).scalar_one()
            finally:
                conn.execute(text("RESET statement_timeout"))
                conn.execute(text("DROP TABLE build_probe"))
    finally:
        engine.dispose()
