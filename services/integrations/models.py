"""Tables owned by the integrations service: webhook endpoints, the delivery outbox and its attempts, alert
rules and their history, report subscriptions and the mail outbox (migration 0009).

Nothing but the integrations service and the workers running its logic writes these tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base

EVENT_TYPES = ("goal.completed", "traffic.spike", "traffic.drop", "report.weekly", "report.monthly",
               "site.first_event", "webhook.test")
"""Event types an endpoint can subscribe to (``webhook.test`` is always delivered when asked for)."""

FORMATS = ("generic", "slack", "discord")
"""Body formats: Standard Webhooks JSON, a Slack incoming webhook, a Discord webhook."""

RULE_KINDS = ("spike", "drop", "goal", "anomaly")
"""Alert rule kinds; ``anomaly`` is the compute service's adaptive threshold, evaluated hourly."""


class WebhookEndpoint(Base):
    """A URL of a site's that receives signed deliveries of the event types it subscribes to."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (CheckConstraint("format IN ('generic', 'slack', 'discord')", name="webhook_endpoints_format"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), server_default="")
    format: Mapped[str] = mapped_column(String(16), server_default="generic")
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    secret: Mapped[str] = mapped_column(String(64))
    """``whsec_`` and the base64 key the Standard Webhooks signature is made with."""
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Time of the first failed attempt since the last success; ``None`` while deliveries succeed."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookDelivery(Base):
    """One message to one endpoint (the outbox row): written in the transaction of its cause."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="webhook_deliveries_status"),
        Index("webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index("webhook_deliveries_endpoint", "endpoint_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(40), unique=True)
    """The ``webhook-id`` header: the same on every attempt, so receivers can drop duplicates."""
    endpoint_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """``{type, timestamp, data}``: the generic body; Slack and Discord bodies are rendered from it."""
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    lease_token: Mapped[str | None] = mapped_column(String(32))
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookAttempt(Base):
    """One HTTP request of a delivery: the receiver's status, how long it took, the start of its answer."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
                                             index=True)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[float] = mapped_column(Float)
    response_body: Mapped[str] = mapped_column(Text, server_default="")
    error: Mapped[str | None] = mapped_column(String(200))


class WebhookSiteCursor(Base):
    """How far a site's goal conversions have been turned into ``goal.completed`` messages."""

    __tablename__ = "webhook_site_cursors"

    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    goals_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """Conversions before this instant have been sent (or fell before the first subscription)."""
    first_event_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AlertRule(Base):
    """A site's alert: a kind, its parameters, who is told, and how often at most."""

    __tablename__ = "alert_rules"
    __table_args__ = (CheckConstraint("kind IN ('spike', 'drop', 'goal', 'anomaly')", name="alert_rules_kind"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    """``spike``: ``{threshold}``; ``drop``: ``{threshold, baseline}``; ``goal``: ``{goal, threshold}``;
    ``anomaly``: ``{threshold, metric}`` (the detector's score in (0, 1]; visitors or pageviews)."""
    recipients: Mapped[list[str]] = mapped_column(ARRAY(String(254)), server_default="{}")
    endpoint_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default="{}")
    cooldown: Mapped[int] = mapped_column(Integer, server_default="43200")
    """Seconds after firing during which the rule stays quiet."""
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    last_fired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AlertFiring(Base):
    """The history of a rule: each time it fired, with the value that made it fire."""

    __tablename__ = "alert_firings"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    rule_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("alert_rules.id", ondelete="CASCADE"), index=True)
    fired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    value: Mapped[float] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")


class ReportSubscription(Base):
    """A member's choice of weekly and monthly email reports for a site."""

    __tablename__ = "report_subscriptions"
    __table_args__ = (PrimaryKeyConstraint("site_id", "user_id"),)

    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    weekly: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    monthly: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class Email(Base):
    """The mail outbox: a rendered message, sent by a worker, kept with its outcome."""

    __tablename__ = "emails"
    __table_args__ = (CheckConstraint("status IN ('pending', 'sent', 'failed')", name="emails_status"),
                      Index("emails_due", "next_attempt_at", postgresql_where=text("status = 'pending'")))

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, str]] = mapped_column(JSONB, server_default="{}")
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    """Makes a periodic email (``report.weekly:<site>:<user>:<week>``) idempotent."""
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    lease_token: Mapped[str | None] = mapped_column(String(32))
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
