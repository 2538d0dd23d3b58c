"""Migration 0025 replaces 0024's narrow visits-by-country index with a covering one and drops the source's."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import Connection, text

from app.devstack import Postgres, Redis
from tests.support.migrations import schema_at


def _indexes(conn: Connection) -> dict[str, tuple[int, int, bool]]:
    """The visits table's country and source indexes: name -> (columns, key columns, valid)."""
    rows = conn.execute(text(
        "SELECT c.relname, i.indnatts, i.indnkeyatts, i.indisvalid FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'sessions'::regclass "
        "AND c.relname IN ('sessions_site_country', 'sessions_site_source')")).all()
    return {name: (columns, keys, valid) for name, columns, keys, valid in rows}


def test_the_country_index_becomes_covering_and_the_source_index_goes(postgres: Postgres, redis_server: Redis,
                                                                      tmp_path: Path) -> None:
    """At 0024 (both indexes, three key columns each, a visit stored) the upgrade to the head leaves the country
    index valid, with its three keys and 13 included columns, the source index gone and the visit found through
    it; the downgrade gives 0024's two indexes back, and upgrading again converges once more."""
    with schema_at(postgres, redis_server, tmp_path, "beacon_mig0025", "0024") as (_, conn, config):
        assert _indexes(conn) == {"sessions_site_country": (3, 3, True), "sessions_site_source": (3, 3, True)}
        site = int(conn.execute(text("INSERT INTO sites (domain) VALUES ('c.example') RETURNING id")).scalar_one())
        conn.execute(text(
            "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, country) "
            "VALUES (:site, now(), 'pageview', 1, 1, 'c.example', '/', 'DE')"), {"site": site})
        conn.commit()
        for _ in range(2):
            command.upgrade(config, "head")
            conn.commit()
            assert _indexes(conn) == {"sessions_site_country": (16, 3, True)}
            conn.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(conn.execute(text(
                "EXPLAIN SELECT entry_page, device FROM sessions WHERE site_id = :site AND country = 'DE'"),
                {"site": site}).scalars())
            assert "using sessions_site_country" in plan, plan
            assert conn.execute(text("SELECT entry_page FROM sessions WHERE site_id = :site AND country = 'DE'"),
                                {"site": site}).scalar_one() == "/"
            conn.rollback()
            command.downgrade(config, "0024")
            conn.commit()
            assert _indexes(conn) == {"sessions_site_country": (3, 3, True), "sessions_site_source": (3, 3, True)}
