"""Entry pages, devices and browsers rolled up with a source and a country together.

``services.analytics.rollups`` gains ``visit:source|visit:country|<dimension>`` for the entry page, the device and
the browser (``rollups.TWO_VISIT_PAIRS``): the visitor and visit spans of each (source and country, value), the
pair of values as the first part, without day counts. The dashboard's entry pages, devices and browsers panels
under its two usual filters read the visits with both values from the visits by country before: over 12 months of
10 M events the entry pages took 285-400 ms warm and 1.8-2.7 s from a cold cache (docs/benchmarks.md, runs 26-28).

Rollups built before lack the new rows, so they are dropped, as 0017, 0018, 0021, 0022, 0027 and 0028 did: the
rollup job builds them again from the first event (``beacon analytics refresh`` does it at once); until then the
queries are answered from the visits table and the events, exactly, more slowly.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from app.migrate import execute_with_short_locks

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIMENSIONS = ("visit:source|visit:country|visit:entry_page", "visit:source|visit:country|visit:device",
              "visit:source|visit:country|visit:browser")


def upgrade() -> None:
    # TRUNCATE, not DELETE, with short locks: see 0018.
    execute_with_short_locks("TRUNCATE rollup_spans, rollup_days, rollup_stale, rollup_state")


def downgrade() -> None:
    op.execute("DELETE FROM rollup_spans WHERE dimension IN "  # noqa: S608 - fixed names
               f"({', '.join(repr(d) for d in DIMENSIONS)})")
