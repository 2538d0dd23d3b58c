"""Migration 0026 merges each visitor span and visit span of one key into one row, and its downgrade splits them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import Connection, text

from app.devstack import Postgres, Redis
from tests.support.migrations import schema_at

# (kind, dimension, value, first_day, last_day, n, bounces, duration, pageviews) as 0025 stores them: a key with
# both kinds, a key with visitors only, a key with visits only, and a pair's row (indexed by its first part).
TWO_ROWS = [
    ("u", "visit:source", "Google", "2026-11-01", "2026-11-02", 7, 0, 0, 0),
    ("v", "visit:source", "Google", "2026-11-01", "2026-11-02", 9, 4, 310.5, 21),
    ("u", "event:page", "/", "2026-11-01", "2026-11-01", 3, 0, 0, 0),
    ("v", "event:page", "/a", "2026-11-02", "2026-11-03", 2, 1, 60, 5),
    ("u", "event:page+custom|visit:entry_page", "1:/b", "2026-11-01", "2026-11-01", 5, 0, 0, 0),
    ("v", "event:page+custom|visit:entry_page", "1:/b", "2026-11-01", "2026-11-01", 6, 2, 12, 8),
]
ONE_ROW = [  # (dimension, value, first_day, last_day, visitors, visits, bounces, duration, pageviews)
    ("event:page", "/", "2026-11-01", "2026-11-01", 3, 0, 0, 0, 0),
    ("event:page", "/a", "2026-11-02", "2026-11-03", 0, 2, 1, 60, 5),
    ("event:page+custom|visit:entry_page", "1:/b", "2026-11-01", "2026-11-01", 5, 6, 2, 12, 8),
    ("visit:source", "Google", "2026-11-01", "2026-11-02", 7, 9, 4, 310.5, 21),
]


def _rows(conn: Connection, columns: str) -> list[tuple[object, ...]]:
    return sorted(tuple(float(v) if k == len(row) - 2 else (str(v) if hasattr(v, "isoformat") else v)
                  for k, v in enumerate(row))
            for row in conn.execute(text(f"SELECT {columns} FROM rollup_spans")))


def _indexes(conn: Connection) -> dict[str, str]:
    return dict(conn.execute(text(  # type: ignore[arg-type]
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'rollup_spans'")).all())


def _columns(conn: Connection) -> set[tuple[object, ...]]:
    """The table's columns (name, type, not null, default) and constraints (name, definition)."""
    return {tuple(row) for row in conn.execute(text(
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull::text, "
        "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN pg_attrdef d "
        "ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE attrelid = 'rollup_spans'::regclass "
        "AND attnum > 0 AND NOT attisdropped UNION ALL SELECT conname, pg_get_constraintdef(oid), '', '' "
        "FROM pg_constraint WHERE conrelid = 'rollup_spans'::regclass"))}


def _plan(conn: Connection, site: int, sql: str) -> str:
    conn.execute(text("SET enable_seqscan = off"))
    plan = "\n".join(conn.execute(text(f"EXPLAIN {sql}"), {"site": site}).scalars())
    conn.rollback()
    return plan


def test_spans_merge_into_one_row_and_split_back(postgres: Postgres, redis_server: Redis, tmp_path: Path) -> None:
    """At 0025 with both kinds stored: the upgrade leaves one row per key with the visitors of its 'u' row and the
    visits (and their bounces, duration, pageviews) of its 'v' row, 0 for a kind it lacks; the three indexes
    under their names, the pairs' index read for one first part, the foreign key to ``sites`` checked, 0020's
    storage parameters, the rows deleted with their site. The downgrade gives back the 0025 rows exactly, and
    upgrading again converges."""
    with schema_at(postgres, redis_server, tmp_path, "beacon_mig0026", "0025") as (_, conn, config):
        site = int(conn.execute(text("INSERT INTO sites (domain) VALUES ('r.example') RETURNING id")).scalar_one())
        conn.execute(text(
            "INSERT INTO rollup_spans (site_id, kind, dimension, value, first_day, last_day, n, bounces, duration, "
            "pageviews) VALUES (:site, :kind, :dim, :value, CAST(:first AS date), CAST(:last AS date), :n, :b, :d, "
            ":p)"),
            [{"site": site, "kind": k, "dim": dim, "value": v, "first": f, "last": la, "n": n, "b": b, "d": d, "p": p}
             for k, dim, v, f, la, n, b, d, p in TWO_ROWS])
        conn.commit()
        before = (_indexes(conn), _columns(conn))
        for _ in range(2):
            command.upgrade(config, "0026")
            conn.commit()
            assert _rows(conn, "dimension, value, first_day, last_day, visitors, visits, bounces, duration, "
                               "pageviews") == ONE_ROW
            indexes = _indexes(conn)
            assert sorted(indexes) == ["rollup_spans_first", "rollup_spans_pkey", "rollup_spans_value"]
            assert "(site_id, dimension, last_day, first_day, value) INCLUDE (visitors, visits, bounces, " \
                   "duration, pageviews)" in indexes["rollup_spans_pkey"]
            assert "INCLUDE (first_day, visitors, visits, bounces, duration, pageviews, value)" \
                   in indexes["rollup_spans_first"]
            assert "using rollup_spans_first" in _plan(conn, site, (
                "SELECT visitors, visits FROM rollup_spans WHERE site_id = :site "
                "AND dimension = 'event:page+custom|visit:entry_page' AND strpos(dimension, '|') > 0 "
                "AND right(dimension, 4) <> '#any' AND substr(value, strpos(value, ':') + 1, "
                "nullif(split_part(value, ':', 1), '')::int) = '/b' AND last_day >= '2026-11-01'"))
            assert conn.execute(text("SELECT convalidated FROM pg_constraint "
                                     "WHERE conname = 'rollup_spans_site_id_fkey'")).scalar_one() is True
            options = conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'rollup_spans'")).scalar()
            assert "autovacuum_vacuum_insert_threshold=10000" in options
            conn.rollback()
            command.downgrade(config, "0025")
            conn.commit()
            assert _rows(conn, "dimension, value, first_day, last_day, kind, n, bounces, duration, pageviews") == \
                sorted((dim, v, f, la, k, n, b, float(d), p) for k, dim, v, f, la, n, b, d, p in TWO_ROWS)
            assert (_indexes(conn), _columns(conn)) == before
        command.upgrade(config, "0026")
        conn.execute(text("DELETE FROM sites WHERE id = :site"), {"site": site})
        assert conn.execute(text("SELECT count(*) FROM rollup_spans")).scalar_one() == 0
        conn.rollback()
