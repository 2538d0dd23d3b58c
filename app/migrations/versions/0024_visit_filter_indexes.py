"""The visits indexed by country and by source: the visits a filter on either keeps, without reading the others.

A report under two visit filters (``visit:country is DE`` and ``visit:source is Google``) has no rollup and is
answered from the visits table, alone or joined with the events (``services.analytics.planner``). Its visits
were found by reading every visit of the range and testing each: 4.4 million rows over 12 months at 10 M
events, about 1 s on three processes. These indexes give the 468,531 visits from Germany of those 12 months
(the 130,860 of them from Google are then tested on the table), 0.34 s; the pages of those visits 1.8 -> 0.9 s,
their devices 1.0 -> 0.57 s (docs/benchmarks.md, run 21). Country and source are the dashboard's two visit
reports people filter by most (its top two visit panels); each index costs about 40 bytes per visit.

Built concurrently: ingest and queries go on meanwhile.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

from app.migrate import build_index_concurrently

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    build_index_concurrently("sessions_site_country", "sessions", "(site_id, country, started_at)")
    build_index_concurrently("sessions_site_source", "sessions", "(site_id, referrer_source, started_at)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS sessions_site_source")
    op.execute("DROP INDEX IF EXISTS sessions_site_country")
