"""Entry pages rolled up with source and country, pages with device and browser, and the visits' entry and exit
pages in the visits' start index: the 10 M-event benchmark's slowest panels read rollups or one index.

``services.analytics.rollups`` gains the pairs ``visit:source|visit:entry_page`` and
``visit:country|visit:entry_page`` (the entry pages panel under a source or country filter: 0.4-1.7 s from the
visits table at 10 M events) and ``event:page+custom|visit:device`` and ``|visit:browser`` (the devices and
browsers panels under a page filter: 2.4 s over 12 months from the events joined with their visits), and the
rollup of event names gains their visits (one span per visit and name, as pages have), so a filter on one
custom-event goal (read as its event's name) answers visits, bounce rate and visit duration from the rollups.

A partial index of the events with properties (``events_site_props``) answers a custom property filter
(``event:props:plan is pro``: the analytics engine adds the condition ``props <> '{}'`` every match implies),
which read every event of the range before (1.0-1.4 s over 12 months of 10 M events); it costs ingest only
for the events that carry properties.

``sessions_site_start`` also carries the entry and exit page, so the entry pages of a range's visits (the visits
table's answers, and the visits of a rollup query reaching into today) come from an index-only scan, not from a
heap page per visit (36,659 visits of four days: 205 -> 28 ms). The index is built beside the old one and takes
its name, without blocking ingest (as in 0016).

Rollups built before lack the new pairs, so they are dropped: the rollup job builds them again from the first
event (``beacon analytics refresh`` does it at once); until then the queries are answered from the visits table
and the events, exactly, more slowly.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

from app.migrate import build_index_concurrently, cut_long_paths

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COVERED = ("ended_at, session_id, visitor_id, events, pageviews, interactive_events, referrer_source, channel, "
           "country, device, browser, os")


def _replace_start_index(included: str) -> None:
    build_index_concurrently("sessions_site_start_new", "sessions", f"(site_id, started_at) INCLUDE ({included})")
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS sessions_site_start")
        op.execute("ALTER INDEX sessions_site_start_new RENAME TO sessions_site_start")


def upgrade() -> None:
    # Two long paths in one index row pass PostgreSQL's 2,704 bytes: paths are cut to 1,000 bytes first (as the
    # ingest service cuts them since 0018; this step was added then, for upgrades from before 0017).
    cut_long_paths()
    _replace_start_index(f"{COVERED}, entry_page, exit_page")
    build_index_concurrently("events_site_props", "events", "(site_id, timestamp) "
                             "INCLUDE (name, pathname, session_id, visitor_id) WHERE props <> '{}'::jsonb")
    # TRUNCATE, not DELETE: at 10 M events the rollups are tens of millions of rows, which a DELETE would leave
    # as dead rows for VACUUM; nothing but the rollup job writes them.
    op.execute("TRUNCATE rollup_spans, rollup_days, rollup_stale, rollup_state")


def downgrade() -> None:
    for table in ("rollup_spans", "rollup_days"):
        op.execute(f"DELETE FROM {table} WHERE dimension LIKE '%|visit:entry_page' "  # noqa: S608 - fixed names
                   "OR dimension IN ('event:page+custom|visit:device', 'event:page+custom|visit:browser')")
    op.execute("DELETE FROM rollup_spans WHERE dimension = 'event:name' AND kind = 'v'")
    _replace_start_index(COVERED)
    op.execute("DROP INDEX IF EXISTS events_site_props")
