"""Analytics rollups: visitor and visit spans and daily event counts per site, dimension and value.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # kind 'u': (visitor, value) pairs, 'v': visits; a span is the first and last local day it had events.
    op.execute("""
        CREATE TABLE rollup_spans (
            site_id bigint NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
            kind char(1) NOT NULL CHECK (kind IN ('u', 'v')),
            dimension varchar(64) NOT NULL,
            value varchar(2000) NOT NULL,
            first_day date NOT NULL,
            last_day date NOT NULL,
            n bigint NOT NULL,
            bounces bigint NOT NULL DEFAULT 0,
            duration numeric NOT NULL DEFAULT 0,
            pageviews bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (site_id, dimension, kind, first_day, last_day, value)
        )
    """)
    op.execute("""
        CREATE TABLE rollup_days (
            site_id bigint NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
            dimension varchar(64) NOT NULL,
            value varchar(2000) NOT NULL,
            day date NOT NULL,
            pageviews bigint NOT NULL,
            events bigint NOT NULL,
            PRIMARY KEY (site_id, dimension, day, value)
        )
    """)
    op.execute("""
        CREATE TABLE rollup_state (
            site_id bigint PRIMARY KEY REFERENCES sites(id) ON DELETE CASCADE,
            timezone varchar(64) NOT NULL,
            rolled_until date NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE rollup_state")
    op.execute("DROP TABLE rollup_days")
    op.execute("DROP TABLE rollup_spans")
