"""Bodies of the Webhooks API. The integrations service validates the same shapes again (it owns the data);
these give the api's edge validation and the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar.params import PathParameter

ID_MAX = 2**63 - 1
"""Ids are PostgreSQL bigints: one outside [1, ID_MAX] names nothing and must not reach SQL."""
Id = Annotated[int, msgspec.Meta(ge=1, le=ID_MAX)]
PathId = Annotated[int, PathParameter(ge=1, le=ID_MAX)]
"""An id in a path: out of range it is a 400 naming the parameter, as the OpenAPI document declares."""

Format = Literal["generic", "slack", "discord"]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
Description = Annotated[str, msgspec.Meta(max_length=200)]
EventTypes = Annotated[list[Annotated[str, msgspec.Meta(max_length=32)]], msgspec.Meta(min_length=1, max_length=7)]


class WebhookCreate(msgspec.Struct, forbid_unknown_fields=True):
    url: Url
    """Where deliveries are POSTed: https, resolving to public addresses only."""
    event_types: EventTypes
    """The event types delivered to this endpoint (see the README for each one's body)."""
    format: Format = "generic"
    """``generic`` (Standard Webhooks JSON), ``slack`` (incoming webhook) or ``discord`` (webhook)."""
    description: Description = ""


class WebhookUpdate(msgspec.Struct, forbid_unknown_fields=True):
    url: Url | msgspec.UnsetType = msgspec.UNSET
    event_types: EventTypes | msgspec.UnsetType = msgspec.UNSET
    format: Format | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    """``true`` re-enables an endpoint that was disabled (after a 410 or days of failures)."""


class Webhook(msgspec.Struct):
    id: int
    url: str
    description: str
    format: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    secret: str | None = None
    """Only in the answer that created the endpoint."""


class WebhookCreated(Webhook):
    """The endpoint just created, with its ``whsec_`` signing secret (shown this once)."""


class Attempt(msgspec.Struct):
    attempted_at: datetime
    status_code: int | None
    duration_ms: float
    response_body: str
    """The first 2 KB of the receiver's answer."""
    error: str | None


class Delivery(msgspec.Struct):
    id: int
    webhook_id: str
    """The ``webhook-id`` header, the same on every attempt."""
    event_type: str
    status: str
    """``pending``, ``succeeded`` or ``failed``."""
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, object]
    log: list[Attempt]


