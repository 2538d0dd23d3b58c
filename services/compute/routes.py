"""Internal endpoints of the compute service: series come from the analytics service, never the database."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from litestar import get, post
from litestar.params import FromPath, FromQuery, JSONBody

from app.core.errors import ClientError
from app.core.internal import internal_token_guard
from app.core.resources import ResourcesDep
from services.compute import hourly, logic
from services.compute.forecast import ForecastInputError, forecast_daily
from services.compute.schemas import (
    CompareRequest,
    CompareResponse,
    DetectHourRequest,
    DetectHourResponse,
    DetectRequest,
    DetectResponse,
    ForecastPoint,
    ForecastRequest,
    ForecastResponse,
    HistoryPoint,
    SeriesSummary,
)

FORECAST_METHOD = "ETS(A,Ad,A) on log(1 + y), weekly season, robust intervals"
MAX_HISTORY_DAYS = 3 * 366


@get("/sites/{site_id:int}/summary", guards=[internal_token_guard])
async def site_summary(resources: ResourcesDep, site_id: FromPath[int], date_from: FromQuery[date],
                       date_to: FromQuery[date]) -> SeriesSummary:
    """Summary statistics of a site's daily pageviews, taken from the analytics service."""
    series = await resources.services.json(
        "analytics", "GET", f"/sites/{site_id}/pageviews/daily",
        params={"date_from": date_from.isoformat(), "date_to": date_to.isoformat()},
    )
    return logic.summarize([int(day["pageviews"]) for day in series])


def _range(dates: list[date], limit: int, what: str) -> tuple[date, date]:
    first, last = dates
    if last < first:
        raise ClientError(f"{what}: the last day {last} is before the first {first}")
    if (last - first).days + 1 > limit:
        raise ClientError(f"{what}: at most {limit} days")
    return first, last


async def _query(resources: ResourcesDep, query: dict[str, Any]) -> list[dict[str, Any]]:
    answer = await resources.services.json("analytics", "POST", "/query", json=query)
    return list(answer["results"])


@post("/detect", guards=[internal_token_guard], status_code=200)
async def detect(resources: ResourcesDep, data: JSONBody[DetectRequest]) -> DetectResponse:
    """Anomaly scores in [0, 1] for each hour or day of a site's series, explained where they pass the threshold.

    Errors: 400 for a reversed or too long range (hourly: 31 days, daily: 3 years) or what analytics refuses
    (unknown site: 404), 503 when analytics is unavailable.
    """
    first, last = _range(data.date_range, 31 if data.interval == "hour" else MAX_HISTORY_DAYS, "date_range")
    results = await _query(resources, logic.series_query(data.site_id, data.metric, first, last, data.interval,
                                                       data.goal))
    labels, stamps, values = logic.fill_buckets(results, first, last, data.interval)
    return await asyncio.to_thread(logic.detect_series, data, labels, stamps, values)


@post("/detect/hour", guards=[internal_token_guard], status_code=200)
async def detect_hour(resources: ResourcesDep, data: JSONBody[DetectHourRequest]) -> DetectHourResponse:
    """One hour of a site's hourly series scored with the detector state kept in Redis for that site and metric
    (the ``anomaly`` alert rule's hourly check: one update instead of a 31-day replay; docs/compute.md).

    Errors: 400 for an hour not on the hour or with a time zone, 404 for an unknown site, 503 when analytics is
    unavailable. Without Redis the hour is still scored (by replaying 31 days).
    """
    if (data.hour.minute, data.hour.second, data.hour.microsecond) != (0, 0, 0):
        raise ClientError(f"hour: {data.hour.isoformat()} is not the start of an hour")

    async def fetch(first: date, last: date) -> list[dict[str, Any]]:
        return await _query(resources, logic.series_query(data.site_id, data.metric, first, last, "hour", None))

    return await hourly.detect_hour(resources.redis, resources.keys.compute_detector(data.site_id, data.metric),
                                    data, fetch)


@post("/forecast", guards=[internal_token_guard], status_code=200)
async def forecast(resources: ResourcesDep, data: JSONBody[ForecastRequest]) -> ForecastResponse:
    """Daily forecast with 80 % and 95 % prediction intervals for ``horizon`` days after the range.

    Errors: 400 for fewer than 28 days of history, a reversed or too long range, a horizon outside 1-366.
    """
    first, last = _range(data.date_range, MAX_HISTORY_DAYS, "date_range")
    results = await _query(resources, logic.series_query(data.site_id, data.metric, first, last, "day", data.goal))
    _, stamps, values = logic.fill_buckets(results, first, last, "day")
    days = [stamp.date() for stamp in stamps]
    try:
        rows = await asyncio.to_thread(forecast_daily, days, values, data.horizon)
    except ForecastInputError as exc:
        raise ClientError(str(exc)) from None
    return ForecastResponse(
        site_id=data.site_id, metric=data.metric, method=FORECAST_METHOD,
        history=[HistoryPoint(day, value) for day, value in zip(days, values, strict=True)],
        forecast=[ForecastPoint(r.day, round(r.yhat, 2), round(r.lower_80, 2), round(r.upper_80, 2),
                                round(r.lower_95, 2), round(r.upper_95, 2)) for r in rows])


@post("/compare", guards=[internal_token_guard], status_code=200)
async def compare(resources: ResourcesDep, data: JSONBody[CompareRequest]) -> CompareResponse:
    """The goal's conversion rate in segment B against A: difference, interval, test, P(B beats A), verdict.

    Visitors and converted visitors of each segment come from analytics (Stats API v2 aggregates).
    """
    counts: dict[str, tuple[int, int]] = {}
    for key, segment in (("a", data.a), ("b", data.b)):
        first, last = _range(segment.date_range, MAX_HISTORY_DAYS, f"{key}.date_range")
        base: dict[str, Any] = {"site_id": data.site_id, "metrics": ["visitors"],
                                "date_range": [first.isoformat(), last.isoformat()]}
        filters = logic.segment_filters(segment)
        visitors = await _query(resources, {**base, **({"filters": filters} if filters else {})})
        converted = await _query(resources, {**base, "filters": [*filters, ["is", "event:goal", [data.goal]]]})
        counts[key] = (int(visitors[0]["metrics"][0] if visitors else 0),
                       int(converted[0]["metrics"][0] if converted else 0))
    return logic.comparison(data, counts)


ROUTES = [site_summary, detect, detect_hour, forecast, compare]
