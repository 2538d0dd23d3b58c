"""Analytics rollups: yesterday rolled up as soon as its visits have ended (``rollup_state.provisional_day``).

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


def downgrade() -> None:
    op.execute("DELETE FROM rollup_spans s USING rollup_state r WHERE s.site_id = r.site_id "
               "AND s.first_day = r.provisional_day")
    op.execute("DELETE FROM rollup_days d USING rollup_state r WHERE d.site_id = r.site_id AND d.day = r.provisional_day")
    op.execute("ALTER TABLE rollup_state DROP COLUMN provisional_day")
