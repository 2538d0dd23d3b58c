"""A GIN index of the events' property values: a custom property filter reads only the events that match it.

``event:props:plan is pro`` read every event with properties in the range (0017's partial index finds them,
then each one's ``props`` is read from its heap page) and kept the ones whose ``plan`` is ``pro``: at 10 M
events over 12 months, 180,000 heap pages for 38,898 matches, and the first run from a cold cache took 3.7 s
(docs/benchmarks.md). The analytics engine now asks ``props @> '{"plan": "pro"}'`` instead of comparing the
value's text, the same rows as ingest stores every property value as a JSON string, and this index answers it: ``jsonb_path_ops`` keeps a
hash of each key and value, so a value of any length makes an entry of a few bytes (a btree holding the values
would refuse an index row over 2,704 bytes, and three 1,500-character values are allowed). Partial, like 0017's:
only the events with properties are in it, and only they cost ingest an entry per property (GIN's pending
list takes them, and VACUUM moves them into the index). 1.4 MB at 10 M events.

Built without blocking ingest (``app.migrate.build_index_concurrently``, as 0015-0017).

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

from app.migrate import build_index_concurrently

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    build_index_concurrently("events_props_values", "events", "USING gin (props jsonb_path_ops) "
                             "WHERE props <> '{}'::jsonb")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS events_props_values")
