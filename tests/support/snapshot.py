"""A copy of a test database's rows, taken once and put back for every test that needs the same data.

Generating and rolling up the analytics tests' forty days of traffic takes 16 s; two dozen tests start from
it and the ``db`` fixture empties every table after each. :func:`take` copies every table's rows (``COPY ...
(FORMAT binary)``) and the sequences' positions; :func:`restore` writes them back into the emptied tables, as a
superuser with triggers and foreign-key checks off (``session_replication_role = replica``): the rows are the
ones the triggers and checks already saw, and the events trigger would otherwise note every restored event's
day as late (``rollup_stale``).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

KEPT = frozenset({"alembic_version", "beacon_init"})
"""The tables the ``db`` fixture keeps (the schema's own): never copied."""


@dataclass(frozen=True)
class Snapshot:
    tables: tuple[tuple[str, tuple[str, ...], bytes], ...]
    """(table, columns, COPY binary data) of every table with rows; a partitioned table as a whole."""
    sequences: tuple[tuple[str, int], ...]
    """(sequence, last value) of every sequence that was used."""


def take(url: str) -> Snapshot:
    """Every non-empty table's rows and every used sequence's position of the database at ``url``."""
    tables: list[tuple[str, tuple[str, ...], bytes]] = []
    with psycopg.connect(url) as conn:
        names = [row[0] for row in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1")]
        for name in names:
            if name in KEPT:
                continue
            probe = conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.Identifier(name))).fetchone()
            if probe is None or not probe[0]:
                continue
            columns = tuple(row[0] for row in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum", (name,)))
            data = bytearray()
            query = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT binary)").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(name))
            with conn.cursor().copy(query) as copy:
                for chunk in copy:
                    data += chunk
            tables.append((name, columns, bytes(data)))
        sequences = tuple((str(row[0]), int(row[1])) for row in conn.execute(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' "
            "AND last_value IS NOT NULL ORDER BY 1"))
    return Snapshot(tuple(tables), sequences)


def restore(url: str, snapshot: Snapshot) -> None:
    """Write ``snapshot``'s rows back into the (emptied) tables of the database at ``url``, a superuser's."""
    with psycopg.connect(url) as conn:
        conn.execute("SET session_replication_role = replica")
        for name, columns, data in snapshot.tables:
            query = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
                sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, columns)))
            with conn.cursor().copy(query) as copy:
                copy.write(data)
        for sequence, value in snapshot.sequences:
            conn.execute("SELECT setval(%s, %s)", (sequence, value))
        for name, _, _ in snapshot.tables:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