Email = Annotated[str, msgspec.Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class AlertRuleCreate(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["spike", "drop", "goal", "anomaly"]
    """``spike``: current visitors ≥ threshold; ``drop``: last hour ≤ threshold while the same hour last week
    ≥ baseline; ``goal``: the goal's conversions today ≥ threshold; ``anomaly``: the last complete hour's
    anomaly score (compute service's detector) ≥ threshold."""
    params: dict[str, str | int | float]
    """``{"threshold"}``, ``{"threshold", "baseline"}``, ``{"goal", "threshold"}`` or, for ``anomaly``,
    ``{"threshold": 0.5, "metric": "visitors"}`` (score in (0, 1]; ``visitors`` or ``pageviews``)."""
    recipients: Annotated[list[Email], msgspec.Meta(max_length=20)] = []
    endpoint_ids: Annotated[list[Id], msgspec.Meta(max_length=20)] = []
    cooldown: Annotated[int, msgspec.Meta(ge=60, le=30 * 86400)] = 43200
    """Seconds the rule stays quiet after firing."""


class AlertRuleUpdate(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool
    """``false`` pauses the rule (it is not evaluated); ``true`` resumes it."""


class AlertRule(msgspec.Struct):
    id: int
    kind: str
    params: dict[str, object]
    recipients: list[str]
    endpoint_ids: list[int]
    cooldown: int
    enabled: bool
    last_fired_at: datetime | None
    created_at: datetime


class AlertFiring(msgspec.Struct):
    fired_at: datetime
    value: float
    details: dict[str, object]


# The bodies Beacon sends to generic endpoints, published in the OpenAPI document (GET /api/v1/webhooks/events).
class EventData(msgspec.Struct, kw_only=True):
    """What every event's data has."""

    site: str
    """The site's domain."""
    dashboard_url: str


class WebhookTestData(EventData, kw_only=True):
    webhook_id: int
    message: str


class GoalConversion(msgspec.Struct):
    goal: str
    """The goal's display name."""
    count: int


class GoalCompletedData(EventData, kw_only=True):
    start: str = msgspec.field(name="from")
    """Start of the interval (ISO 8601, inclusive)."""
    end: str = msgspec.field(name="to")
    """End of the interval (exclusive)."""
    conversions: list[GoalConversion]


class TrafficSpikeData(EventData, kw_only=True):
    rule_id: int
    current_visitors: int
    threshold: float


class TrafficDropData(EventData, kw_only=True):
    rule_id: int
    visitors: int
    threshold: float
    baseline_visitors: int
    baseline: float


class GoalThresholdData(EventData, kw_only=True):
    rule_id: int
    goal: str
    count: int
    threshold: float


class TrafficAnomalyData(EventData, kw_only=True):
    """An anomaly rule fired: the compute service's verdict on the last complete hour (docs/compute.md)."""

    rule_id: int
    metric: str
    """``visitors`` or ``pageviews``."""
    hour: str
    """The hour judged, in the site's time zone (``YYYY-MM-DD HH:00:00``)."""
    value: float
    score: float
    """Anomaly score in [0, 1]."""
    threshold: float
    expected: float
    expected_low: float
    expected_high: float
    explanation: str
    """The verdict in words, e.g. "visitors 120 at 14:00 on Fri 20 Feb, expected 2-15 for a Friday afternoon"."""


class Period(msgspec.Struct):
    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")


class ReportMetrics(msgspec.Struct):
    visitors: int
    pageviews: int
    bounce_rate: float | None
    visit_duration: float | None


class ReportChange(msgspec.Struct):
    visitors: float | None
    pageviews: float | None
    bounce_rate: float | None
    visit_duration: float | None


class TopPage(msgspec.Struct):
    page: str
    visitors: int


class TopSource(msgspec.Struct):
    source: str
    visitors: int


class ReportData(EventData, kw_only=True):
    period: Period
    previous_period: Period
    metrics: ReportMetrics
    previous: ReportMetrics
    change: ReportChange
    top_pages: list[TopPage]
    top_sources: list[TopSource]


class WebhookTestEvent(msgspec.Struct):
    type: Literal["webhook.test"]
    timestamp: str
    data: WebhookTestData


class GoalCompletedEvent(msgspec.Struct):
    type: Literal["goal.completed"]
    timestamp: str
    data: GoalCompletedData


class TrafficSpikeEvent(msgspec.Struct):
    type: Literal["traffic.spike"]
    timestamp: str
    data: TrafficSpikeData


class TrafficDropEvent(msgspec.Struct):
    type: Literal["traffic.drop"]
    timestamp: str
    data: TrafficDropData


class GoalThresholdEvent(msgspec.Struct):
    type: Literal["goal.threshold"]
    timestamp: str
    data: GoalThresholdData


class TrafficAnomalyEvent(msgspec.Struct):
    type: Literal["traffic.anomaly"]
    timestamp: str
    data: TrafficAnomalyData


class ReportEvent(msgspec.Struct):
    type: Literal["report.weekly", "report.monthly"]
    timestamp: str
    data: ReportData


class FirstEventEvent(msgspec.Struct):
    type: Literal["site.first_event"]
    timestamp: str
    data: EventData


class WebhookEventExamples(msgspec.Struct):
    """One example body of each event type (generic format)."""

    webhook_test: WebhookTestEvent = msgspec.field(name="webhook.test")
    goal_completed: GoalCompletedEvent = msgspec.field(name="goal.completed")
    traffic_spike: TrafficSpikeEvent = msgspec.field(name="traffic.spike")
    traffic_drop: TrafficDropEvent = msgspec.field(name="traffic.drop")
    goal_threshold: GoalThresholdEvent = msgspec.field(name="goal.threshold")
    traffic_anomaly: TrafficAnomalyEvent = msgspec.field(name="traffic.anomaly")
    report_weekly: ReportEvent = msgspec.field(name="report.weekly")
    site_first_event: FirstEventEvent = msgspec.field(name="site.first_event")


def event_examples() -> WebhookEventExamples:
    """The README's examples, built from the schemas so that both stay in step."""
    when, site, link = "2026-11-23T09:00:12Z", "example.com", "https://beacon.example.com/sites/example.com"
    common = {"site": site, "dashboard_url": link}
    metrics = ReportMetrics(visitors=4, pageviews=7, bounce_rate=50.0, visit_duration=105)
    return WebhookEventExamples(
        webhook_test=WebhookTestEvent("webhook.test", when, WebhookTestData(
            **common, webhook_id=7, message="Beacon webhook test")),
        goal_completed=GoalCompletedEvent("goal.completed", when, GoalCompletedData(
            **common, start="2026-11-23T08:59:10+00:00", end="2026-11-23T09:00:10+00:00",
            conversions=[GoalConversion("Signup", 3), GoalConversion("Visit /pricing", 1)])),
        traffic_spike=TrafficSpikeEvent("traffic.spike", when, TrafficSpikeData(
            **common, rule_id=3, current_visitors=412, threshold=300)),
        traffic_drop=TrafficDropEvent("traffic.drop", when, TrafficDropData(
            **common, rule_id=4, visitors=2, threshold=10, baseline_visitors=180, baseline=100)),
        goal_threshold=GoalThresholdEvent("goal.threshold", when, GoalThresholdData(
            **common, rule_id=5, goal="Signup", count=50, threshold=50)),
        traffic_anomaly=TrafficAnomalyEvent("traffic.anomaly", when, TrafficAnomalyData(
            **common, rule_id=6, metric="visitors", hour="2026-11-23 08:00:00", value=120, score=0.93, threshold=0.5,
            expected=8, expected_low=2, expected_high=15,
            explanation="visitors 120 at 08:00 on Mon 23 Nov, expected 2-15 for a Monday morning")),
        report_weekly=ReportEvent("report.weekly", when, ReportData(
            **common, period=Period("2026-11-16", "2026-11-22"), previous_period=Period("2026-11-09", "2026-11-15"),
            metrics=metrics, previous=ReportMetrics(visitors=2, pageviews=2, bounce_rate=100.0, visit_duration=15),
            change=ReportChange(visitors=100.0, pageviews=250.0, bounce_rate=-50.0, visit_duration=600.0),
            top_pages=[TopPage("/", 3), TopPage("/pricing", 2)],
            top_sources=[TopSource("Google", 2), TopSource("Direct / None", 1)])),
        site_first_event=FirstEventEvent("site.first_event", when, EventData(**common)),
    )
