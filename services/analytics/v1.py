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

from services.analytics import logic, planner
from services.analytics.query import (
    GOALS_DOCS,
    METRICS,
    MISSING_SITE_ID,
    Query,
    QueryError,
    dimension_kind,
    parse_query,
    time_labels,
)

V1_PERIODS = ("day", "7d", "30d", "month", "6mo", "12mo", "custom")
"""Plausible's v1 periods (``ExternalStatsController.validate_period``)."""
V1_INTERVALS = {"day": "time:day", "month": "time:month"}
"""The intervals a v1 client may ask for (``validate_interval``; ``date`` is read as ``day`` first)."""
INTERVAL_DIMENSIONS = {**V1_INTERVALS, "hour": "time:hour"}
"""Every v1 bucket: ``hour`` only as the default of ``period=day``."""
MAX_BREAKDOWN_LIMIT = 1000
BREAKDOWN_DIMENSIONS = {"visit:browser_version": ["visit:browser", "visit:browser_version"],
                        "visit:os_version": ["visit:os", "visit:os_version"]}
"""v1 breakdowns by a version name the browser or OS beside it, as Plausible's ``Legacy.Breakdown`` does."""
UNKNOWN_LEFT_OUT: dict[str, list[Any]] = {"visit:region": [""], "visit:city": [0]}
"""v1 breakdowns by region or city leave out the unknown value, as Plausible's ``Legacy.Breakdown`` (its
``dimension_filters``): Beacon's own visits have none, imported ones may (see ``engine.UNKNOWN_PLACE``)."""
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
DOCS = "https://plausible.io/docs/stats-api"
V1_COMPARISONS = re.compile(r"==|!=")
REALTIME_WINDOW = timedelta(minutes=5)
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
DEFAULT_INTERVALS = {"day": "hour", "6mo": "month", "12mo": "month"}
GROUP_CR = "group_conversion_rate"
EMPTY_BUCKET: dict[str, Any] = {"visit_duration": None, "time_on_page": None, "scroll_depth": None,
                                "total_revenue": None, "average_revenue": None, "views_per_visit": 0.0,
                                "bounce_rate": 0.0, "percentage": 0.0, "conversion_rate": 0.0}
"""A v1 timeseries bucket without data: each metric's default (Plausible's ``Metrics.default_value``); 0 else."""
"""v1 timeseries' interval when none is given (Plausible's ``Interval.default_for_period``); else ``date``."""


def _metrics(params: Mapping[str, str], default: str = "visitors") -> list[str]:
    """The ``metrics`` parameter, validated with Plausible's v1 messages (``ExternalStatsController``)."""
    metrics = [m.strip() for m in params.get("metrics", default).split(",")]
    if len(metrics) != len(set(metrics)):
        raise QueryError("Metrics cannot be queried multiple times.")
    for metric in metrics:
        if metric not in METRICS:
            raise QueryError(f"The metric `{metric}` is not recognized. Find valid metrics from the documentation: "
                             f"{DOCS}#metrics")
    return metrics


def _check_date(params: Mapping[str, str]) -> None:
    """Plausible's v1 ``date`` checks and messages: two ISO 8601 dates for a custom period, else one."""
    date = params.get("date")
    if params.get("period") == "custom":
        if date is None:
            raise QueryError(f"The `date` parameter is required when using a custom period. See {DOCS}#time-periods")
        parts = [part.strip() for part in date.split(",")]
        if len(parts) != 2 or not all(ISO_DATE.fullmatch(part) and _is_date(part) for part in parts):
            raise QueryError("Invalid format for `date` parameter. When using a custom period, please include two "
                             f"ISO-8601 formatted dates joined by a comma. See {DOCS}#time-periods")
    elif date is not None:
        reason = "invalid_format" if not ISO_DATE.fullmatch(date) else None if _is_date(date) else "invalid_date"
        if reason:
            raise QueryError(f"Error parsing `date` parameter: {reason}. Please specify a valid date in ISO-8601 "
                             "format.")


def _is_date(value: str) -> bool:
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def _check_property(prop: str, message: str) -> None:
    """A v1 property (``event:*`` or ``visit:*``, no time dimension) or ``message`` as the error."""
    try:
        kind = dimension_kind(prop, "property")
    except QueryError:
        raise QueryError(message) from None
    if kind == "time":
        raise QueryError(message)


