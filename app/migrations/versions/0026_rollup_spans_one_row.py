"""One ``rollup_spans`` row per (site, dimension, value, first day, last day): visitors and visits side by side.

Until 0025 a visitor span (kind ``'u'``: the number of (visitor, value) pairs with those first and last days) and
a visit span (kind ``'v'``: the visits with those days, their bounces, duration and pageviews) were two rows,
and they almost always share their key: on the 10 M-event benchmark site 2,755,873 ``'u'`` and 2,755,871 ``'v'``
rows of the entry page pairs. The table held more rows than the site had events, and every query that reads
visitors and visits read both. Now one row carries ``visitors`` and ``visits`` (and the visits' ``bounces``,
``duration``, ``pageviews``); a value with visitor spans only has ``visits`` 0. The table, its primary key and
its two other indexes are written anew, packed (docs/benchmarks.md, run 22: sizes before and after).

How it runs, so that dashboards keep answering:

1. ``rollup_spans`` is locked in EXCLUSIVE mode: queries go on reading it, a roll-up waits (the previous
   release's then fails on the new columns and rolls back whole; the next run rolls its days up).
2. The new table is filled from the old, grouped by its key, and indexed (no statement timeout: minutes at
   10 M events, see docs/operations.md).
3. The old table is dropped and the new one renamed in its place under a 1 s lock timeout, retried: a query
   waits at most that long for the swap.
4. After the commit the new table's foreign key to ``sites`` is checked and the table vacuumed, so that
   index-only scans read no table pages.

The downgrade splits every row back into its ``'u'`` and ``'v'`` rows the same way.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

from app.migrate import execute_after_commit, execute_in_transaction_with_short_locks

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIRST_PART = "substr(value, strpos(value, ':') + 1, nullif(split_part(value, ':', 1), '')::int)"
"""0023's expression: the first part of a pair's value, as ``rollups._part(value, 1)`` writes it."""
PAIR_ROWS = "strpos(dimension, '|') > 0 AND right(dimension, 4) <> '#any'"
"""0023's condition: the pairs' rows, but their totals by country."""
AUTOVACUUM = ("autovacuum_vacuum_insert_threshold = 10000, autovacuum_vacuum_insert_scale_factor = 0, "
              "autovacuum_vacuum_threshold = 10000, autovacuum_vacuum_scale_factor = 0, "
              "autovacuum_analyze_scale_factor = 0.02")
"""0020's storage parameters."""
KEY = "site_id bigint NOT NULL, dimension varchar(64) NOT NULL, value text NOT NULL, first_day date NOT NULL, " \
      "last_day date NOT NULL"
FOREIGN_KEY = "rollup_spans_site_id_fkey"
VISITS = "bounces bigint NOT NULL DEFAULT 0, duration numeric NOT NULL DEFAULT 0, pageviews bigint NOT NULL DEFAULT 0"

ONE_ROW = f"{KEY}, visitors bigint NOT NULL DEFAULT 0, visits bigint NOT NULL DEFAULT 0, {VISITS}"
MERGE = ("SELECT site_id, dimension, value, first_day, last_day, coalesce(sum(n) FILTER (WHERE kind = 'u'), 0), "
         "coalesce(sum(n) FILTER (WHERE kind = 'v'), 0), coalesce(sum(bounces) FILTER (WHERE kind = 'v'), 0), "
         "coalesce(sum(duration) FILTER (WHERE kind = 'v'), 0), coalesce(sum(pageviews) FILTER (WHERE kind = 'v'), 0) "
         "FROM rollup_spans GROUP BY site_id, dimension, value, first_day, last_day")
ONE_ROW_COUNTS = "visitors, visits, bounces, duration, pageviews"
"""What the indexes include."""

TWO_ROWS = (f"{KEY}, kind char(1) NOT NULL CONSTRAINT rollup_spans_kind_check CHECK (kind IN ('u', 'v')), "
            f"n bigint NOT NULL, {VISITS}")
