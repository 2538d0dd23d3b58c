"""Tables owned by the integrations service: webhook endpoints, the delivery outbox and its attempts, alert
rules and their history, report subscriptions and the mail outbox (migration 0009); imports and the imported
daily aggregates (migration 0011).

Nothing but the integrations service and the workers running its logic writes these tables.
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

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


# Imports (migration 0011) ---------------------------------------------------------------------------------

IMPORT_SOURCES = ("plausible", "umami", "ga4")
"""Where an import comes from: a Plausible CE CSV export zip, an Umami data export, the GA4 Data API."""

IMPORT_STATUSES = ("pending", "importing", "completed", "failed")
"""Plausible's ``SiteImport`` statuses; only ``completed`` imports are read by queries."""


class SiteImport(Base):
    """One import of a site's history: its source, date range, status, progress and resumable cursor.

    The cursor (``{"file": <entry name>, "offset": <bytes>, "line": <n>, ...}``) says how much of the upload is
    stored; it is written in the transaction of the rows it covers, so a job killed at any point resumes from
    it without doubling a row. Deleting the import deletes its rows in every ``imported_*`` table.
    """

    __tablename__ = "site_imports"
    __table_args__ = (
        CheckConstraint("source IN ('plausible', 'umami', 'ga4')", name="site_imports_source"),
        CheckConstraint("status IN ('pending', 'importing', 'completed', 'failed')", name="site_imports_status"),
        Index("site_imports_checksum", "site_id", "checksum", unique=True,
              postgresql_where=text("status <> 'failed'")),
        Index("site_imports_due", "leased_until", postgresql_where=text("status IN ('pending', 'importing')")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200), server_default="")
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    start_date: Mapped[dt.date | None] = mapped_column(Date)
    """First day with imported rows (known once the import has completed)."""
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    imported_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    upload_path: Mapped[str | None] = mapped_column(String(1000))
    """The uploaded file under the imports directory; removed when the import ends."""
    upload_name: Mapped[str] = mapped_column(String(300), server_default="")
    upload_size: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Bytes of the upload (of a zip: the sum of its entries' uncompressed sizes); the base of ``percent``."""
    checksum: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 of the upload: the same file cannot be imported twice into a site (unless that import failed)."""
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    """Source-specific arguments (GA4: property and credentials reference)."""
    cursor: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    rows_done: Mapped[int] = mapped_column(BigInteger, server_default="0")
    days_done: Mapped[int] = mapped_column(Integer, server_default="0")
    bytes_done: Mapped[int] = mapped_column(BigInteger, server_default="0")
    percent: Mapped[float] = mapped_column(Float, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    error_location: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """``{"file", "line", "column"}`` of the refusal, when it names one."""
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    lease_token: Mapped[str | None] = mapped_column(String(32))
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """A job holds the import until then and renews it with every batch; an expired lease is taken over."""
    has_scroll_depth: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SiteImportEvent(Base):
    """A raw event of an export without daily aggregates (Umami's ``website_event`` rows), staged until the
    import folds them into the ``imported_*`` tables; removed when the import ends."""

    __tablename__ = "site_import_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    import_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("site_imports.id", ondelete="CASCADE"),
                                           index=True)
    session_id: Mapped[str] = mapped_column(Text)
    visit_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_type: Mapped[int] = mapped_column(SmallInteger)
    """Umami's: 1 a pageview, 2 a custom event."""
    event_name: Mapped[str] = mapped_column(Text, server_default="")
    hostname: Mapped[str] = mapped_column(Text, server_default="")
    url_path: Mapped[str] = mapped_column(Text, server_default="")
    referrer_domain: Mapped[str] = mapped_column(Text, server_default="")
    utm_source: Mapped[str] = mapped_column(Text, server_default="")
    utm_medium: Mapped[str] = mapped_column(Text, server_default="")
    utm_campaign: Mapped[str] = mapped_column(Text, server_default="")
    utm_content: Mapped[str] = mapped_column(Text, server_default="")
    utm_term: Mapped[str] = mapped_column(Text, server_default="")
    browser: Mapped[str] = mapped_column(Text, server_default="")
    os: Mapped[str] = mapped_column(Text, server_default="")
    device: Mapped[str] = mapped_column(Text, server_default="")
    country: Mapped[str] = mapped_column(Text, server_default="")
    region: Mapped[str] = mapped_column(Text, server_default="")
    city: Mapped[str] = mapped_column(Text, server_default="")


def _count() -> Mapped[int]:
    return mapped_column(BigInteger, server_default="0")


def _name() -> Mapped[str]:
    return mapped_column(Text, server_default="")


class _ImportedDaily:
    """What every ``imported_*`` row has: its site, its import and its (site-local) day."""

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    site_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sites.id", ondelete="CASCADE"))
    import_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("site_imports.id", ondelete="CASCADE"))
    date: Mapped[dt.date] = mapped_column(Date)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Index, ...]:
        name = cls.__tablename__  # type: ignore[attr-defined]
        return (Index(f"{name}_site_date", "site_id", "date"), Index(f"{name}_import", "import_id"))


