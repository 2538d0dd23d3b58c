"""Custom event names rolled up with source, country, entry page, device and browser: a custom-event goal's
panels read rollups.

``services.analytics.rollups`` gains the pairs ``event:name|visit:source``, ``|visit:country``,
``|visit:entry_page``, ``|visit:device`` and ``|visit:browser`` (custom events only: a pageview's name is not
paired). A filter on one custom-event goal is read as its event's name, so the goal-filtered sources, countries,
devices, browsers and entry pages panels come from the pairs; they read every event of the goal joined with its
visit before: 0.6-0.8 s over 12 months of 10 M events, 3.2 s from a cold cache (docs/benchmarks.md).

Page paths are stored cut to 1,000 bytes of UTF-8 from now on (``services.ingest.logic.MAX_PATH_BYTES``): 0015's
page index has the path as a key, 0017's visits index includes the entry and exit page, and a page pair's rollup
value holds two paths, and PostgreSQL refuses an index row over 2,704 bytes: one event with a 2,000-character
path that does not compress failed its whole ingest batch (or its visit's next event, or the day's roll-up).
Paths stored before are cut the same way here (``app.migrate.cut_long_paths``; 0017 does it too, before it
builds its index), before the rollups are rebuilt from them.

Rollups built before lack the new pairs, so they are dropped, as 0017 did: the rollup job builds them again from
the first event (``beacon analytics refresh`` does it at once); until then the queries are answered from the
visits table and the events, exactly, more slowly.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

from app.migrate import cut_long_paths, execute_with_short_locks

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    cut_long_paths()
    # TRUNCATE, not DELETE: see 0017. Its lock waits for a roll-up that is running (statements of minutes at
    # 10 M events), and the events trigger reads rollup_state: ingest would queue behind it; ask for a second.
    execute_with_short_locks("TRUNCATE rollup_spans, rollup_days, rollup_stale, rollup_state")


def downgrade() -> None:
    for table in ("rollup_spans", "rollup_days"):
        op.execute(f"DELETE FROM {table} WHERE dimension LIKE 'event:name|%'")  # noqa: S608 - fixed names
