"""Tables shared by the api, the services and the workers. Schema changes go through Alembic migrations."""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    PrimaryKeyConstraint,
    Sequence,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    """Stored lower-cased."""
    password_hash: Mapped[str] = mapped_column(Text)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Carried by every browser session of the user; incremented to end them all (password change, sign-out
    everywhere)."""


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    """Lower-cased host name without scheme or ``www.``, as the tracker sends it."""
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    share_token_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True, default=None)
    """SHA-256 of the public share link's token; ``None`` when the site is not shared."""
    __table_args__ = (Index("sites_search", "search", postgresql_using="gin"),)
    search: Mapped[Any] = mapped_column(
        TSVECTOR, Computed("to_tsvector('simple', domain || ' ' || replace(domain, '.', ' '))", persisted=True),
        deferred=True)


ROLES = ("owner", "admin", "viewer")
"""Site roles, strongest first."""


class Membership(Base):
    """A user's role on a site."""

    __tablename__ = "memberships"
    __table_args__ = (PrimaryKeyConstraint("site_id", "user_id"),
                      CheckConstraint("role IN ('owner', 'admin', 'viewer')", name="memberships_role"),
                      Index("memberships_user", "user_id"))

    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Invitation(Base):
    """An invitation by link to join a site with a role; the link carries a token stored hashed."""

    __tablename__ = "invitations"
    __table_args__ = (CheckConstraint("role IN ('admin', 'viewer')", name="invitations_role"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    invited_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


API_SCOPES = ("stats:read", "sites:write")


class ApiKey(Base):
    """A user's API key; only its SHA-256 is stored, the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    """The first characters of the key, shown in lists so a user can tell keys apart."""
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class Goal(Base):
    """A conversion goal: a custom event name or a page path pattern (``*`` matches any characters)."""

    __tablename__ = "goals"
    __table_args__ = (
        CheckConstraint("(event_name IS NULL) <> (page_path IS NULL)", name="goals_one_kind"),
        UniqueConstraint("site_id", "event_name", name="goals_site_event"),
        UniqueConstraint("site_id", "page_path", name="goals_site_page"),
        Index("goals_search", "search", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    event_name: Mapped[str | None] = mapped_column(String(120), default=None)
    page_path: Mapped[str | None] = mapped_column(String(2000), default=None)
    display_name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    search: Mapped[Any] = mapped_column(TSVECTOR, Computed(
        "to_tsvector('simple', display_name || ' ' || coalesce(event_name, '') || ' ' || "
        "coalesce(regexp_replace(page_path, '[/*_-]+', ' ', 'g'), ''))", persisted=True), deferred=True)


class Annotation(Base):
    """A dated note on a site's timeline (\"launched v2\")."""

    __tablename__ = "annotations"
    __table_args__ = (Index("annotations_site_date", "site_id", "date"),
                      Index("annotations_search", "search", postgresql_using="gin"))

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"))
    date: Mapped[dt.date] = mapped_column(Date)
    body: Mapped[str] = mapped_column(String(2000))
    created_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    search: Mapped[Any] = mapped_column(TSVECTOR, Computed("to_tsvector('english', body)", persisted=True),
                                        deferred=True)


class Salt(Base):
    """Daily random salts for visitor ids; rotated daily, deleted after 48 hours."""

    __tablename__ = "salts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Event(Base):
    """One pageview or custom event; partitioned by month of ``timestamp`` (migration 0002)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("events_site_time", "site_id", "timestamp"),
        Index("events_site_session", "site_id", "session_id"),
        # Event filters (migration 0015): a page's events, custom events by name; the columns those queries read.
        Index("events_site_page", "site_id", "pathname", "timestamp",
              postgresql_include=["name", "session_id", "visitor_id"]),
        Index("events_site_custom", "site_id", "name", "timestamp",
              postgresql_include=["pathname", "session_id", "visitor_id"],
              postgresql_where=text("name <> 'pageview'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Sequence("events_id_seq"), primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    visitor_id: Mapped[int] = mapped_column(BigInteger)
    session_id: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """The visit this event belongs to (see ``sessions``); 0 only for rows from before migration 0002."""
    hostname: Mapped[str] = mapped_column(String(253))
    pathname: Mapped[str] = mapped_column(String(2000))
    referrer: Mapped[str] = mapped_column(String(2000), default="", server_default="")
    referrer_source: Mapped[str] = mapped_column(String(120), server_default="")
    """Name of the referring site from the referrer list (``Google``, ``Facebook``), else its host."""
    channel: Mapped[str] = mapped_column(String(32), server_default="")
    """``search``, ``social``, ``email``, ``paid``, ``referral`` or ``direct``."""
    utm_source: Mapped[str] = mapped_column(String(300), server_default="")
    utm_medium: Mapped[str] = mapped_column(String(300), server_default="")
    utm_campaign: Mapped[str] = mapped_column(String(300), server_default="")
    utm_term: Mapped[str] = mapped_column(String(300), server_default="")
    utm_content: Mapped[str] = mapped_column(String(300), server_default="")
    browser: Mapped[str] = mapped_column(String(80), server_default="")
    browser_version: Mapped[str] = mapped_column(String(40), server_default="")
    os: Mapped[str] = mapped_column(String(80), server_default="")
    os_version: Mapped[str] = mapped_column(String(40), server_default="")
    device: Mapped[str] = mapped_column(String(16), server_default="")
    """``desktop``, ``mobile``, ``tablet`` or ``other``."""
    country: Mapped[str] = mapped_column(String(2), server_default="")
    """ISO 3166-1 alpha-2, empty when unknown."""
    interactive: Mapped[bool] = mapped_column(Boolean, server_default="true")
    revenue_amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    revenue_currency: Mapped[str | None] = mapped_column(CHAR(3))
    props: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")


class Engagement(Base):
    """One ``engagement`` event of Plausible's tracker (migration 0013): how deep and how long a page was read.

    Never counted as an event or pageview; read only by ``scroll_depth`` and ``time_on_page``.
    """

    __tablename__ = "engagements"
    __table_args__ = (Index("engagements_site_time", "site_id", "timestamp"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"))
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    visitor_id: Mapped[int] = mapped_column(BigInteger)
    session_id: Mapped[int] = mapped_column(BigInteger)
    hostname: Mapped[str] = mapped_column(String(253))
    pathname: Mapped[str] = mapped_column(String(2000))
    scroll_depth: Mapped[int | None] = mapped_column(SmallInteger)
    """Deepest scroll on the page, percent 0-100; NULL when the tracker could not tell."""
    engagement_time: Mapped[int] = mapped_column(Integer, server_default="0")
    """Milliseconds the page was visible and focused since the previous engagement event."""
    props: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")


class Visit(Base):
    """One visit, Plausible's definition: folded from its events by PostgreSQL (trigger of migration 0010) in
    the transaction that stores them; analytics reads visit attributes and session metrics from here."""

    __tablename__ = "sessions"
    __table_args__ = (Index("sessions_site_start", "site_id", "started_at"),
                      Index("sessions_site_country", "site_id", "country", "started_at"))

    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    session_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    visitor_id: Mapped[int] = mapped_column(BigInteger)
    """The first event's visitor id."""
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """Time of the visit's first event (in ``(timestamp, id)`` order, ``first_id`` being its id)."""
    first_id: Mapped[int] = mapped_column(BigInteger)
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """Time of the visit's last event; duration = ended_at - started_at."""
    entry_page: Mapped[str] = mapped_column(String(2000))
    """Pathname of the visit's first pageview; empty when it has none."""
    entry_hostname: Mapped[str] = mapped_column(String(253))
    entry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    entry_id: Mapped[int | None] = mapped_column(BigInteger)
    exit_page: Mapped[str] = mapped_column(String(2000))
    """Pathname of the visit's last pageview; empty when it has none."""
    exit_hostname: Mapped[str] = mapped_column(String(253))
    exit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    exit_id: Mapped[int | None] = mapped_column(BigInteger)
    pageviews: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)
    interactive_events: Mapped[int] = mapped_column(Integer)
    """Interactive custom events (``interactive`` not false). Bounce = ``pageviews <= 1 and interactive_events = 0``."""
    referrer: Mapped[str] = mapped_column(String(2000))
    referrer_source: Mapped[str] = mapped_column(String(120))
    channel: Mapped[str] = mapped_column(String(32))
    utm_source: Mapped[str] = mapped_column(String(300))
    utm_medium: Mapped[str] = mapped_column(String(300))
    utm_campaign: Mapped[str] = mapped_column(String(300))
    utm_content: Mapped[str] = mapped_column(String(300))
    utm_term: Mapped[str] = mapped_column(String(300))
    device: Mapped[str] = mapped_column(String(16))
    browser: Mapped[str] = mapped_column(String(80))
    browser_version: Mapped[str] = mapped_column(String(40))
    os: Mapped[str] = mapped_column(String(80))
    os_version: Mapped[str] = mapped_column(String(40))
    country: Mapped[str] = mapped_column(String(2))


class SiteExclusion(Base):
    """Traffic a site owner does not want counted: an IP range (``ip``, CIDR) or a path glob (``path``)."""

    __tablename__ = "site_exclusions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    pattern: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
