"""Analytics rollups: yesterday rolled up as soon as its visits have ended (``rollup_state.provisional_day``);
spans found by their last day.

A period's spans are those with ``last_day >= first day of the period`` (and ``first_day <= its last day``):
the primary key, ordered by kind before the days, cannot bound that scan, so 30 days of a busy site read
every span of the year.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE rollup_state ADD COLUMN provisional_day date")
    op.execute("CREATE INDEX rollup_spans_last_day ON rollup_spans (site_id, dimension, last_day) "
               "INCLUDE (first_day, kind, value, n, bounces, duration, pageviews)")


def downgrade() -> None:
    op.execute("DROP INDEX rollup_spans_last_day")
    op.execute("DELETE FROM rollup_spans s USING rollup_state r WHERE s.site_id = r.site_id "
               "AND s.first_day = r.provisional_day")
    op.execute("DELETE FROM rollup_days d USING rollup_state r WHERE d.site_id = r.site_id AND d.day = r.provisional_day")
    op.execute("ALTER TABLE rollup_state DROP COLUMN provisional_day")
