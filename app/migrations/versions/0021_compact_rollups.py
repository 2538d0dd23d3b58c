"""Smaller rollups: one index of the spans where two held the same rows, and no day counts for the pairs
whose queries never ask for them; the country pairs' totals.

At 10 M events the rollups took 17 of the database's 23 GB, and the cluster no longer fitted this kind of host's
memory: the first run of a dashboard query read from disk what the previous queries had pushed out of the page
cache (docs/benchmarks.md).

- ``rollup_spans``: the primary key becomes ``(site_id, dimension, last_day, first_day, kind, value)`` with the
  counts included, the order and the columns of the index 0005 added for reading a period's spans
  (``rollup_spans_last_day``, dropped here). The key's rows are the same, only ordered by the last day first, so
  it answers the same period scans with index-only reads, and the roll-up's delete of a day's spans finds them
  by it too (:func:`services.analytics.rollups._roll`). The old key was read by nothing but that delete.
- ``rollup_days`` no longer holds the pageviews and events per day of the page pairs
  (``event:page+custom|...``), of the entry page pairs (``...|visit:entry_page``) and of the name pairs
  (``event:name|...``): a page, source, country or goal filter grouped by another dimension, whose dashboard
  reports show visitors, visits and rates (``services.analytics.rollups.DAYS_LEFT_OUT``). Such a query asking
  for pageviews or events is answered from the visits table and the events, exactly, more slowly.
- The pairs grouped by country gain a total per value of their first part (``rollups.PAIR_TOTALS``): the
  visitors of one source, page or custom event that have a country, the divisor of the countries report's
  percentage under such a filter, which was read from every visit or event of the range (3 s over 12 months
  of 10 M events).

Rollups built before are dropped, as 0017 and 0018 did: the rollup job builds them again from the first event
(``beacon analytics refresh`` does it at once); until then the queries are answered from the visits table and
the events, exactly, more slowly.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from app.migrate import execute_with_short_locks

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMPTY = "TRUNCATE rollup_spans, rollup_days, rollup_stale, rollup_state"


def upgrade() -> None:
    # TRUNCATE, not DELETE, with short locks: see 0018. The tables are then empty: the new key is built at once.
    execute_with_short_locks(EMPTY)
    execute_with_short_locks(
        "ALTER TABLE rollup_spans DROP CONSTRAINT rollup_spans_pkey, ADD CONSTRAINT rollup_spans_pkey "
        "PRIMARY KEY (site_id, dimension, last_day, first_day, kind, value) "
        "INCLUDE (n, bounces, duration, pageviews)")
    execute_with_short_locks("DROP INDEX IF EXISTS rollup_spans_last_day")


def downgrade() -> None:
    execute_with_short_locks(EMPTY)
    execute_with_short_locks(
        "ALTER TABLE rollup_spans DROP CONSTRAINT rollup_spans_pkey, ADD CONSTRAINT rollup_spans_pkey "
        "PRIMARY KEY (site_id, dimension, kind, first_day, last_day, value)")
    execute_with_short_locks("CREATE INDEX rollup_spans_last_day ON rollup_spans (site_id, dimension, last_day) "
                             "INCLUDE (first_day, kind, value, n, bounces, duration, pageviews)")
