"""Custom properties rolled up with source, country, entry page, device and browser: a property filter's panels
read rollups.

``services.analytics.rollups`` gains the pairs ``event:props|visit:source``, ``|visit:country``,
``|visit:entry_page``, ``|visit:device`` and ``|visit:browser`` (``rollups.PROPS_PAIRS``), and the countries'
total ``event:props|visit:country#any``. A filter ``event:props:<key> is <value>`` grouped by one of them read every
event with the value joined with its visit before: the entry pages of a value over 30 days of 10 M events took
275 ms warm and 884 ms from a cold cache, over 12 months 5.0 s (docs/benchmarks.md, run 23).

Pages over 750 bytes are no longer paired with the entry page (``rollups.PAIR_FIRST_BYTES``): such a pair's row
could exceed an index row's 2,704 bytes and fail its day's roll-up, and every refresh after it.

Rollups built before lack the new pairs, so they are dropped, as 0017, 0018 and 0022 did: the rollup job builds
them again from the first event (``beacon analytics refresh`` does it at once); until then the queries are
answered from the visits table and the events, exactly, more slowly.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from app.migrate import execute_with_short_locks

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # TRUNCATE, not DELETE, with short locks: see 0018.
    execute_with_short_locks("TRUNCATE rollup_spans, rollup_days, rollup_stale, rollup_state")


def downgrade() -> None:
    for table in ("rollup_spans", "rollup_days"):
        op.execute(f"DELETE FROM {table} WHERE dimension LIKE 'event:props|%'")  # noqa: S608 - fixed names
