"""The visits indexed by country, covering what the visits' queries read: the visits of a country filter from
the index alone, without reading the others.

A report under two visit filters (``visit:country is DE`` and ``visit:source is Google``) has no rollup and is
answered from the visits table, alone or joined with the events (``services.analytics.planner``). Its visits
were found by reading every visit of the range from ``sessions_site_start`` and testing each: 4.4 million over
12 months at 10 M events, about 1 s. This index holds the same columns as ``sessions_site_start`` (migration
0017), ordered by country first, so the 468,531 visits from Germany of those 12 months are read alone and from
the index; the devices of those from Google 1,040 -> 315 ms, over 30 days 104 -> 44 ms (docs/benchmarks.md,
run 21). Under a country and any other visit filter the country's visits are read this way.

Only country: each index on the visits costs ingest, as a visit's row is written again at each batch that adds
to it, with a new entry in every index. This index and the same by source together took PostgreSQL's part of
an ingest request from 63-64 to 69-76 us; the source's largest values (direct traffic, Google) also hold a
third of the visits or more, where reading the index saves least.

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

COVERED = ("ended_at, session_id, visitor_id, events, pageviews, interactive_events, referrer_source, channel, "
           "device, browser, os, entry_page, exit_page")
"""``sessions_site_start``'s columns (migrations 0016, 0017) but the site, start and country, which the key
holds."""


def upgrade() -> None:
    build_index_concurrently("sessions_site_country", "sessions", f"(site_id, country, started_at) INCLUDE ({COVERED})")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS sessions_site_country")
