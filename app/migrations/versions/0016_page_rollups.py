"""Pages rolled up with the visit dimensions: a page filter over a year and a visit filter grouped by page read
spans, not the events joined with their visits.

``services.analytics.rollups`` gains the dimension ``event:page+custom`` (the page of every event: what a page
filter keeps) with its visits' spans, its pairs with source, country, device, browser and entry page (a page
filter grouped by one of them), and the pairs the other way round (``visit:country|event:page``: one country
grouped by page). A pair's value begins with the filtered part, so the filter finds its rows through a new
index on the values (``COLLATE "C"``: a prefix is a range of the index whatever the database's collation).

Rollups built before lack those rows, so they are dropped: the rollup job builds them again from the first
event (``beacon analytics refresh`` does it at once); until then the queries are answered from the visits table
and the events, exactly, more slowly.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute('CREATE INDEX rollup_spans_value ON rollup_spans (site_id, dimension, (value COLLATE "C"))')
    op.execute('CREATE INDEX rollup_days_value ON rollup_days (site_id, dimension, (value COLLATE "C"))')
    for table in ("rollup_spans", "rollup_days", "rollup_stale", "rollup_state"):
        op.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names


def downgrade() -> None:
    for table in ("rollup_spans", "rollup_days"):
        op.execute(f"DELETE FROM {table} WHERE dimension LIKE 'event:page+custom%' "  # noqa: S608 - fixed names
                   "OR dimension LIKE '%|event:page'")
    op.execute("DROP INDEX rollup_days_value")
    op.execute("DROP INDEX rollup_spans_value")
