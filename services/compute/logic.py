"""The compute service's logic: series from analytics, detection with explanations, comparisons."""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from app.core.errors import ClientError
from services.compute.detect import DetectorConfig, OnlineDetector, Scored
from services.compute.schemas import (
    AnomalyPoint,
    CompareRequest,
    CompareResponse,
    DetectRequest,
    DetectResponse,
    Segment,
    SegmentCounts,
    SeriesSummary,
)
from services.compute.significance import CompareInputError, compare


def summarize(values: list[int]) -> SeriesSummary:
    """Summary statistics of a series; the last value's z-score against the ones before it."""
    if not values:
        return SeriesSummary(days=0, total=0, mean=0.0, median=0.0, stdev=0.0, minimum=0, maximum=0,
                             last=0, last_zscore=None)
    history = values[:-1]
    zscore: float | None = None
    if len(history) >= 2:
        spread = statistics.stdev(history)
        if spread > 0:
            zscore = round((values[-1] - statistics.fmean(history)) / spread, 4)
    return SeriesSummary(
        days=len(values),
        total=sum(values),
        mean=round(statistics.fmean(values), 4),
        median=float(statistics.median(values)),
        stdev=round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        minimum=min(values),
        maximum=max(values),
        last=values[-1],
        last_zscore=zscore,
    )


# --- series from the analytics service ---------------------------------------------------------------

def series_query(site_id: str, metric: str, first: date, last: date, interval: str, goal: str | None,
                 filters: list[list[Any]] | None = None) -> dict[str, Any]:
    """A Stats API v2 query for one metric by ``time:hour`` or ``time:day`` (analytics' ``POST /query``)."""
    query: dict[str, Any] = {"site_id": site_id, "metrics": [metric], "date_range": [first.isoformat(),
                             last.isoformat()], "dimensions": [f"time:{interval}"]}
    all_filters = list(filters or [])
    if goal:
        all_filters.append(["is", "event:goal", [goal]])
    if all_filters:
        query["filters"] = all_filters
    return query


def fill_buckets(results: list[dict[str, Any]], first: date, last: date, interval: str
                 ) -> tuple[list[str], list[datetime], list[float]]:
    """Every bucket of the range in order, 0 where analytics returned no row (it omits empty buckets)."""
    found = {row["dimensions"][0]: float(row["metrics"][0] or 0) for row in results}
    labels, stamps, values = [], [], []
    day = first
    while day <= last:
        if interval == "day":
            label = day.isoformat()
            labels.append(label)
            stamps.append(datetime.combine(day, time()))
            values.append(found.get(label, 0.0))
        else:
            for hour in range(24):
                label = f"{day.isoformat()} {hour:02d}:00:00"
                labels.append(label)
                stamps.append(datetime.combine(day, time(hour)))
                values.append(found.get(label, 0.0))
        day += timedelta(days=1)
    return labels, stamps, values


# --- detection -----------------------------------------------------------------------------------------

def detector_for(interval: str, points: int) -> DetectorConfig:
    """The NAB-tuned detector for a web series: daily season with weekday offsets (hourly data) or a weekly
    season (daily data); counts."""
    if interval == "hour":
        return DetectorConfig(season=24, counts=True, learning=min(336, points // 2), refractory=24,
                              weekly_gamma=0.003)
    return DetectorConfig(season=7, season_slots=7, counts=True, learning=min(28, points // 2), refractory=7)


def _part_of_day(hour: int) -> str:
    return ("night" if hour < 6 else "morning" if hour < 12 else "afternoon" if hour < 18 else "evening")


def explain(metric: str, interval: str, stamp: datetime, value: float, scored: Scored) -> str:
    """``visitors 412 at 14:00, expected 120-180 for a Tuesday afternoon``."""
    low, high = round(scored.expected_low), round(scored.expected_high)
    weekday = stamp.strftime("%A")
    if interval == "hour":
        when = f"at {stamp:%H:%M} on {stamp:%a %d %b}"
        usual = f"for a {weekday} {_part_of_day(stamp.hour)}"
    else:
        when = f"on {stamp:%a %d %b %Y}"
        usual = f"for a {weekday}"
    text = f"{metric} {value:g} {when}, expected {low}\u2013{high} {usual}"
    if low <= value <= high:
        text += " (the value is in range, but this sequence of values has not been seen before)"
    return text


def detect_series(request: DetectRequest, labels: list[str], stamps: list[datetime], values: list[float]
                  ) -> DetectResponse:
    config = detector_for(request.interval, len(values))
    detector = OnlineDetector(config)
    points = []
    step = 3600 if request.interval == "hour" else 86400
    for label, stamp, value in zip(labels, stamps, values, strict=True):
        scored = detector.update(value, int(stamp.replace(tzinfo=UTC).timestamp()) // step)
        anomaly = scored.score >= request.threshold and scored.score > 0
        points.append(AnomalyPoint(
            time=label, value=value, score=round(scored.score, 4), expected=round(scored.expected, 2),
            expected_low=round(scored.expected_low, 2), expected_high=round(scored.expected_high, 2),
            anomaly=anomaly,
            explanation=explain(request.metric, request.interval, stamp, value, scored) if anomaly else None))
    return DetectResponse(site_id=request.site_id, metric=request.metric, interval=request.interval,
                          threshold=request.threshold, learning=config.learning, points=points)


# --- comparison ----------------------------------------------------------------------------------------

def segment_filters(segment: Segment) -> list[list[Any]]:
    if segment.property is None:
        return []
    if segment.value is None:
        raise ClientError("a segment with a property needs its value")
    return [["is", f"event:props:{segment.property}", [segment.value]]]


def segment_label(segment: Segment, default: str) -> str:
    if segment.label:
        return segment.label
    if segment.property is not None:
        return f"{segment.property} = {segment.value}"
    return f"{segment.date_range[0]} to {segment.date_range[1]}" if segment.date_range else default


def comparison(request: CompareRequest, counts: dict[str, tuple[int, int]]) -> CompareResponse:
    """Counts are ``{"a": (visitors, conversions), "b": ...}``; the statistics are in significance.py."""
    (n_a, c_a), (n_b, c_b) = counts["a"], counts["b"]
    try:
        result = compare(min(c_a, n_a), n_a, min(c_b, n_b), n_b, request.confidence)
    except CompareInputError as exc:
        raise ClientError(str(exc)) from None
    return CompareResponse(
        site_id=request.site_id, goal=request.goal,
        a=SegmentCounts(segment_label(request.a, "A"), n_a, c_a, result.rate_a),
        b=SegmentCounts(segment_label(request.b, "B"), n_b, c_b, result.rate_b),
        difference=result.difference, ci_low=result.ci_low, ci_high=result.ci_high, confidence=result.confidence,
        test=result.test, p_value=result.p_value, probability_b_beats_a=result.probability_b_beats_a,
        conclusive=result.conclusive, verdict=result.verdict)
