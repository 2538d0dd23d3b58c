"""Pages rolled up with the visit dimensions: a page filter over a year and a visit filter grouped by page read
spans, not the events joined with their visits.

``services.analytics.rollups`` gains the dimension ``event:page+custom`` (the page of every event: what a page
filter keeps) with its visits' spans, its pairs with source, country and entry page (a page filter grouped by
one of them), and pairs of source and country with pages (``visit:country|event:page``: one country grouped by
page). A pair's value begins with the filtered part, so the filter finds its rows through a new
index on the values (``COLLATE "C"``: a prefix is a range of the index whatever the database's collation).

The visits' index by start (``sessions_site_start``) carries the columns the visits table's queries and the
events' join with their visits read (the visit's end, ids, totals and the attributes with few values: source,
channel, country, device, browser, operating system), so a month of visits comes from an index-only scan, not
from a heap page per visit (docs/benchmarks.md: a 30-day query filtered by country and source 212 -> 41 ms).
Its included columns change with every event of a visit, so those updates are no longer HOT: the ingest cost is
measured there too.

Rollups built before lack those rows, so they are dropped: the rollup job builds them again from the first
event (``beacon analytics refresh`` does it at once); until then the queries are answered from the visits table
and the events, exactly, more slowly.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

from app.migrate import build_index_concurrently

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute('CREATE INDEX rollup_spans_value ON rollup_spans (site_id, dimension, (value COLLATE "C"))')
    # With the day and the counts, the day counts of one value come from an index-only scan.
    op.execute('CREATE INDEX rollup_days_value ON rollup_days (site_id, dimension, (value COLLATE "C"), day) '
               "INCLUDE (pageviews, events)")
    # The new index is built beside the old one without blocking ingest, then takes its name: the visits stay
    # readable and writable throughout (a DROP INDEX locks the table for reads too).
    build_index_concurrently("sessions_site_start_covering", "sessions", "(site_id, started_at) INCLUDE (ended_at, "
                             "session_id, visitor_id, events, pageviews, interactive_events, referrer_source, "
                             "channel, country, device, browser, os)")
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS sessions_site_start")
        op.execute("ALTER INDEX sessions_site_start_covering RENAME TO sessions_site_start")
    for table in ("rollup_spans", "rollup_days", "rollup_stale", "rollup_state"):
        op.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names


def downgrade() -> None:
    for table in ("rollup_spans", "rollup_days"):
        op.execute(f"DELETE FROM {table} WHERE dimension LIKE 'event:page+custom%' "  # noqa: S608 - fixed names
                   "OR dimension LIKE '%|event:page'")
    op.execute("DROP INDEX sessions_site_start")
    op.execute("CREATE INDEX sessions_site_start ON sessions (site_id, started_at)")
    op.execute("DROP INDEX rollup_days_value")
    op.execute("DROP INDEX rollup_spans_value")