def parse_filters(raw: str) -> list[list[Any]]:
    """Plausible's v1 filter string as v2 filters: ``visit:browser==Firefox;visit:country==FR|DE;event:page!=/x``.

    As Plausible's ``LegacyStatsAPIFilterParser``: ``;`` joins filters; ``==`` and ``!=`` compare; ``|``
    separates alternatives and ``\\|`` is a literal pipe; a value holding ``*`` is a wildcard (``*`` and ``**``
    match any characters, on every property); ``event:goal`` is always compared exactly. An expression that is
    not one property, one ``==`` or ``!=`` and one value (``a=b``, ``a~b``, ``a==``, ``a==b!=c``) is left out, and
    so is a ``visit:country`` filter whose codes are not two bytes, as Plausible leaves them out.
    """
    filters: list[list[Any]] = []
    for part in raw.split(";"):
        pieces = [piece.strip() for piece in V1_COMPARISONS.split(part.strip()) if piece]
        if len(pieces) != 2:
            continue
        dimension, value = pieces
        negated = "!=" in part
        clauses = [c.replace("\\|", "|") for c in UNESCAPED_PIPE.split(value)]
        _check_property(dimension, f"Invalid filter property '{dimension}'. Please provide a valid filter property: "
                                   f"{DOCS}#properties")
        if dimension == "visit:country" and any(len(c.encode()) != 2 for c in clauses):
            continue
        if "*" in value and dimension != "event:goal":
            filters.append(["matches_not" if negated else "matches", dimension, [wildcard_regex(value)]])
        else:
            filters.append(["is_not" if negated and dimension != "event:goal" else "is", dimension, clauses])
    return filters


def wildcard_regex(value: str) -> str:
    """A v1 wildcard value as a regular expression, as Plausible's ``page_regex`` makes it: the whole value,
    ``*`` (and ``**``) any characters, unescaped ``|`` between alternatives."""
    alternatives = [re.escape(part.replace("\\|", "|")).replace(r"\*", ".*") for part in UNESCAPED_PIPE.split(value)]
    return f"^(?:{'|'.join(alternatives)})$"


def _date_range(params: Mapping[str, str]) -> tuple[Any, str | None]:
    period = params.get("period", "30d")
    if period not in V1_PERIODS:
        raise QueryError(f"Error parsing `period` parameter: invalid period `{period}`. Please find accepted values "
                         f"in our docs: {DOCS}#time-periods")
    _check_date(params)
    date = params.get("date")
    if period == "custom" and date is not None:
        return [part.strip() for part in date.split(",")], None
    return period, date


def v2_body(params: Mapping[str, str], metrics: list[str], dimensions: list[str]) -> dict[str, Any]:
    site = params.get("site_id")
    if not site:
        raise QueryError(MISSING_SITE_ID)
    date_range, relative_date = _date_range(params)
    filters = parse_filters(params.get("filters", ""))
    _check_metric_rules(metrics, [d for d in dimensions if not d.startswith("time")], [f[1] for f in filters])
    body: dict[str, Any] = {"site_id": site, "metrics": metrics, "date_range": date_range,
                            "dimensions": dimensions, "filters": filters}
    if relative_date:
        body["date"] = relative_date
    if params.get("with_imported") == "true":  # Plausible's v1 flag; any other value leaves imports out
        body["include"] = {"imports": True}
    return body


def _event_only(dimension: str) -> bool:
    return dimension in ("event:name", "event:goal") or dimension.startswith("event:props:")


def _check_metric_rules(metrics: list[str], dimensions: list[str], filtered: list[str]) -> None:
    """Plausible's v1 rules for metrics by breakdown property and filters, each with its message
    (``ExternalStatsController.validate_metric``); the first metric breaking one is reported."""
    for metric in metrics:
        problem = None
        if metric == "time_on_page":
            if "event:goal" in filtered or "event:name" in filtered:
                name = "event:goal" if "event:goal" in filtered else "event:name"
                problem = f"Metric `{metric}` cannot be queried when filtering by `{name}`"
            elif dimensions and dimensions != ["event:page"]:
                problem = f"Metric `{metric}` is not supported in breakdown queries (except `event:page` breakdown)"
            elif not dimensions and "event:page" not in filtered:
                problem = f"Metric `{metric}` can only be queried in a page breakdown or with a page filter."
        elif metric == "conversion_rate":
            if dimensions != ["event:goal"] and "event:goal" not in filtered:
                problem = f"Metric `{metric}` can only be queried in a goal breakdown or with a goal filter"
        elif metric == "views_per_visit" and "event:page" in filtered:
            problem = f"Metric `{metric}` cannot be queried with a filter on `event:page`."
        elif metric == "views_per_visit" and dimensions:
            problem = f"Metric `{metric}` is not supported in breakdown queries."
        if problem is None and metric in ("visits", "bounce_rate", "visit_duration", "views_per_visit"):
            event_only = next((d for d in filtered if _event_only(d)), None)
            if len(dimensions) == 1 and _event_only(dimensions[0]):
                problem = f"Session metric `{metric}` cannot be queried for breakdown by `{dimensions[0]}`."
            elif event_only:
                problem = f"Session metric `{metric}` cannot be queried when using a filter on `{event_only}`."
        if problem:
            raise QueryError(problem)


