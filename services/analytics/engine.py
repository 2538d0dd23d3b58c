# ruff: noqa: S608 - statements are assembled from fixed fragments; every value from a query is a bind parameter
"""The query engine: a validated :class:`Query` becomes one SQL statement over events and their visits.

Definitions follow Plausible's documentation:

- ``visitors``: distinct visitor ids; ``visits``: distinct visits (sessions); ``pageviews``: pageview
  events; ``events``: all events; all of them over the events that match every filter.
- Visit (``visit:*``) attributes are those of the visit's first event (entry page: its first pageview;
  exit page: its last), so they hold for every event of the visit; a visit counts when it has an event in
  the date range.
- ``bounce_rate``: the share of visits with at most one pageview and no interactive custom event;
  ``visit_duration``: the average of (last event - first event) in seconds, bounces counting 0;
  ``views_per_visit``: pageviews per visit. With ``event:page`` as a dimension these session metrics are
  those of the visits that entered on the page, as in Plausible.
- ``percentage``: a group's visitors as a share of all visitors matching the filters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.query import (
    PROPS_PREFIX,
    Condition,
    Filter,
    Query,
    QueryError,
    time_bucket,
    time_labels,
)

DIRECT = "Direct / None"
NOT_SET = "(not set)"
NO_PROP = "(none)"

# Visit dimensions: (column of the visits relation, label of an empty value; None drops empty groups).
VISIT_COLUMNS: dict[str, tuple[str, str | None]] = {
    "visit:entry_page": ("entry_page", None),
    "visit:entry_page_hostname": ("entry_hostname", None),
    "visit:exit_page": ("exit_page", None),
    "visit:exit_page_hostname": ("exit_hostname", None),
    "visit:source": ("source", DIRECT),
    "visit:referrer": ("referrer", DIRECT),
    "visit:channel": ("channel", NOT_SET),
    "visit:utm_medium": ("utm_medium", None),
    "visit:utm_source": ("utm_source", None),
    "visit:utm_campaign": ("utm_campaign", None),
    "visit:utm_content": ("utm_content", None),
    "visit:utm_term": ("utm_term", None),
    "visit:device": ("device", NOT_SET),
    "visit:browser": ("browser", NOT_SET),
    "visit:browser_version": ("browser_version", NOT_SET),
    "visit:os": ("os", NOT_SET),
    "visit:os_version": ("os_version", NOT_SET),
    "visit:country": ("country", None),
}
EVENT_COLUMNS = {"event:page": "pathname", "event:hostname": "hostname", "event:name": "name"}
UNAVAILABLE = {"visit:region", "visit:city", "visit:region_name", "visit:city_name", "visit:country_name"}
PAGE_DIMENSIONS = {"event:page", "visit:entry_page", "visit:exit_page"}

VISIT_EXPRESSIONS: dict[str, str] = {
    "started_at": "min(timestamp) OVER w",
    "ended_at": "max(timestamp) OVER w",
    "entry_page": "coalesce((array_agg(pathname) FILTER (WHERE name = 'pageview') OVER w)[1], '')",
    "exit_page": "coalesce((array_agg(pathname) FILTER (WHERE name = 'pageview') OVER wd)[1], '')",
    "entry_hostname": "coalesce((array_agg(hostname) FILTER (WHERE name = 'pageview') OVER w)[1], '')",
    "exit_hostname": "coalesce((array_agg(hostname) FILTER (WHERE name = 'pageview') OVER wd)[1], '')",
    "pageviews": "count(*) FILTER (WHERE name = 'pageview') OVER w",
    "interactive_events": "count(*) FILTER (WHERE name <> 'pageview' AND interactive) OVER w",
    "source": "first_value(referrer_source) OVER w",
    "referrer": "regexp_replace(first_value(referrer) OVER w, '^[a-z]+://(www\\.)?', '')",
    "channel": "first_value(channel) OVER w",
    "utm_medium": "first_value(utm_medium) OVER w",
    "utm_source": "first_value(utm_source) OVER w",
    "utm_campaign": "first_value(utm_campaign) OVER w",
    "utm_content": "first_value(utm_content) OVER w",
    "utm_term": "first_value(utm_term) OVER w",
    "device": "first_value(device) OVER w",
    "browser": "first_value(browser) OVER w",
    "browser_version": "first_value(browser_version) OVER w",
    "os": "first_value(os) OVER w",
    "os_version": "first_value(os_version) OVER w",
    "country": "trim(first_value(country) OVER w)",
}
"""A visit's attributes, computed on each of its events: those of its first event; its entry page is its first
pageview's and its exit page its last's; its totals span all its events (``w`` is the visit in time order,
``wd`` in reverse)."""
SESSION_COLUMNS = ("started_at", "ended_at", "pageviews", "interactive_events")
"""What bounce rate, visit duration and views per visit need."""


def visit_events_select(relation: str, columns: Iterable[str] | None = None, extra: str = "") -> str:
    """The events of ``relation`` (a CTE name) with their visit's attributes as ``v_<name>`` columns.

    Window functions put the attributes on every event, so queries filter and group events by visit
    attributes without joining visits back; only ``columns`` (default: all) are computed, as they are the
    expensive part. The rollups use this very statement, so both paths agree by construction; ``extra`` adds
    columns over the same window ``w``.
    """
    wanted = set(VISIT_EXPRESSIONS if columns is None else columns)
    names = [name for name in VISIT_EXPRESSIONS if name in wanted]
    select = ",".join([*([extra] if extra else []), *(f"\n    {VISIT_EXPRESSIONS[n]} AS v_{n}" for n in names)])
    windows = ["w AS (PARTITION BY session_id ORDER BY timestamp, id ROWS BETWEEN UNBOUNDED PRECEDING "
               "AND UNBOUNDED FOLLOWING)"]
    if any("OVER wd" in VISIT_EXPRESSIONS[n] for n in names):
        windows.append("wd AS (PARTITION BY session_id ORDER BY timestamp DESC, id DESC ROWS BETWEEN "
                       "UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)")
    return f"SELECT r.*{', ' if select else ''}{select} FROM {relation} r WINDOW {', '.join(windows)}"


def visits_cte(columns: Iterable[str]) -> str:
    """``vev``: the events of every visit that has an event in the range, with the visit ``columns``."""
    return f"""visit_events AS MATERIALIZED (
    SELECT * FROM events
    WHERE site_id = :site
      AND session_id IN (SELECT DISTINCT session_id FROM in_range)
      -- A visit lasts while events come less than 30 minutes apart: a day either side bounds the scan.
      AND timestamp >= CAST(:start AS timestamptz) - interval '1 day'
      AND timestamp < CAST(:end AS timestamptz) + interval '1 day'
),
vev AS MATERIALIZED ({visit_events_select("visit_events", columns)})"""


@dataclass
class _Sql:
    """Bind parameters collected while the statement is built."""

    params: dict[str, Any] = field(default_factory=dict)

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _dimension_expr(dimension: str, sql: _Sql, *, for_filter: bool = False) -> str:
    """SQL for a dimension's value on a row of ``matched`` (events joined with their visit)."""
    if dimension in UNAVAILABLE:
        raise QueryError(f"{dimension}: region and city data are not collected by this instance")
    if dimension == "event:goal":
        raise QueryError("event:goal: goals are not available yet")
    if dimension in EVENT_COLUMNS:
        return f"e.{EVENT_COLUMNS[dimension]}"
    if dimension.startswith(PROPS_PREFIX):
        key = sql.bind(dimension.removeprefix(PROPS_PREFIX))
        return f"coalesce(e.props ->> {key}, '{NO_PROP}')"
    column, empty = VISIT_COLUMNS[dimension]
    if empty is None or for_filter:
        return f"e.v_{column}"
    return f"coalesce(nullif(e.v_{column}, ''), '{empty}')"


