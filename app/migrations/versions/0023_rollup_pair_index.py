"""The rollups' pairs indexed by their first part and last day: one value's spans of a pair over a range.

A filter on one value grouped by another dimension (``event:page is /`` by entry page, ``visit:country is DE``
by page, a goal's name by source) reads a pair's stored spans whose first part is that value and that end in
the range. ``rollup_spans_pkey`` is ordered by dimension and last day, so it read every value's spans ending in
the range: 181,135 rows for the month at 10 M events, to keep the page's 22,898 (140 ms on three processes).
``rollup_spans_value`` is ordered by value, so it would read the value's spans of the whole year (260,226), and
holds no counts. This index reads the 22,898 from the index alone: 4-9 ms (docs/benchmarks.md, run 19).

Only pairs' rows are indexed (their value is ``<length of the first part>:<first><second>``, see
``services.analytics.rollups.PAIRS``); the index's condition is ``rollups.PAIR_ROWS``, which the queries state
too, so that the planner may use it whatever the dimension's bind parameter. Built concurrently: roll-ups and
queries go on meanwhile.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

from app.migrate import build_index_concurrently

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIRST_PART = "substr(value, strpos(value, ':') + 1, nullif(split_part(value, ':', 1), '')::int)"
"""The first part of a pair's value, as ``rollups._part(value, 1)`` writes it (the index matches it as text)."""
PAIR_ROWS = "strpos(dimension, '|') > 0 AND right(dimension, 4) <> '#any'"
"""The pairs' rows, but their totals by country (``...#any``), whose value is the first part alone."""


def upgrade() -> None:
    build_index_concurrently(
        "rollup_spans_first", "rollup_spans",
        f"(site_id, dimension, ({FIRST_PART}), last_day) INCLUDE (first_day, kind, n, bounces, duration, pageviews, "
        f"value) WHERE {PAIR_ROWS}")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS rollup_spans_first")
