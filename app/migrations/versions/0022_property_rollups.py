"""Custom properties rolled up: a property filter's top stats and graph read rollups.

``services.analytics.rollups`` gains the dimension ``event:props``: the spans and day counts of every
(key, value) an event holds (``rollups.PROPS``). A filter ``event:props:<key> is <value>`` by time or by nothing
reads that value's rows; before, it read the GIN index of the properties (0019) and then every matching event
and its visit: about 400 ms warm over 12 months of 10 M events, 4-17 s from a cold cache, and once past the
30 s statement timeout (docs/benchmarks.md).

The stored values become ``text`` (``varchar(2000)`` before): a page pair with the entry page holds two paths of up
to 1,000 characters each and their length, 2,005 characters, and one such visit failed its day's roll-up, and so
every refresh of the site after it. The byte limit of an index row (2,704) still holds every stored value: paths
are cut to 1,000 bytes, property values longer than 2,000 bytes with their key are not rolled up.

Rollups built before lack the new dimension, so they are dropped, as 0017, 0018 and 0021 did: the rollup job
builds them again from the first event (``beacon analytics refresh`` does it at once); until then the queries are
answered from the visits table and the events, exactly, more slowly.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from app.migrate import execute_with_short_locks

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


EMPTY = "TRUNCATE rollup_spans, rollup_days, rollup_stale, rollup_state"


def upgrade() -> None:
    # TRUNCATE, not DELETE, with short locks: see 0018. Empty, the tables' new type rebuilds nothing.
    execute_with_short_locks(EMPTY)
    for table in ("rollup_spans", "rollup_days"):
        execute_with_short_locks(f"ALTER TABLE {table} ALTER COLUMN value TYPE text")


def downgrade() -> None:
    # Values over 2,000 characters would not fit the old type: the rollups are built again, as after upgrade().
    execute_with_short_locks(EMPTY)
    for table in ("rollup_spans", "rollup_days"):
        execute_with_short_locks(f"ALTER TABLE {table} ALTER COLUMN value TYPE varchar(2000)")