def _clause_values(dimension: str, clauses: tuple[str, ...]) -> list[str]:
    """Filter values as stored: display labels of empty values map back to ''."""
    empty = VISIT_COLUMNS.get(dimension, ("", None))[1]
    return ["" if empty is not None and clause == empty else clause for clause in clauses]


def _condition_sql(cond: Condition, sql: _Sql) -> str:
    column = _dimension_expr(cond.dimension, sql, for_filter=True)
    values = _clause_values(cond.dimension, cond.clauses)
    folded = not cond.case_sensitive
    target = f"lower({column})" if folded else column
    if folded:
        values = [v.lower() for v in values]
    if cond.operator in ("is", "is_not"):
        if cond.dimension in PAGE_DIMENSIONS and any("*" in v for v in values):
            # Plausible's page wildcards: /blog* matches every page under /blog.
            patterns = [_like_escape(v).replace("*", "%") for v in values]
            expr = f"{target} LIKE ANY({sql.bind(patterns)})"
        else:
            expr = f"{target} = ANY({sql.bind(values)})"
    elif cond.operator in ("contains", "contains_not"):
        expr = f"{target} LIKE ANY({sql.bind([f'%{_like_escape(v)}%' for v in values])})"
    else:
        expr = f"{column} ~ ANY({sql.bind(list(cond.clauses))})"
    return f"NOT ({expr})" if cond.operator.endswith("_not") else expr