class ImportedVisitors(_ImportedDaily, Base):
    """Totals per day."""

    __tablename__ = "imported_visitors"
    visitors: Mapped[int] = _count()
    pageviews: Mapped[int] = _count()
    bounces: Mapped[int] = _count()
    visits: Mapped[int] = _count()
    visit_duration: Mapped[int] = _count()
    """Sum of the visits' durations in seconds (as every ``visit_duration`` here)."""


class ImportedSources(_ImportedDaily, Base):
    """Per source, referrer and UTM tags."""

    __tablename__ = "imported_sources"
    source: Mapped[str] = _name()
    referrer: Mapped[str] = _name()
    utm_source: Mapped[str] = _name()
    utm_medium: Mapped[str] = _name()
    utm_campaign: Mapped[str] = _name()
    utm_content: Mapped[str] = _name()
    utm_term: Mapped[str] = _name()
    channel: Mapped[str] = _name()
    pageviews: Mapped[int] = _count()
    visitors: Mapped[int] = _count()
    visits: Mapped[int] = _count()
    visit_duration: Mapped[int] = _count()
    bounces: Mapped[int] = _count()


class ImportedPages(_ImportedDaily, Base):
    """Per page (pathname) and host name."""

    __tablename__ = "imported_pages"
    hostname: Mapped[str] = _name()
    page: Mapped[str] = _name()
    visits: Mapped[int] = _count()
    visitors: Mapped[int] = _count()
    pageviews: Mapped[int] = _count()
    exits: Mapped[int] = _count()
    total_scroll_depth: Mapped[int] = _count()
    total_scroll_depth_visits: Mapped[int] = _count()
    total_time_on_page: Mapped[int] = _count()
    """Seconds."""
    total_time_on_page_visits: Mapped[int] = _count()


class ImportedEntryPages(_ImportedDaily, Base):
    """Per entry page."""

    __tablename__ = "imported_entry_pages"
    entry_page: Mapped[str] = _name()
    visitors: Mapped[int] = _count()
    entrances: Mapped[int] = _count()
    visit_duration: Mapped[int] = _count()
    bounces: Mapped[int] = _count()
    pageviews: Mapped[int] = _count()


class ImportedExitPages(_ImportedDaily, Base):
    """Per exit page."""

    __tablename__ = "imported_exit_pages"
    exit_page: Mapped[str] = _name()
    visitors: Mapped[int] = _count()
    visit_duration: Mapped[int] = _count()
    exits: Mapped[int] = _count()
    bounces: Mapped[int] = _count()
    pageviews: Mapped[int] = _count()


class ImportedCustomEvents(_ImportedDaily, Base):
    """Per custom event name (with the link URL or path of Plausible's special goals)."""

    __tablename__ = "imported_custom_events"
    name: Mapped[str] = _name()
    link_url: Mapped[str] = _name()
    path: Mapped[str] = _name()
    visitors: Mapped[int] = _count()
    events: Mapped[int] = _count()


class ImportedLocations(_ImportedDaily, Base):
    """Per country (ISO 3166-1 alpha-2), region (ISO 3166-2) and city (GeoNames id, 0 unknown)."""

    __tablename__ = "imported_locations"
    country: Mapped[str] = _name()
    region: Mapped[str] = _name()
    city: Mapped[int] = _count()
    visitors: Mapped[int] = _count()
    visits: Mapped[int] = _count()
    visit_duration: Mapped[int] = _count()
    bounces: Mapped[int] = _count()
    pageviews: Mapped[int] = _count()


class ImportedDevices(_ImportedDaily, Base):
    """Per device (screen size class: Desktop, Laptop, Tablet, Mobile)."""

    __tablename__ = "imported_devices"
    device: Mapped[str] = _name()
    visitors: Mapped[int] = _count()
    visits: Mapped[int] = _count()
    visit_duration: Mapped[int] = _count()
    bounces: Mapped[int] = _count()
    pageviews: Mapped[int] = _count()


class ImportedBrowsers(_ImportedDaily, Base):
    """Per browser and version."""

    __tablename__ = "imported_browsers"
    browser: Mapped[str] = _name()
    browser_version: Mapped[str] = _name()
    visitors: Mapped[int] = _count()
    visits: Mapped[int] = _count()
    visit_duration: Mapped[int] = _count()
    bounces: Mapped[int] = _count()
    pageviews: Mapped[int] = _count()


class ImportedOperatingSystems(_ImportedDaily, Base):
    """Per operating system and version."""

    __tablename__ = "imported_operating_systems"
    operating_system: Mapped[str] = _name()
    operating_system_version: Mapped[str] = _name()
    visitors: Mapped[int] = _count()
    visits: Mapped[int] = _count()
    visit_duration: Mapped[int] = _count()
    bounces: Mapped[int] = _count()
    pageviews: Mapped[int] = _count()


IMPORTED_TABLES: dict[str, type[_ImportedDaily]] = {
    model.__tablename__: model for model in (
        ImportedVisitors, ImportedSources, ImportedPages, ImportedEntryPages, ImportedExitPages,
        ImportedCustomEvents, ImportedLocations, ImportedDevices, ImportedBrowsers, ImportedOperatingSystems)
}
"""Plausible's ``imported_*`` tables by name, in the order Plausible lists them."""
