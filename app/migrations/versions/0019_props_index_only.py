"""The events with properties carry their properties in their partial index, so a property filter reads the
index alone.

``events_site_props`` (0017) found the events with properties of a range, but every one of them was then read
from the table for its ``props``: 400,000 events scattered over a year's heap pages at 10 M events, 3.4 s for
the aggregate under ``event:props:plan is pro`` from a cold cache (460 ms warm). With ``props`` included the
scan is index-only (31 ms for the year's events, warm; the statement 460 -> 250 ms), for 14 MB more index
(30 -> 44 MB at 10 M events): only events with properties are in it.

Built beside the old index without blocking ingest (``build_index_concurrently``), which it then replaces
(``replace_index``: a lock of at most 1 s, retried).

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from app.migrate import build_index_concurrently, replace_index

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = "(site_id, timestamp) INCLUDE (name, pathname, session_id, visitor_id{}) WHERE props <> '{{}}'::jsonb"


def upgrade() -> None:
    build_index_concurrently("events_site_props_new", "events", KEY.format(", props"))
    replace_index("events_site_props", "events_site_props_new")


def downgrade() -> None:
    # Another name than the upgrade's: its partitions' indexes keep the names they were built with.
    build_index_concurrently("events_site_props_plain", "events", KEY.format(""))
    replace_index("events_site_props", "events_site_props_plain")