def _filter_sql(item: Filter, sql: _Sql) -> str:
    if isinstance(item, Condition):
        return _condition_sql(item, sql)
    parts = [_filter_sql(child, sql) for child in item.children]
    if item.operator == "not":
        return f"NOT ({parts[0]})"
    return "(" + f" {item.operator.upper()} ".join(parts) + ")"


_BUCKET_SQL = {
    "hour": "date_trunc('hour', e.timestamp AT TIME ZONE {tz})",
    "day": "date_trunc('day', e.timestamp AT TIME ZONE {tz})",
    "week": "date_trunc('week', e.timestamp AT TIME ZONE {tz})",
    "month": "date_trunc('month', e.timestamp AT TIME ZONE {tz})",
}


@dataclass
class Result:
    rows: list[dict[str, Any]]
    total_rows: int


def build(query: Query, site_id: int) -> tuple[str, dict[str, Any]]:
    """The SQL statement and its parameters for ``query`` on ``site_id``."""
    sql = _Sql({"site": site_id, "start": query.date_range.start, "end": query.date_range.end})
    tz = sql.bind(query.date_range.timezone)
    bucket = time_bucket(query)

    dims: list[str] = []
    session_dims: list[str] = []
    for dimension in query.dimensions:
        if dimension.startswith("time"):
            expr = _BUCKET_SQL[bucket or "day"].format(tz=tz)
        else:
            expr = _dimension_expr(dimension, sql)
        dims.append(expr)
        # Session metrics by page are those of the visits entering on the page.
        session_dims.append("e.v_entry_page" if dimension == "event:page" else expr)

    where = [_filter_sql(item, sql) for item in query.filters]
    if "event:page" in query.dimensions:
        where.append("e.name = 'pageview'")  # the pages report counts page views, as Plausible's does
    for dimension, expr in zip(query.dimensions, dims, strict=True):
        if dimension in VISIT_COLUMNS and VISIT_COLUMNS[dimension][1] is None:
            where.append(f"{expr} <> ''")  # Plausible leaves visits without the value out of such groups
    where_sql = " AND ".join(where) or "TRUE"

    d_cols = [f"d{i}" for i in range(len(dims))]
    sd_cols = [f"sd{i}" for i in range(len(dims))]
    needs_sessions = bool({"bounce_rate", "visit_duration", "views_per_visit"} & set(query.metrics))
    # Visit attributes are the expensive part: compute them only when a visit attribute or metric is asked for.
    visit_columns = {VISIT_COLUMNS[d][0] for d in (*query.dimensions, *query.filtered_dimensions())
                     if d in VISIT_COLUMNS}
    if needs_sessions:
        visit_columns |= {*SESSION_COLUMNS, *(["entry_page"] if "event:page" in query.dimensions else [])}
    needs_visits = bool(visit_columns)
    columns = [f"{expr} AS {col}" for expr, col in zip(dims, d_cols, strict=True)]
    columns += ["e.visitor_id", "e.session_id", "e.name"]
    if needs_sessions:
        columns += [f"{expr} AS {col}" for expr, col in zip(session_dims, sd_cols, strict=True)]
        columns += ["(e.v_pageviews <= 1 AND e.v_interactive_events = 0) AS bounce",
                    "extract(epoch FROM e.v_ended_at - e.v_started_at) AS duration", "e.v_pageviews AS visit_pageviews"]
    group = f"GROUP BY {', '.join(d_cols)}" if d_cols else ""
    session_group = f"GROUP BY {', '.join(sd_cols)}" if sd_cols else ""
    if needs_visits:
        where_sql += " AND e.timestamp >= :start AND e.timestamp < :end"
    source = "vev e" if needs_visits else "in_range e"

    ctes = [
        "in_range AS (SELECT * FROM events WHERE site_id = :site AND timestamp >= :start AND timestamp < :end)",
        *([visits_cte(visit_columns)] if needs_visits else []),
        f"matched AS (SELECT {', '.join(columns)} FROM {source} WHERE {where_sql})",
        f"agg AS (SELECT {', '.join([*d_cols, ''])}"
        "count(DISTINCT visitor_id) AS visitors, count(DISTINCT session_id) AS visits, "
        "count(*) FILTER (WHERE name = 'pageview') AS pageviews, count(*) AS events "
        f"FROM matched {group})",
    ]
    if needs_sessions:
        ctes.append(
            f"per_visit AS (SELECT {', '.join([*sd_cols, ''])}session_id, bool_or(bounce) AS bounce, "
            f"max(duration) AS duration, max(visit_pageviews) AS pageviews FROM matched "
            f"GROUP BY {', '.join([*sd_cols, 'session_id'])})"
        )
        ctes.append(
            f"sess AS (SELECT {', '.join([*sd_cols, ''])}"
            "round(100 * avg(bounce::int)) AS bounce_rate, round(avg(duration)) AS visit_duration, "
            f"round(avg(pageviews), 2) AS views_per_visit FROM per_visit {session_group})"
        )
    metric_sql = {
        "visitors": "agg.visitors", "visits": "agg.visits", "pageviews": "agg.pageviews", "events": "agg.events",
        "bounce_rate": "coalesce(sess.bounce_rate, 0)", "visit_duration": "coalesce(sess.visit_duration, 0)",
        "views_per_visit": "coalesce(sess.views_per_visit, 0)",
        "percentage": "round(100.0 * agg.visitors / nullif((SELECT count(DISTINCT visitor_id) FROM matched), 0), 1)",
    }
    join = ""
    if needs_sessions:
        on = " AND ".join(f"sess.{sd} IS NOT DISTINCT FROM agg.{d}" for sd, d in zip(sd_cols, d_cols, strict=True))
        join = f"LEFT JOIN sess ON {on or 'TRUE'}"
    return finish(query, sql, ctes, metric_sql, join), sql.params


