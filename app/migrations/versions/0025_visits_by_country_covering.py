"""The visits by country covering what the visits' queries read; the index by source gone.

Migration 0024 indexed the visits by country and by source, key columns only. A report under two visit filters
(``visit:country is DE`` and ``visit:source is Google``) has no rollup and is answered from the visits table,
alone or joined with the events (``services.analytics.planner``). Through 0024's index it found the 468,531 visits
from Germany of 12 months at 10 M events, but then read each from the table: over 30 days the devices of those
from Google went from 104 ms (every visit of the range, index-only, from ``sessions_site_start``) to 140.

``sessions_site_country`` now holds the same columns as ``sessions_site_start`` (migrations 0016, 0017) ordered
by country first, so a country's visits are read alone and from the index; under a country and any other
visit filter they are read this way. The devices of the visits from Germany and Google: 30 days 158-181 ->
44-68 ms, 12 months 1.45 s -> 0.52-0.53 s (docs/benchmarks.md, run 21).

``sessions_site_source`` is dropped. Each index on the visits costs ingest: a visit's row is written again at
each batch that adds to it, with a new entry in every index. The source's largest values (direct traffic,
Google) hold a third of the visits or more, where reading by index saves least.

A database that ran 0024 gets its narrow country index replaced; one coming from 0023 gets 0024's two indexes
and then this. Dropped and built concurrently: ingest and queries go on meanwhile.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

from app.migrate import build_index_concurrently

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COVERED = ("ended_at, session_id, visitor_id, events, pageviews, interactive_events, referrer_source, channel, "
           "device, browser, os, entry_page, exit_page")
"""``sessions_site_start``'s columns (migrations 0016, 0017) but the site, start and country, which the key
holds."""


def upgrade() -> None:
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        bind.execute(text("DROP INDEX CONCURRENTLY IF EXISTS sessions_site_source"))
        # 0024's index has its three key columns and nothing included; a covering one (a build interrupted
        # here and run again) is kept.
        narrow = bind.execute(text("SELECT indnatts = indnkeyatts FROM pg_index "
                                   "WHERE indexrelid = to_regclass('sessions_site_country')")).scalar()
        if narrow:
            bind.execute(text("DROP INDEX CONCURRENTLY sessions_site_country"))
    build_index_concurrently("sessions_site_country", "sessions", f"(site_id, country, started_at) INCLUDE ({COVERED})")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS sessions_site_country")
    build_index_concurrently("sessions_site_country", "sessions", "(site_id, country, started_at)")
    build_index_concurrently("sessions_site_source", "sessions", "(site_id, referrer_source, started_at)")
