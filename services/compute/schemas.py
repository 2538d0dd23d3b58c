"""Requests and answers of the compute service (msgspec; they appear in the OpenAPI document at /schema)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

Metric = Literal["visitors", "visits", "pageviews", "events"]
"""Plausible's metric names; with ``goal`` set, ``visitors`` counts the goal's unique conversions."""


class SeriesSummary(msgspec.Struct):
    days: int
    total: int
    mean: float
    median: float
    stdev: float
    minimum: int
    maximum: int
    last: int
    last_zscore: float | None
    """How unusual the last day is against the days before it (None when that cannot be told)."""


class DetectRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Score every point of a site's series; the site is its domain, as in the Stats API."""

    site_id: str
    date_range: Annotated[list[date], msgspec.Meta(min_length=2, max_length=2)]
    """``[first day, last day]`` in the site's time zone; ``hour`` allows at most 31 days (analytics' limit)."""
    metric: Metric = "visitors"
    interval: Literal["hour", "day"] = "hour"
    goal: str | None = None
    """Count only this goal's conversions (Plausible's ``event:goal`` filter)."""
    threshold: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.5
    """Points scoring at least this are reported (0.5: the detector's tuned level)."""


class AnomalyPoint(msgspec.Struct):
    time: str
    """The bucket as analytics labels it: ``2026-03-10`` or ``2026-03-10 14:00:00`` (site's time zone)."""
    value: float
    score: float
    """Anomaly score in [0, 1]; 0 while the detector is still learning the series."""
    expected: float
    expected_low: float
    expected_high: float
    """Central 95 % range the detector expected for this point."""
    anomaly: bool
    explanation: str | None
    """For anomalies: what was seen against what was expected, in words."""


class DetectResponse(msgspec.Struct):
    site_id: str
    metric: str
    interval: str
    threshold: float
    learning: int
    """Leading points that only taught the detector (scored 0)."""
    points: list[AnomalyPoint]


class ForecastRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Forecast a site's daily series ``horizon`` days past the end of ``date_range``."""

    site_id: str
    date_range: Annotated[list[date], msgspec.Meta(min_length=2, max_length=2)]
    """The history to learn from (at least 28 days; two years are plenty)."""
    metric: Metric = "visitors"
    goal: str | None = None
    horizon: Annotated[int, msgspec.Meta(ge=1, le=366)] = 30


class HistoryPoint(msgspec.Struct):
    date: date
    value: float


class ForecastPoint(msgspec.Struct):
    date: date
    yhat: float
    """Median forecast."""
    yhat_lower: float
    yhat_upper: float
    """80 % prediction interval."""
    yhat_lower_95: float
    yhat_upper_95: float
    """95 % prediction interval."""


class ForecastResponse(msgspec.Struct):
    site_id: str
    metric: str
    method: str
    history: list[HistoryPoint]
    forecast: list[ForecastPoint]


class Segment(msgspec.Struct, forbid_unknown_fields=True):
    """Visitors in a period, optionally only those with ``property`` = ``value`` (a custom property)."""

    date_range: Annotated[list[date], msgspec.Meta(min_length=2, max_length=2)]
    property: str | None = None
    """A custom property's name, e.g. ``variant`` (Plausible's ``event:props:variant``)."""
    value: str | None = None
    label: str | None = None


class CompareRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Compare the goal's conversion rate of segment B with segment A's."""

    site_id: str
    goal: str
    a: Segment
    b: Segment
    confidence: Annotated[float, msgspec.Meta(ge=0.5, lt=1.0)] = 0.95


class SegmentCounts(msgspec.Struct):
    label: str
    visitors: int
    conversions: int
    conversion_rate: float
    """Conversions per visitor, as a fraction."""


class CompareResponse(msgspec.Struct):
    site_id: str
    goal: str
    a: SegmentCounts
    b: SegmentCounts
    difference: float
    """``rate_b - rate_a`` (fractions)."""
    ci_low: float
    ci_high: float
    confidence: float
    test: str
    p_value: float
    probability_b_beats_a: float
    conclusive: bool
    verdict: str


class DetectHourRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Score one hour of a site's hourly series with the detector state stored for that site and metric."""

    site_id: str
    hour: Annotated[datetime, msgspec.Meta(tz=False)]
    """The hour's start in the site's time zone, naive, on the hour: ``2026-03-10T14:00:00``."""
    metric: Literal["visitors", "pageviews"] = "visitors"
    threshold: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.5
    """The point is an anomaly when its score is at least this."""


class DetectHourResponse(msgspec.Struct):
    site_id: str
    metric: str
    threshold: float
    point: AnomalyPoint
    state: Literal["advanced", "rebuilt", "stored"]
    """``advanced``: the stored state took the hours since its last one; ``rebuilt``: there was no usable state
    (missing, expired, learnt under other parameters, too old, or ahead of this hour), so the 31 days up to the
    hour were replayed; ``stored``: this hour had already been scored, the stored verdict is returned."""
    hours_fed: int
    """Hourly points the detector learnt from in this call."""
