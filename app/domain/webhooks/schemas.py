"""Bodies of the Webhooks API. The integrations service validates the same shapes again (it owns the data);
these give the api's edge validation and the OpenAPI document."""

from __future__ import annotations

from typing import Literal

import msgspec

from app.core.integration_contracts import Webhook


class WebhookCreated(Webhook):
    """The endpoint just created, with its ``whsec_`` signing secret (shown this once)."""


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
