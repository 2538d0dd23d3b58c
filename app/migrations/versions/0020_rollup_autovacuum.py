"""Autovacuum for the rollup tables after every day's roll-up, not after every 70 days' worth.

A rollup query reads ``rollup_spans`` and ``rollup_days`` with index-only scans, which skip the table only for
pages the visibility map marks all-visible, and only VACUUM marks them. With PostgreSQL's defaults autovacuum
comes after inserts of 20 % of a table: a 10 M-event site's rollups hold 24 M span rows and a day's roll-up
adds about 65,000, so the newest days (the ones 7- and 30-day dashboards read) stayed unmarked for weeks. The
entry pages of one page over 30 days fetched 124,293 rows from the table and took 294 ms, 130 ms after a VACUUM
(docs/benchmarks.md). Each table now has autovacuum come after 10,000 inserted or changed rows, whatever its
size, and ANALYZE after 2 % (the statistics of the newest days). A VACUUM of a table vacuumed before reads only
the pages changed since. Storage parameters: a lock that neither reads nor writes wait for.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("rollup_spans", "rollup_days")
SETTINGS = {
    "autovacuum_vacuum_insert_threshold": "10000",
    "autovacuum_vacuum_insert_scale_factor": "0",
    "autovacuum_vacuum_threshold": "10000",
    "autovacuum_vacuum_scale_factor": "0",
    "autovacuum_analyze_scale_factor": "0.02",
}


def upgrade() -> None:
    settings = ", ".join(f"{name} = {value}" for name, value in SETTINGS.items())
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET ({settings})")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET ({', '.join(SETTINGS)})")
