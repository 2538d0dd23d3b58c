"""Event filters answered from indexes (the events of one page, the custom events by name); visit dimensions
rolled up in pairs.

A Stats API query filtered by ``event:page`` or ``event:goal`` (or grouped by goal) keeps a few of the range's
events and joins them with their visits; without an index on the page or the name PostgreSQL read every event
of the range (a year of a busy site) to find them. Both indexes carry the columns those queries read
(``INCLUDE``), so the matching events come from an index-only scan:

- ``events_site_page``: every event by (site, page, time), for ``event:page`` filters (a page filter keeps the
  page's custom events as well as its pageviews);
- ``events_site_custom``: custom events only (``name <> 'pageview'``: 6 bytes per event in the benchmark,
  against 138 for the page index) by (site, name, time), for custom-event goals and ``event:name`` filters.

Chosen over per-(page, dimension) span rollups by measurement (docs/benchmarks.md, "Goal and page filters
from indexes"): the spans of a page x another dimension grow with the product of their values, and these
indexes are maintained by PostgreSQL itself, for every writer, late events and imports included, and dropped
with the site's events.

The rollups gain spans of pairs of visit dimensions with few values (``services.analytics.rollups.PAIRS``:
source, country, device, browser), so that a one-value filter on one of them grouped by another (country DE by
source) is read from the rollups. Rollups built before lack those rows, so they are dropped here: the rollup
job builds them again from the first event (``beacon analytics refresh`` does it at once), and until a site's
days are rolled up again its queries are answered from the visits table and the events, exactly, more slowly.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

from app.migrate import build_index_concurrently, cut_long_paths

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A path is a key of the page index: paths that would not fit it are cut to 1,000 bytes first, as the ingest
    # service cuts them since 0018 (this step was added then, for upgrades from before 0015).
    cut_long_paths()
    # Built without blocking ingest's inserts (the events table of a busy site takes a while).
    build_index_concurrently("events_site_page", "events", "(site_id, pathname, timestamp) "
                             "INCLUDE (name, session_id, visitor_id)")
    build_index_concurrently("events_site_custom", "events", "(site_id, name, timestamp) "
                             "INCLUDE (pathname, session_id, visitor_id) WHERE name <> 'pageview'")
    for table in ("rollup_spans", "rollup_days", "rollup_stale", "rollup_state"):
        op.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names


def downgrade() -> None:
    op.execute("DELETE FROM rollup_spans WHERE dimension LIKE '%|%'")
    op.execute("DELETE FROM rollup_days WHERE dimension LIKE '%|%'")
    op.execute("DROP INDEX events_site_custom")
    op.execute("DROP INDEX events_site_page")
