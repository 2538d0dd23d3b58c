"""Accounts: memberships, invitations, API keys, share links, goals, annotations and full-text search.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SITE_SEARCH = "to_tsvector('simple', domain || ' ' || replace(domain, '.', ' '))"
GOAL_SEARCH = ("to_tsvector('simple', display_name || ' ' || coalesce(event_name, '') || ' ' || "
               "coalesce(regexp_replace(page_path, '[/*_-]+', ' ', 'g'), ''))")
ANNOTATION_SEARCH = "to_tsvector('english', body)"


def upgrade() -> None:
    op.add_column("sites", sa.Column("share_token_hash", sa.LargeBinary(32), nullable=True, unique=True))
    op.add_column("sites", sa.Column("search", postgresql.TSVECTOR(), sa.Computed(SITE_SEARCH, persisted=True)))
    op.create_index("sites_search", "sites", ["search"], postgresql_using="gin")

    op.create_table(
        "memberships",
        sa.Column("site_id", sa.BigInteger(), sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("site_id", "user_id"),
        sa.CheckConstraint("role IN ('owner', 'admin', 'viewer')", name="memberships_role"),
    )
    op.create_index("memberships_user", "memberships", ["user_id"])
    # Sites created before memberships existed belong to every admin, so nobody loses access.
    op.execute("INSERT INTO memberships (site_id, user_id, role) "
               "SELECT s.id, u.id, 'owner' FROM sites s CROSS JOIN users u WHERE u.is_admin")

    op.create_table(
        "invitations",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("site_id", sa.BigInteger(), sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("invited_by", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('admin', 'viewer')", name="invitations_role"),
    )
    op.create_index("ix_invitations_site_id", "invitations", ["site_id"])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("scopes", postgresql.ARRAY(sa.String(32)), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])

    op.create_table(
        "goals",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("site_id", sa.BigInteger(), sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_name", sa.String(120), nullable=True),
        sa.Column("page_path", sa.String(2000), nullable=True),
        sa.Column("display_name", sa.String(120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("search", postgresql.TSVECTOR(), sa.Computed(GOAL_SEARCH, persisted=True)),
        sa.CheckConstraint("(event_name IS NULL) <> (page_path IS NULL)", name="goals_one_kind"),
        sa.UniqueConstraint("site_id", "event_name", name="goals_site_event"),
        sa.UniqueConstraint("site_id", "page_path", name="goals_site_page"),
    )
    op.create_index("ix_goals_site_id", "goals", ["site_id"])
    op.create_index("goals_search", "goals", ["search"], postgresql_using="gin")

    op.create_table(
        "annotations",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("site_id", sa.BigInteger(), sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("body", sa.String(2000), nullable=False),
        sa.Column("created_by", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("search", postgresql.TSVECTOR(), sa.Computed(ANNOTATION_SEARCH, persisted=True)),
    )
    op.create_index("annotations_site_date", "annotations", ["site_id", "date"])
    op.create_index("annotations_search", "annotations", ["search"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_table("annotations")
    op.drop_table("goals")
    op.drop_table("api_keys")
    op.drop_table("invitations")
    op.drop_table("memberships")
    op.drop_index("sites_search", table_name="sites")
    op.drop_column("sites", "search")
    op.drop_column("sites", "share_token_hash")