SPLIT = ("SELECT site_id, dimension, value, first_day, last_day, 'u', visitors, 0, 0, 0 FROM rollup_spans "
         "WHERE visitors > 0 UNION ALL "
         "SELECT site_id, dimension, value, first_day, last_day, 'v', visits, bounces, duration, pageviews "
         "FROM rollup_spans WHERE visits > 0")
TWO_ROWS_COUNTS = "n, bounces, duration, pageviews"


def _rebuild(columns: str, fill: str, key: str, counts: str) -> None:
    """``rollup_spans`` written anew as ``columns`` from ``fill`` (a SELECT of the old table in the new column
    order), its primary key ``(site_id, dimension, last_day, first_day, <key>)`` including ``counts``, its value
    index and its first-part index (including the first day, ``key`` but the value, ``counts`` and the value),
    then swapped in.

    The new table gets its foreign key to ``sites`` at the swap, unchecked (validated after the commit): a foreign
    key takes a lock on ``sites`` that blocks its writes (a site added or edited) until the transaction ends, so
    taken with the new table it would hold them for the whole fill. Dropping the old table takes ``sites`` in
    ACCESS EXCLUSIVE mode, a moment before the commit, under the swap's short lock timeout."""
    op.execute("SET LOCAL statement_timeout = 0")
    op.execute("SET LOCAL work_mem = '256MB'")
    execute_in_transaction_with_short_locks("LOCK TABLE rollup_spans IN EXCLUSIVE MODE",
                                            f"CREATE TABLE rollup_spans_next ({columns}) WITH ({AUTOVACUUM})")
    op.execute(f"INSERT INTO rollup_spans_next {fill}")
    op.execute(f"ALTER TABLE rollup_spans_next ADD CONSTRAINT rollup_spans_next_pkey "
               f"PRIMARY KEY (site_id, dimension, last_day, first_day, {key}) INCLUDE ({counts})")
    op.execute('CREATE INDEX rollup_spans_next_value ON rollup_spans_next (site_id, dimension, (value COLLATE "C"))')
    first_include = ", ".join(["first_day", *key.split(", ")[:-1], counts, "value"])
    op.execute(f"CREATE INDEX rollup_spans_next_first ON rollup_spans_next (site_id, dimension, ({FIRST_PART}), "
               f"last_day) INCLUDE ({first_include}) WHERE {PAIR_ROWS}")
    execute_in_transaction_with_short_locks(
        "LOCK TABLE rollup_spans IN ACCESS EXCLUSIVE MODE",
        "DROP TABLE rollup_spans",
        "ALTER TABLE rollup_spans_next RENAME TO rollup_spans",
        "ALTER TABLE rollup_spans RENAME CONSTRAINT rollup_spans_next_pkey TO rollup_spans_pkey",
        "ALTER INDEX rollup_spans_next_value RENAME TO rollup_spans_value",
        "ALTER INDEX rollup_spans_next_first RENAME TO rollup_spans_first",
        f"ALTER TABLE rollup_spans ADD CONSTRAINT {FOREIGN_KEY} FOREIGN KEY (site_id) REFERENCES sites(id) "
        "ON DELETE CASCADE NOT VALID",
    )


def _has_column(name: str) -> bool:
    return bool(op.get_bind().execute(text(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'rollup_spans'::regclass AND attname = :name "
        "AND NOT attisdropped"), {"name": name}).scalar_one())


AFTER = (f"ALTER TABLE rollup_spans VALIDATE CONSTRAINT {FOREIGN_KEY}", "VACUUM (ANALYZE) rollup_spans")
"""After the commit: the foreign key checked, the table vacuumed (see :func:`app.migrate.execute_after_commit`)."""


def upgrade() -> None:
    # Already rebuilt when an earlier run committed it and then failed after: only what follows the commit is left.
    if not _has_column("visitors"):
        _rebuild(ONE_ROW, MERGE, "value", ONE_ROW_COUNTS)
    execute_after_commit(*AFTER)


def downgrade() -> None:
    if not _has_column("kind"):
        _rebuild(TWO_ROWS, SPLIT, "kind, value", TWO_ROWS_COUNTS)
    execute_after_commit(*AFTER)
