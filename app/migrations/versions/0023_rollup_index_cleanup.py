"""Every VACUUM of the rollup tables cleans their indexes, so that the newest days' pages end all-visible.

A roll-up replacing days (yesterday's provisional rows by its final ones, the days around late events) deletes
their rows. When the deleted rows sit on under 2 % of a table's pages, VACUUM by default skips the indexes and
leaves the dead rows' line pointers, and a page with those cannot be marked all-visible: the newest days' pages,
which the dashboard's recent ranges read with index-only scans, stayed unmarked until enough deletions added up.
At 10 M events, after one re-rolled day, 1,721 pages of ``rollup_spans`` stayed unmarked and the month's entry
pages under a page filter fetched 13,979 rows from the table (269 ms; 233 ms after a VACUUM cleaning the
indexes, whose index pass took 11 s unthrottled; docs/benchmarks.md, run 17). ``vacuum_index_cleanup = on``
makes autovacuum (after 10,000 changed rows, 0020) and every VACUUM do the index pass. Storage parameter: a lock
that neither reads nor writes wait for.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("rollup_spans", "rollup_days")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (vacuum_index_cleanup = on)")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (vacuum_index_cleanup)")