async def _check_goals(session: AsyncSession, site_id: int, filters: list[list[Any]]) -> None:
    """Plausible's v1 ``validate_filters``: a goal filter names configured goals (a pageview goal by its display
    name ``Visit /path``), each missing one refused in Plausible's words."""
    named = [clause for _, dimension, clauses in filters if dimension == "event:goal" for clause in clauses]
    if not named:
        return
    configured = await logic.goal_names(session, site_id)
    missing = next((name for name in named if name not in configured), None)
    if missing is None:
        return
    if missing.startswith("Visit "):
        path = missing.removeprefix("Visit ")
        problem = f"The pageview goal for the pathname `{path}` is not configured for this site. "
    else:
        problem = f"The goal `{missing}` is not configured for this site. "
    raise QueryError(f"{problem}Find out how to configure goals here: {GOALS_DOCS}")


def _with_warning(payload: dict[str, Any], meta: Mapping[str, Any], *, interval: bool = False) -> dict[str, Any]:
    """Plausible's v1 ``warning``: aggregate and breakdown warn of an unsupported query only, timeseries of
    an unsupported interval too."""
    reason = meta.get("imports_skip_reason")
    if reason == "unsupported_query" or (interval and reason == "unsupported_interval"):
        payload["warning"] = meta["imports_warning"]
    return payload


def _parse(body: dict[str, Any], tz: str, now: datetime, stats_start: Any) -> Query:
    return parse_query(body, timezone=tz, now=now, stats_start=stats_start)


def _rounded(metric: str, value: Any) -> Any:
    """v1 aggregate values: bounce_rate and visit_duration as whole numbers (Plausible's ``Legacy.Aggregate``)."""
    if metric in ("bounce_rate", "visit_duration") and isinstance(value, float):
        return round(value)
    return value


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
    _date_range(params)  # Plausible checks period and date before the metrics
    metrics = _metrics(params)
    body = v2_body(params, metrics, [])
    await _check_goals(session, site_id, body["filters"])
    query = _parse(body, tz, now, stats_start)
    answer = await planner.answer(session, query, site_id)
    values = answer.rows[0]["metrics"]
    result: dict[str, Any] = {m: {"value": _rounded(m, v)} for m, v in zip(metrics, values, strict=True)}
    compare = params.get("compare")
    if compare:
        if compare != "previous_period":
            raise QueryError("compare: the only option is previous_period")
        previous_query = dataclasses.replace(query, date_range=query.date_range.previous())
        previous = (await planner.answer(session, previous_query, site_id)).rows[0]["metrics"]
        for metric, old in zip(metrics, previous, strict=True):
            result[metric]["comparison_value"] = _rounded(metric, old)
            result[metric]["change"] = _change(metric, result[metric]["value"], old)
    return _with_warning({"results": result}, answer.meta)


