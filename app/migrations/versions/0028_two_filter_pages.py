"""Pages rolled up with a source and a country together: the pages panel under the two filters reads rollups.

``services.analytics.rollups`` gains ``visit:source|visit:country|event:page`` (``rollups.PAGES_TWO_PAIRED``): the
spans and day counts of each (source and country, page), the pair of values as the first part. The pages of a
source and a country read the year's pageviews of the visits with both values joined with their visit before:
over 12 months of 10 M events 1.0 s warm, 6.7 s from a cold cache (docs/benchmarks.md, run 25), after it 145 ms
and 169 ms. The database grows from about 1,800 to 2,060 bytes per event (runs 26 and 27: the rows of direct visits
in the pages of a source, which nothing reads, are left out now).

Rollups built before lack the new rows, so they are dropped, as 0017, 0018, 0021, 0022 and 0027 did: the rollup job
builds them again from the first event (``beacon analytics refresh`` does it at once); until then the queries are
answered from the visits table and the events, exactly, more slowly.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from app.migrate import execute_with_short_locks

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # TRUNCATE, not DELETE, with short locks: see 0018.
    execute_with_short_locks("TRUNCATE rollup_spans, rollup_days, rollup_stale, rollup_state")


def downgrade() -> None:
    for table in ("rollup_spans", "rollup_days"):
        op.execute(f"DELETE FROM {table} WHERE dimension = 'visit:source|visit:country|event:page'")  # noqa: S608
