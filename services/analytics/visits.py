# ruff: noqa: S608 - statements are assembled from fixed fragments; every value from a query is a bind parameter
"""Answers from the visits table alone: queries whose filters and dimensions are all visit attributes (or time).

Such a query's answer is a function of the visits that have events in the range (and in each time bucket):
every event of a visit shares its attributes. The visits table (``sessions``) holds each visit's attributes
and totals, so the query reads one row per visit instead of every event, and no window function runs:

- a visit wholly inside the range and inside one time bucket contributes its row as it is (its pageviews and
  events are all in that bucket);
- the few others (visits crossing the range's edges or a bucket boundary, e.g. midnight) are split by
  counting their events per bucket in ``events`` (found by the ``(site_id, session_id)`` index), so they
  count in every bucket they have events in, with their in-bucket pageviews and events, exactly as the raw
  engine counts them.

Metrics keep the raw engine's definitions (see :mod:`services.analytics.engine`): visitors are distinct
visitor ids (a visit's first event's), visits the visits, bounce rate, visit duration and views per visit
those of the whole visit, averaged over the visits of a group.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.engine import (
    _BUCKET_SQL,
    SESSION_COLUMNS,
    TABLE_EXPRESSIONS,
    VISIT_COLUMNS,
    VISIT_SPAN,
    Result,
    _dimension_conditions,
    _dimension_expr,
    _filter_sql,
    _Sql,
    execute,
    finish,
    visit_columns_read,
)
from services.analytics.query import TIME_DIMENSIONS, Query, time_bucket

METRICS = frozenset({"visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration",
                     "views_per_visit", "percentage"})
"""What the visits table answers exactly."""


def applicable(query: Query) -> bool:
    """Whether every dimension and filter is a visit attribute (or time) and every metric one of METRICS."""
    return (set(query.metrics) <= METRICS
            and all(d in TIME_DIMENSIONS or d in VISIT_COLUMNS for d in query.dimensions)
            and all(d in VISIT_COLUMNS for d in query.filtered_dimensions()))


def build(query: Query, site_id: int) -> tuple[str, dict[str, Any]]:
    """The SQL statement and its parameters for ``query`` (see :func:`applicable`) on ``site_id``."""
    sql = _Sql({"site": site_id, "start": query.date_range.start, "end": query.date_range.end})
    tz = sql.bind(query.date_range.timezone)
    bucket = _BUCKET_SQL[time_bucket(query) or "day"].format(tz=tz) if query.time_dimension else ""
    dims = [bucket if d in TIME_DIMENSIONS else _dimension_expr(d, sql) for d in query.dimensions]

    columns = visit_columns_read(query) | set(SESSION_COLUMNS)
    select = ", ".join(f"{TABLE_EXPRESSIONS[n]} AS v_{n}" for n in sorted(columns))
    filters = " AND ".join(_filter_sql(item, sql) for item in query.filters) or "TRUE"
    # In one bucket: all of the visit's events are in the same bucket (and in the range).
    one_bucket = (f" AND {bucket.replace('e.timestamp', 'e.v_started_at')} = "
                  f"{bucket.replace('e.timestamp', 'e.v_ended_at')}") if bucket else ""
    split_bucket = f", {bucket.replace('e.timestamp', 'x.timestamp')}" if bucket else ""
    d_cols = [f"d{i}" for i in range(len(dims))]
    group = f" GROUP BY {', '.join(d_cols)}" if d_cols else ""
    conditions = " AND ".join(_dimension_conditions(query.dimensions, dims)) or "TRUE"
    ctes = [
        # The visits with an event in the range that pass the filters.
        "fv AS MATERIALIZED (SELECT e.*, (e.v_started_at >= :start AND e.v_ended_at < :end"
        f"{one_bucket}) AS whole FROM (SELECT s.session_id, s.visitor_id, s.events, {select} FROM sessions s "
        "WHERE s.site_id = :site AND s.started_at < :end "
        f"AND s.started_at >= CAST(:start AS timestamptz) - interval '{VISIT_SPAN.days} day' "
        f"AND s.ended_at >= :start) e WHERE {filters})",
        # The others, split by bucket: their events in the range, per bucket.
        # LATERAL: an index lookup of each such visit's events, never a scan of the range's events.
        "split AS (SELECT e.*, x.timestamp AS x_timestamp, x.pageviews AS x_pageviews, x.events AS x_events "
        "FROM fv e CROSS JOIN LATERAL (SELECT min(x.timestamp) AS timestamp, "
        "count(*) FILTER (WHERE x.name = 'pageview') AS pageviews, count(*) AS events FROM events x "
        "WHERE x.site_id = :site AND x.session_id = e.session_id AND x.timestamp >= greatest(:start, e.v_started_at) "
        "AND x.timestamp < :end AND x.timestamp <= e.v_ended_at "
        f"GROUP BY x.site_id{split_bucket}) x WHERE NOT e.whole)",
        # The split visits carry their own columns: joining them back to fv sorted every visit of the range.
        "rows AS (SELECT e.*, e.v_started_at AS timestamp, e.v_pageviews AS r_pageviews, e.events AS r_events "
        "FROM fv e WHERE e.whole UNION ALL SELECT e.session_id, e.visitor_id, e.events, "
        f"{', '.join(f'e.v_{n}' for n in sorted(columns))}, e.whole, e.x_timestamp, e.x_pageviews, e.x_events "
        "FROM split e)",
        f"matched AS (SELECT {''.join(f'{expr} AS {col}, ' for expr, col in zip(dims, d_cols, strict=True))}"
        "e.visitor_id, e.r_pageviews, e.r_events, (e.v_pageviews <= 1 AND e.v_interactive_events = 0) AS bounce, "
        "extract(epoch FROM e.v_ended_at - e.v_started_at) AS duration, e.v_pageviews AS visit_pageviews "
        f"FROM rows e WHERE {conditions})",
        f"agg AS (SELECT {''.join(f'{col}, ' for col in d_cols)}count(DISTINCT visitor_id) AS visitors, "
        "count(*) AS visits, sum(r_pageviews) AS pageviews, sum(r_events) AS events, "
        "round(100 * avg(bounce::int)) AS bounce_rate, round(avg(duration)) AS visit_duration, "
        f"round(avg(visit_pageviews), 2) AS views_per_visit FROM matched{group})",
    ]
    metric_sql = {
        "visitors": "agg.visitors", "visits": "agg.visits", "pageviews": "agg.pageviews", "events": "agg.events",
        "bounce_rate": "agg.bounce_rate", "visit_duration": "agg.visit_duration",
        "views_per_visit": "agg.views_per_visit",
        "percentage": "round(100.0 * agg.visitors / nullif((SELECT count(DISTINCT visitor_id) FROM matched), 0), 1)",
    }
    return finish(query, sql, ctes, metric_sql), sql.params


async def run(session: AsyncSession, query: Query, site_id: int) -> Result:
    """Answer ``query`` (see :func:`applicable`) from the visits table."""
    statement, params = build(query, site_id)
    return await execute(session, query, statement, params)
