"""Users' session epoch: a number every browser session of the user carries; moving it on ends them all.

A password change or "sign out everywhere" increments ``users.session_epoch``; a session whose stored epoch
differs is no longer signed in (checked on every request that needs the user, and at the WebSocket
handshake). Sessions stay in Redis; PostgreSQL decides whether they still count.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("users", "session_epoch")