def finish(query: Query, sql: _Sql, ctes: list[str], metric_sql: dict[str, str], join: str = "") -> str:
    """The final SELECT over a CTE ``agg`` with dimension columns d0, d1, …: metrics, order, pagination."""
    unsupported = [m for m in query.metrics if m not in metric_sql]
    if unsupported:
        raise QueryError(f"metrics: {', '.join(unsupported)} not available yet")
    d_cols = [f"d{i}" for i in range(len(query.dimensions))]
    select = [f"agg.{col}" for col in d_cols] + [f"{metric_sql[m]} AS m_{m}" for m in query.metrics]
    select.append("count(*) OVER () AS total_rows")
    order: list[str] = []
    for name, direction in query.order_by or _default_order(query):
        column = f"agg.d{query.dimensions.index(name)}" if name in query.dimensions else f"m_{name}"
        order.append(f"{column} {direction.upper()} NULLS LAST")
    order += [f"agg.{col} ASC" for col in d_cols]  # deterministic ties
    return (
        f"WITH {', '.join(ctes)} SELECT {', '.join(select)} FROM agg {join} "
        f"ORDER BY {', '.join(order) or '1'} LIMIT {sql.bind(query.limit)} OFFSET {sql.bind(query.offset)}"
    )


def _default_order(query: Query) -> list[tuple[str, str]]:
    if query.time_dimension is not None:
        return [(query.time_dimension, "asc")]
    if query.dimensions:
        return [(query.metrics[0], "desc")]
    return []


