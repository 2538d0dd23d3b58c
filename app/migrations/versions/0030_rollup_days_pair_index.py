"""The rollups' day counts of pairs indexed by their first part and day: one value's day counts of a pair.

A filter on one value grouped by a page (``visit:source is Google`` or ``visit:country is DE`` by page, with
pageviews) reads the pair's stored day counts whose first part is that value, on the range's days.
``rollup_days_value`` is ordered by the whole value and then the day, so it read the value's day counts of every
day stored: 192,334 rows for a month of Google's pages at 10 M events, to keep 16,038 (41 ms); ``rollup_days_pkey``
would read every source's pages of the month (85,620). This index reads the 16,038 alone (docs/benchmarks.md,
run 30), as ``rollup_spans_first`` (0023) does for the spans.

Only pairs' rows are indexed, under the condition ``rollups.PAIR_ROWS``, which the queries state too. The index
holds the value and the counts, so that a read needs no heap: about 60 bytes per event at 10 M events. Built
concurrently: roll-ups and queries go on meanwhile.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from app.migrate import build_index_concurrently

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIRST_PART = "substr(value, strpos(value, ':') + 1, nullif(split_part(value, ':', 1), '')::int)"
"""The first part of a pair's value, as ``rollups._part(value, 1)`` writes it (the index matches it as text)."""
PAIR_ROWS = "strpos(dimension, '|') > 0 AND right(dimension, 4) <> '#any'"
"""The pairs' rows, but their totals by country (``...#any``), whose value is the first part alone."""


def upgrade() -> None:
    build_index_concurrently(
        "rollup_days_first", "rollup_days",
        f"(site_id, dimension, ({FIRST_PART}), day) INCLUDE (value, pageviews, events) WHERE {PAIR_ROWS}")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS rollup_days_first")