async def timeseries(session: AsyncSession, site_id: int, tz: str, stats_start: Any,
                     params: Mapping[str, str], now: datetime) -> dict[str, Any]:
    _date_range(params)  # Plausible checks period and date before the interval
    period = params.get("period", "30d")
    interval = params.get("interval")
    if interval == "date":
        interval = "day"  # Plausible's legacy name, read as day before the check
    if interval is not None and interval not in V1_INTERVALS:
        valid = ", ".join(f"`{name}`" for name in V1_INTERVALS)
        raise QueryError(f"Error parsing `interval` parameter: invalid interval `{interval}`. "
                         f"Valid intervals are {valid}")
    dimension = INTERVAL_DIMENSIONS[interval or DEFAULT_INTERVALS.get(period, "day")]
    metrics = _metrics(params)
    body = v2_body(params, metrics, [dimension])
    await _check_goals(session, site_id, body["filters"])
    # Plausible's Legacy.Timeseries: each bucket's conversion rate is the group conversion rate of the bucket.
    body["metrics"] = [GROUP_CR if m == "conversion_rate" else m for m in metrics]
    query = _parse({**body, "include": {**body.get("include", {}), "time_labels": True}}, tz, now, stats_start)
    answer = await planner.answer(session, query, site_id)
    rows = {row["dimensions"][0]: row["metrics"] for row in answer.rows}
    empty = [EMPTY_BUCKET.get(m, 0) for m in metrics]
    return _with_warning({"results": [{"date": label, **dict(zip(metrics, rows.get(label, empty), strict=True))}
                                      for label in time_labels(query)]}, answer.meta, interval=True)


async def breakdown(session: AsyncSession, site_id: int, tz: str, stats_start: Any,
                    params: Mapping[str, str], now: datetime) -> dict[str, Any]:
    _date_range(params)  # Plausible checks period and date before the property
    prop = params.get("property")
    if prop is None:
        raise QueryError("The `property` parameter is required. Please provide at least one property to show a "
                         "breakdown by.")
    if prop == "event:hostname":
        raise QueryError("Property 'event:hostname' is currently not supported for breakdowns.  Please provide a valid "
                         f"property for the breakdown endpoint: {DOCS}#properties")
    _check_property(prop, f"Invalid property '{prop}'. Please provide a valid property for the breakdown endpoint: "
                          f"{DOCS}#properties")
    body = v2_body(params, _metrics(params), [prop])
    await _check_goals(session, site_id, body["filters"])
    if prop in UNKNOWN_LEFT_OUT:
        body["filters"] = [*body["filters"], ["is_not", prop, UNKNOWN_LEFT_OUT[prop]]]
    limit = _positive(params.get("limit", "100"), MAX_BREAKDOWN_LIMIT,
                      f"Please provide limit as a number between 1 and {MAX_BREAKDOWN_LIMIT}.")
    page = _positive(params.get("page", "1"), None, "Please provide page as a positive number.")
    metrics = body["metrics"]
    if prop != "event:goal" and not prop.startswith("event:props:"):
        # Plausible's Legacy.Breakdown: by any other property, conversion_rate is the group conversion rate.
        body["metrics"] = [GROUP_CR if m == "conversion_rate" else m for m in metrics]
    body["pagination"] = {"limit": limit, "offset": (page - 1) * limit}
    body["dimensions"] = dimensions = BREAKDOWN_DIMENSIONS.get(prop, [prop])
    ranking = next((m for m in body["metrics"] if m != "time_on_page"), None)
    if ranking is None:  # Plausible's Legacy.Breakdown adds visitors to rank by, and leaves it out of the rows
        body["metrics"] = [*body["metrics"], ranking := "visitors"]
    # Plausible's legacy order: the first metric (not time_on_page), then the value
    body["order_by"] = [[ranking, "desc"], *([[prop, "asc"]] if prop != "event:goal" else [])]
    query = _parse(body, tz, now, stats_start)
    keys = [dimension.rsplit(":", 1)[-1] for dimension in dimensions]
    answer = await planner.answer(session, query, site_id)
    return _with_warning({"results": [{**dict(zip(keys, row["dimensions"], strict=True)),
                                       **dict(zip(metrics, row["metrics"][:len(metrics)], strict=True))}
                                      for row in answer.rows]}, answer.meta)


def _positive(raw: str, most: int | None, message: str) -> int:
    """A whole number from 1 (to ``most``), written in decimal digits only, as Elixir's ``Integer.parse``."""
    if not re.fullmatch(r"[+-]?\d+", raw) or not 0 < int(raw) <= (most or int(raw)):
        raise QueryError(message)
    return int(raw)


async def realtime_visitors(session: AsyncSession, site_id: int, now: datetime | None = None) -> int:
    """Visitors with an event in the last five minutes."""
    since = (now or datetime.now(UTC)) - REALTIME_WINDOW
    count = await session.execute(
        text("SELECT count(DISTINCT visitor_id) FROM events WHERE site_id = :site AND timestamp >= :since"),
        {"site": site_id, "since": since},
    )
    return int(count.scalar_one())