def _label(value: Any, query: Query) -> Any:
    if isinstance(value, datetime):
        bucket = time_bucket(query)
        if bucket == "hour":
            return value.strftime("%Y-%m-%d %H:%M:%S")
        day = value.date()
        return max(day, query.date_range.first_day).isoformat() if bucket in ("week", "month") else day.isoformat()
    return value


def _metric_value(name: str, value: Any) -> Any:
    if value is None:
        return 0 if name not in ("percentage",) else None
    if name in ("visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration"):
        return int(value)
    return float(value)


async def run(session: AsyncSession, query: Query, site_id: int) -> Result:
    """Answer ``query`` from the raw events."""
    statement, params = build(query, site_id)
    try:
        rows = (await session.execute(text(statement), params)).all()
    except Exception as exc:
        if "invalid regular expression" in str(exc):
            raise QueryError(f"filters: invalid regular expression: {str(exc).splitlines()[0]}") from None
        raise
    return rows_to_result(query, rows)


def rows_to_result(query: Query, rows: Sequence[Any]) -> Result:
    """Rows of a statement built by :func:`finish` as results in Plausible's shape."""
    n = len(query.dimensions)
    results = [
        {
            "dimensions": [_label(row[i], query) for i in range(n)],
            "metrics": [_metric_value(m, row[n + j]) for j, m in enumerate(query.metrics)],
        }
        for row in rows
    ]
    total = int(rows[0][-1]) if rows else 0
    if not query.dimensions and not results:
        results = [{"dimensions": [], "metrics": [_metric_value(m, 0) for m in query.metrics]}]
    return Result(results, total)


def response(query: Query, result: Result, now: datetime) -> dict[str, Any]:
    """Plausible's response shape: results, meta, query."""
    meta: dict[str, Any] = {}
    if query.time_labels:
        meta["time_labels"] = time_labels(query)
    if query.total_rows:
        meta["total_rows"] = result.total_rows
    zone = ZoneInfo(query.date_range.timezone)
    return {
        "results": result.rows,
        "meta": meta,
        "query": {
            "site_id": query.site,
            "metrics": list(query.metrics),
            "date_range": [query.date_range.start.astimezone(zone).isoformat(),
                           query.date_range.end.astimezone(zone).isoformat()],
            "dimensions": list(query.dimensions),
            "filters": [_filter_json(item) for item in query.filters],
            "order_by": [list(pair) for pair in (query.order_by or _default_order(query))],
            "include": {"time_labels": query.time_labels, "total_rows": query.total_rows},
            "pagination": {"limit": query.limit, "offset": query.offset},
        },
    }


def _filter_json(item: Filter) -> list[Any]:
    if isinstance(item, Condition):
        base: list[Any] = [item.operator, item.dimension, list(item.clauses)]
        return [*base, {"case_sensitive": False}] if not item.case_sensitive else base
    if item.operator == "not":
        return ["not", _filter_json(item.children[0])]
    return [item.operator, [_filter_json(child) for child in item.children]]

