"""Plausible's Stats API v1 (aggregate, timeseries, breakdown, realtime visitors) on top of the v2 engine.

Each v1 call is translated into a v2 query (same validation, same definitions) and its answer reshaped
into v1's response format.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics import planner
from services.analytics.query import Query, QueryError, parse_query, time_labels

V1_PERIODS = ("day", "7d", "30d", "month", "6mo", "12mo", "year", "custom")
V1_OPERATORS = (("!=", "is_not"), ("==", "is"), ("~", "contains"))
REALTIME_WINDOW = timedelta(minutes=5)
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
DEFAULT_INTERVALS = {"day": "hour", "6mo": "month", "12mo": "month", "year": "month"}
"""v1 timeseries' interval when none is given (Plausible's ``Interval.default_for_period``); else ``date``."""


def _metrics(params: Mapping[str, str], default: str = "visitors") -> list[str]:
    return [m.strip() for m in params.get("metrics", default).split(",") if m.strip()]


def parse_filters(raw: str) -> list[list[Any]]:
    """Plausible's v1 filter string as v2 filters: ``visit:browser==Firefox;visit:country==FR|DE;event:page!=/x``.

    As Plausible's ``LegacyStatsAPIFilterParser``: ``;`` joins filters; ``==`` and ``!=`` compare; ``|``
    separates alternatives and ``\\|`` is a literal pipe; a value holding ``*`` is a wildcard (``*`` and ``**``
    match any characters, on every property); ``event:goal`` is always compared exactly; a ``visit:country``
    filter whose codes are not two letters is left out. ``~`` (contains) is Beacon's own addition.
    """
    filters: list[list[Any]] = []
    for part in (p.strip() for p in raw.split(";")):
        if not part:
            continue
        found = next(((token, op) for token, op in V1_OPERATORS if token in part), None)
        if found is None:
            raise QueryError(f"filters: cannot parse {part!r}; use property==value, != or ~, joined with ;")
        token, operator = found
        dimension, _, value = part.partition(token)
        dimension, value = dimension.strip(), value.strip()
        clauses = [c.replace("\\|", "|") for c in UNESCAPED_PIPE.split(value)]
        if not dimension or not value or any(t in value for t, _ in V1_OPERATORS if t != "~"):
            raise QueryError(f"filters: cannot parse {part!r}")
        if dimension == "visit:country" and any(len(c) != 2 for c in clauses):
            continue  # Plausible leaves such a filter out rather than matching nothing
        if "*" in value and dimension != "event:goal" and token != "~":
            filters.append(["matches" if token == "==" else "matches_not", dimension, [wildcard_regex(value)]])
        else:
            filters.append([operator, dimension, clauses])
    return filters


def wildcard_regex(value: str) -> str:
    """A v1 wildcard value as a regular expression, as Plausible's ``page_regex`` makes it: the whole value,
    ``*`` (and ``**``) any characters, unescaped ``|`` between alternatives."""
    alternatives = [re.escape(part.replace("\\|", "|")).replace(r"\*", ".*") for part in UNESCAPED_PIPE.split(value)]
    return f"^(?:{'|'.join(alternatives)})$"


def _date_range(params: Mapping[str, str]) -> tuple[Any, str | None]:
    period = params.get("period", "30d")
    if period not in V1_PERIODS:
        raise QueryError(f"period: invalid value {period!r}; use one of {', '.join(V1_PERIODS)}")
    date = params.get("date")
    if period == "custom":
        if not date or date.count(",") != 1:
            raise QueryError("date: a custom period needs date=YYYY-MM-DD,YYYY-MM-DD")
        return date.split(","), None
    return period, date


def v2_body(params: Mapping[str, str], metrics: list[str], dimensions: list[str]) -> dict[str, Any]:
    site = params.get("site_id")
    if not site:
        raise QueryError("site_id: required, the site's domain")
    date_range, relative_date = _date_range(params)
    body: dict[str, Any] = {"site_id": site, "metrics": metrics, "date_range": date_range,
                            "dimensions": dimensions, "filters": parse_filters(params.get("filters", ""))}
    if relative_date:
        body["date"] = relative_date
    if params.get("with_imported") == "true":  # Plausible's v1 flag; any other value leaves imports out
        body["include"] = {"imports": True}
    return body


def _with_warning(payload: dict[str, Any], meta: Mapping[str, Any], *, interval: bool = False) -> dict[str, Any]:
    """Plausible's v1 ``warning``: aggregate and breakdown warn of an unsupported query only, timeseries of
    an unsupported interval too."""
    reason = meta.get("imports_skip_reason")
    if reason == "unsupported_query" or (interval and reason == "unsupported_interval"):
        payload["warning"] = meta["imports_warning"]
    return payload


def _parse(body: dict[str, Any], tz: str, now: datetime, stats_start: Any) -> Query:
    return parse_query(body, timezone=tz, now=now, stats_start=stats_start)


def _change(metric: str, current: float, previous: float) -> float | int | None:
    if metric == "bounce_rate":
        return round(current - previous)  # points, as Plausible reports it
    if metric == "conversion_rate":
        return round(current - previous, 1)  # points too
    if previous == 0:
        return 100 if current > 0 else 0
    return round((current - previous) / previous * 100)


async def aggregate(session: AsyncSession, site_id: int, tz: str, stats_start: Any,
                    params: Mapping[str, str], now: datetime) -> dict[str, Any]:
    metrics = _metrics(params)
    query = _parse(v2_body(params, metrics, []), tz, now, stats_start)
    answer = await planner.answer(session, query, site_id)
    values = answer.rows[0]["metrics"]
    result: dict[str, Any] = {m: {"value": v} for m, v in zip(metrics, values, strict=True)}
    compare = params.get("compare")
    if compare:
        if compare != "previous_period":
            raise QueryError("compare: the only option is previous_period")
        previous_query = dataclasses.replace(query, date_range=query.date_range.previous())
        previous = (await planner.answer(session, previous_query, site_id)).rows[0]["metrics"]
        for metric, old in zip(metrics, previous, strict=True):
            result[metric]["change"] = _change(metric, result[metric]["value"], old)
    return _with_warning({"results": result}, answer.meta)


async def timeseries(session: AsyncSession, site_id: int, tz: str, stats_start: Any,
                     params: Mapping[str, str], now: datetime) -> dict[str, Any]:
    metrics = _metrics(params)
    period = params.get("period", "30d")
    interval = params.get("interval") or DEFAULT_INTERVALS.get(period, "date")
    dimension = {"date": "time:day", "day": "time:day", "month": "time:month", "hour": "time:hour",
                 "week": "time:week"}.get(interval)
    if dimension is None:
        raise QueryError(f"interval: invalid value {interval!r}; use date, hour, week or month")
    body = v2_body(params, metrics, [dimension])
    query = _parse({**body, "include": {**body.get("include", {}), "time_labels": True}}, tz, now, stats_start)
    answer = await planner.answer(session, query, site_id)
    rows = {row["dimensions"][0]: row["metrics"] for row in answer.rows}
    zero = [0 for _ in metrics]
    return _with_warning({"results": [{"date": label, **dict(zip(metrics, rows.get(label, zero), strict=True))}
                                      for label in time_labels(query)]}, answer.meta, interval=True)


async def breakdown(session: AsyncSession, site_id: int, tz: str, stats_start: Any,
                    params: Mapping[str, str], now: datetime) -> dict[str, Any]:
    prop = params.get("property")
    if not prop:
        raise QueryError("property: required, e.g. visit:source or event:page")
    metrics = _metrics(params)
    try:
        limit = int(params.get("limit", "100"))
        page = int(params.get("page", "1"))
    except ValueError:
        raise QueryError("limit and page must be integers") from None
    if not 1 <= limit <= 1000 or page < 1:
        raise QueryError("limit: 1 to 1000; page: 1 or more")
    body = {**v2_body(params, metrics, [prop]), "pagination": {"limit": limit, "offset": (page - 1) * limit}}
    query = _parse(body, tz, now, stats_start)
    key = prop.rsplit(":", 1)[-1]
    answer = await planner.answer(session, query, site_id)
    return _with_warning({"results": [{key: row["dimensions"][0], **dict(zip(metrics, row["metrics"], strict=True))}
                                      for row in answer.rows]}, answer.meta)


async def realtime_visitors(session: AsyncSession, site_id: int, now: datetime | None = None) -> int:
    """Visitors with an event in the last five minutes."""
    since = (now or datetime.now(UTC)) - REALTIME_WINDOW
    count = await session.execute(
        text("SELECT count(DISTINCT visitor_id) FROM events WHERE site_id = :site AND timestamp >= :since"),
        {"site": site_id, "since": since},
    )
    return int(count.scalar_one())
