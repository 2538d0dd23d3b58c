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
  those of the visits that entered on the page, as in Plausible; under a top-level ``event:page`` filter,
  ``bounce_rate`` counts only the visits whose entry page the filter keeps (:func:`bounce_entry_filter`).
- ``percentage``: a group's visitors as a share of all visitors matching the filters.
- ``event:page`` as a dimension counts pageviews only, except under a top-level goal or event-name filter that
  keeps events (``is``, ``contains``, ``matches``), where it groups every event the filters keep by its page, as
  Plausible does (see :func:`pages_count_all`).
- Goals (the site's ``goals``): an event completes a custom-event goal when its name is the goal's event name,
  and a page goal when it is a pageview of a path matching the goal's path (``*`` matches any characters).
  ``event:goal`` groups the events that complete each goal, by the goal's display name (an event completing
  two goals counts for both); an ``event:goal`` filter keeps the events completing a goal whose display name
  is (``is``) or contains (``contains``) one of the clauses.
- ``conversion_rate``: visitors who completed the goal(s) as a share of all visitors, where "all" is the same
  query without its top-level ``event:goal`` and ``event:props:*`` filters and without dimensions;
  ``group_conversion_rate``: the same per group, the divisor being the group's visitors (grouped by the
  query's dimensions other than ``event:goal``) without those filters. Both in percent, one decimal.
- ``time_on_page`` (Plausible's current definition): the engaged time that the tracker's ``engagement`` events
  report for the page (table ``engagements``), in seconds, divided by the number of visits that reported
  some; without ``event:page`` dimension, over the pages the filters keep; by other dimensions (a visit
  attribute, a time bucket, a property, beside or instead of the page) per group of the engagement events.
  Days before the site's first engagement event use Plausible's legacy definition when the query has no
  dimension or ``event:page`` alone (otherwise they have none, as in Plausible), and both add up where a range
  spans the two (Plausible's ``legacy_time_on_page_cutoff``): the events of each visit in time order; every event
  followed by another of the same visit gives the time to that next event. Grouped by (page, next page,
  visit), a page's time is the sum of those durations divided by the number of groups whose next page is
  another page; so reloads and custom events on a page add time without counting a transition, and a visit's
  last event counts nothing. Without ``event:page`` dimension: the sum over the pages matching the
  top-level ``event:page`` filters divided by their transitions. Seconds, rounded half to even (ClickHouse's
  rounding of a float: Plausible's legacy breakdown test answers 264 for 264.5 s); null without transitions.
- ``scroll_depth``: per visit (and group) the deepest scroll its engagement events report, averaged over
  those visits; percent, rounded half to even (ClickHouse's rounding of a float); null without any.
- By ``event:goal`` (or with a goal filter) an engagement event belongs to a goal only if the goal's event name
  is ``engagement``: Plausible's goals want a pageview (page goals) or their own event name, so scroll depth
  and time on page are null for Beacon's page and custom-event goals, as Plausible answers them.
- Engagement events are never events, pageviews or visits: they live in their own table.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg.errors
import pycountry
from babel.numbers import format_compact_currency, format_currency
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.query import (
    BEHAVIORAL_OPERATORS,
    PROPS_PREFIX,
    Condition,
    Filter,
    Logical,
    Query,
    QueryError,
    time_bucket,
    time_labels,
)

REVENUE_METRICS = frozenset({"total_revenue", "average_revenue"})
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
    "visit:screen": ("device", NOT_SET),  # Plausible's older name of the device, still accepted
    "visit:browser": ("browser", NOT_SET),
    "visit:browser_version": ("browser_version", NOT_SET),
    "visit:os": ("os", NOT_SET),
    "visit:os_version": ("os_version", NOT_SET),
    "visit:country": ("country", None),
}
KEEPING_EMPTY = {f"{name}+empty": (column, "") for name, (column, empty) in VISIT_COLUMNS.items()
                 if name.startswith("visit:utm_")}
"""Internal variants of the UTM dimensions that keep visits without the value in a group of their own (the CSV
export's sources rows); never accepted from a client (the query parser knows only Plausible's names)."""
VISIT_COLUMNS.update(KEEPING_EMPTY)
VISIT_COLUMNS["visit:country_name"] = ("country", None)  # named by _dimension_expr (COUNTRY_NAMES)
EVENT_COLUMNS = {"event:page": "pathname", "event:hostname": "hostname", "event:name": "name"}
UNKNOWN_PLACE: dict[str, tuple[str, str]] = {
    "visit:region": ("''", "''"), "visit:region_name": ("''", "''"),
    "visit:city": ("0", "'0'"), "visit:city_name": ("''", "''"),
}
"""Region and city of every visit: (SQL of the value grouped by, SQL of the text a filter compares). Beacon looks
up the country only, and keeps what Plausible Community Edition stores without a city database (``region`` ``''``
and ``city_geoname_id`` ``0`` on every event, names ``''``): a v2 breakdown has one group, ``""`` or ``0``; a
filter ``is`` a region or a GeoNames id keeps nothing and ``is_not`` keeps everything. A filter compares a city
id as its decimal text (clauses are strings, see ``query._parse_clauses``)."""
COUNTRY_NAMES: dict[str, str] = {
    **{c.alpha_2: getattr(c, "common_name", None) or c.name for c in pycountry.countries},
    "XK": "Kosovo", "A1": "Anonymous VPN Service",
}
"""``visit:country_name`` of each ISO 3166-1 alpha-2 code, as Plausible names countries (its ``location``
library: the iso-codes ``common_name``, else ``name`` — pycountry's copy of the same data — and its overrides for
XK and A1); a visit without a country has none and is left out of the groups, as by ``visit:country``."""
PAGE_DIMENSIONS = {"event:page", "visit:entry_page", "visit:exit_page"}
GOAL = "event:goal"
GOAL_MATCH = (
    r"(g.event_name = e.name OR (g.page_path IS NOT NULL AND e.name = 'pageview' AND e.pathname LIKE "
    r"replace(replace(replace(replace(g.page_path, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%')))"
)
"""Whether event ``e`` completes goal ``g`` (a page goal's ``*`` matches any characters, as in Plausible)."""

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


TABLE_EXPRESSIONS: dict[str, str] = {
    **{name: f"s.{name}" for name in VISIT_EXPRESSIONS},
    "source": "s.referrer_source",
    "referrer": "regexp_replace(s.referrer, '^[a-z]+://(www\\.)?', '')",
    "country": "s.country",
}
"""The same attributes read from the visits table (``sessions``, folded from the events by PostgreSQL with the
definitions of :data:`VISIT_EXPRESSIONS`: first event, first and last pageview in ``(timestamp, id)`` order)."""
VISIT_SPAN = timedelta(days=1)
"""How long before the range a visit with events in it may have begun: the raw engine's scan reaches a day
either side of the range, so the visits table is read from a day before it as well."""


def visits_table_cte(columns: Iterable[str]) -> str:
    """``vev``: the events of the range joined with their visit's ``columns`` from the visits table.

    Not materialised, so that PostgreSQL pushes visit filters down into the scan of ``sessions`` and joins the
    (usually few) matching visits to the range's events, where the window path sorts every event of the range.
    An event lies between its visit's ``started_at`` and ``ended_at`` (its first and last event's), which the
    join states, so that a visit looked up by session reads only the monthly partitions of its own time
    (run-time pruning: pages of the visits from one country and source over 12 months at 10 M events probed
    twelve partitions per visit, 2.4 -> 1.4 s).
    """
    names = [name for name in VISIT_EXPRESSIONS if name in set(columns)]
    select = "".join(f", {TABLE_EXPRESSIONS[n]} AS v_{n}" for n in names)
    return (
        f"vev AS NOT MATERIALIZED (SELECT r.*{select} FROM events r JOIN sessions s "
        "ON s.site_id = r.site_id AND s.session_id = r.session_id "
        "AND r.timestamp >= s.started_at AND r.timestamp <= s.ended_at "
        "WHERE r.site_id = :site AND r.timestamp >= :start AND r.timestamp < :end "
        "AND s.site_id = :site AND s.started_at < :end "
        f"AND s.started_at >= CAST(:start AS timestamptz) - interval '{VISIT_SPAN.days} day')"
    )


@dataclass(frozen=True)
class GoalDef:
    """One of the site's goals as :func:`load_goals` reads it (exactly one of ``event_name``, ``page_path``)."""

    display_name: str
    event_name: str | None
    page_path: str | None


async def load_goals(session: AsyncSession, site_id: int) -> tuple[GoalDef, ...]:
    """The site's goals, for :func:`build`'s ``goals`` (ordered by id, as stored)."""
    rows = await session.execute(text(
        "SELECT display_name, event_name, page_path FROM goals WHERE site_id = :site ORDER BY id"), {"site": site_id})
    return tuple(GoalDef(str(r[0]), r[1], r[2]) for r in rows)


@dataclass
class _Sql:
    """Bind parameters collected while the statement is built."""

    params: dict[str, Any] = field(default_factory=dict)
    goal_joined: bool = False
    """Whether each row is an (event, goal) pair with the goal as ``g`` (``event:goal`` is a dimension)."""
    goals: tuple[GoalDef, ...] | None = None
    """The site's goals when read beforehand (:func:`load_goals`): goal filters then become conditions on the
    event's own name and path, which PostgreSQL answers from the events' name and page indexes (migration
    0015) instead of testing every event of the range against the goals table."""

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


COUNTRY_NAMES_JSON = json.dumps(COUNTRY_NAMES)


def country_name_sql(column: str, names: str) -> str:
    """SQL of the name of the country code in ``column`` ('' for none), ``names`` binding COUNTRY_NAMES_JSON."""
    return f"coalesce(CAST({names} AS jsonb) ->> trim({column}), '')"


def _dimension_expr(dimension: str, sql: _Sql, *, for_filter: bool = False) -> str:
    """SQL for a dimension's value on a row of ``matched`` (events joined with their visit)."""
    if dimension == "visit:country_name":
        return country_name_sql("e.v_country", sql.bind(COUNTRY_NAMES_JSON))
    if dimension in UNKNOWN_PLACE:
        return UNKNOWN_PLACE[dimension][1 if for_filter else 0]
    if dimension == GOAL:
        return "g.display_name"
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


def _goal_events(goals: Iterable[GoalDef], sql: _Sql) -> str:
    """Whether event ``e`` completes one of ``goals`` (:data:`GOAL_MATCH` with the goals known): custom-event
    goals by name, page goals by pageview path; ``FALSE`` without goals.

    ``e.name <> 'pageview'`` is implied by a custom-event goal whose name is not ``pageview`` and lets
    PostgreSQL use the partial index of custom events (migration 0015)."""
    goals = list(goals)
    names = sorted({g.event_name for g in goals if g.event_name is not None})
    patterns = sorted({_like_escape(g.page_path).replace("*", "%") for g in goals if g.page_path is not None})
    parts = []
    if names:
        custom = "" if "pageview" in names else " AND e.name <> 'pageview'"
        parts.append(f"(e.name = ANY({sql.bind(names)}){custom})")
    if patterns:
        parts.append(f"(e.name = 'pageview' AND e.pathname LIKE ANY({sql.bind(patterns)}))")
    return f"({' OR '.join(parts)})" if parts else "FALSE"


def clause_array(bound: str, folded: bool) -> str:
    """SQL of a filter's bound text array ``bound``; ``folded`` (a case-insensitive filter): each element folded
    by PostgreSQL's ``lower``, as the column compared is (``lower(column)``). Python's ``str.lower`` folds some
    letters differently (``İ`` becomes two characters, one in PostgreSQL), so both sides fold in PostgreSQL."""
    return f"ARRAY(SELECT lower(v) FROM unnest(CAST({bound} AS text[])) AS v)" if folded else bound


def _named_goals(cond: Condition, goals: Sequence[GoalDef]) -> list[GoalDef] | None:
    """The goals an ``event:goal`` filter keeps, as its SQL would select them; None when Python's case folding
    could differ from PostgreSQL's (non-ASCII text with a case-insensitive filter)."""
    folded = not cond.case_sensitive
    if folded and not all(text.isascii() for text in (*cond.clauses, *(g.display_name for g in goals))):
        return None
    values = [v.lower() for v in cond.clauses] if folded else list(cond.clauses)

    def keeps(goal: GoalDef) -> bool:
        name = goal.display_name.lower() if folded else goal.display_name
        return name in values if cond.operator == "is" else any(v in name for v in values)
    return [g for g in goals if keeps(g)]


def _goal_condition(cond: Condition, sql: _Sql) -> str:
    """An ``event:goal`` filter: the event completes a goal whose display name is / contains a clause."""
    if sql.goals is not None and not sql.goal_joined and (named_goals := _named_goals(cond, sql.goals)) is not None:
        return _goal_events(named_goals, sql)
    folded = not cond.case_sensitive
    name = "lower(g.display_name)" if folded else "g.display_name"
    clauses = list(cond.clauses) if cond.operator == "is" else [f"%{_like_escape(v)}%" for v in cond.clauses]
    named = f"{name} {'=' if cond.operator == 'is' else 'LIKE'} ANY({clause_array(sql.bind(clauses), folded)})"
    if sql.goal_joined:
        return named
    return f"EXISTS (SELECT 1 FROM goals g WHERE g.site_id = :site AND {named} AND {GOAL_MATCH})"


def _condition_sql(cond: Condition, sql: _Sql) -> str:
    if cond.dimension == GOAL:
        return _goal_condition(cond, sql)
    column = _dimension_expr(cond.dimension, sql, for_filter=True)
    values = _clause_values(cond.dimension, cond.clauses)
    folded = not cond.case_sensitive
    target = f"lower({column})" if folded else column

    def wanted(texts: list[str]) -> str:
        return clause_array(sql.bind(texts), folded)

    if cond.operator in ("is", "is_not"):
        if cond.dimension in PAGE_DIMENSIONS and any("*" in v for v in values):
            # Plausible's page wildcards: /blog* matches every page under /blog.
            patterns = [_like_escape(v).replace("*", "%") for v in values]
            expr = f"{target} LIKE ANY({wanted(patterns)})"
        else:
            expr = f"{target} = ANY({wanted(values)})"
    elif cond.operator in ("contains", "contains_not"):
        expr = f"{target} LIKE ANY({wanted([f'%{_like_escape(v)}%' for v in values])})"
    else:
        expr = f"{column} ~ ANY({sql.bind(list(cond.clauses))})"
    none_wanted = any((v.lower() if folded else v) == NO_PROP for v in values)
    if cond.dimension.startswith(PROPS_PREFIX) and cond.operator == "is" and not none_wanted:
        if not folded:
            # The event holds the property with one of the values as a JSON string: the question the GIN index
            # of the properties answers (migration 0019), so only the matching events are read. The same rows
            # as the comparison of the value's text, as ingest stores every property value as a JSON string
            # (services.ingest.logic); it replaces that comparison, whose estimate multiplied with this one's
            # made PostgreSQL expect one row and give up parallel workers.
            key = cond.dimension.removeprefix(PROPS_PREFIX)
            expr = f"e.props @> ANY(CAST({sql.bind([json.dumps({key: value}) for value in values])} AS jsonb[]))"
        # Only an event with properties has this one: the condition the partial indexes of the events with
        # properties answer (migrations 0017 and 0019), so a property filter does not read every event.
        expr = f"(e.props <> '{{}}'::jsonb AND {expr})"
    return f"NOT ({expr})" if cond.operator.endswith("_not") else expr


def _behavioral_sql(item: Logical, sql: _Sql) -> str:
    """``has_done``: the row's visit has an event in the date range matching the inner filter (event dimensions
    only); ``has_not_done``: it has none (Plausible's ``SQL.WhereBuilder``)."""
    joined, sql.goal_joined = sql.goal_joined, False  # the inner goal filter reads the goals itself
    inner = _filter_sql(item.children[0], sql)
    sql.goal_joined = joined
    done = (f"e.session_id IN (SELECT e.session_id FROM events e WHERE e.site_id = :site AND e.timestamp >= :start "
            f"AND e.timestamp < :end AND {inner})")
    return done if item.operator == "has_done" else f"NOT ({done})"


def _filter_sql(item: Filter, sql: _Sql) -> str:
    if isinstance(item, Condition):
        return _condition_sql(item, sql)
    if item.operator in BEHAVIORAL_OPERATORS:
        return _behavioral_sql(item, sql)
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


QUERY_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL work_mem = '32MB'")
"""For every analytics statement: JIT compilation took 1.5 s of a 2 s rollup-tail statement at 10 M events
(these statements are planned anew each time and their estimates are large), and the visit windows spilled
to disk at the default work_mem of 4 MB."""


async def prepare(session: AsyncSession) -> None:
    """Settings for the analytics statements of the session's transaction (see QUERY_SETTINGS)."""
    for setting in QUERY_SETTINGS:
        await session.execute(text(setting))


@dataclass
class Result:
    rows: list[dict[str, Any]]
    total_rows: int
    meta: dict[str, Any] = field(default_factory=dict)
    """Extra ``meta`` fields of the response (the imports' fields)."""


def _top_level_without(query: Query, *dimensions: str) -> list[Filter]:
    """The query's filters without the top-level conditions on ``dimensions`` (a trailing ':' is a prefix)."""
    def dropped(item: Filter) -> bool:
        return isinstance(item, Condition) and any(
            item.dimension == d or (d.endswith(":") and item.dimension.startswith(d)) for d in dimensions)
    return [item for item in query.filters if not dropped(item)]


def visit_columns_read(query: Query) -> set[str]:
    """The visit columns (:data:`VISIT_COLUMNS`) the query's dimensions and filters read."""
    return {VISIT_COLUMNS[d][0] for d in (*query.dimensions, *query.filtered_dimensions()) if d in VISIT_COLUMNS}


EVENT_CHOOSING = (GOAL, "event:name")
"""Dimensions whose filters choose which events count (see :func:`pages_count_all`)."""


def pages_count_all(query: Query) -> bool:
    """Whether ``event:page`` groups count every event the filters keep rather than pageviews only: when a
    top-level ``event:goal`` or ``event:name`` filter keeps events (``is``, ``contains``, ``matches``).

    Plausible groups the events its filters keep by their pathname, so under a custom-event goal its pages
    report lists the pages where the goal's events happened, with their conversions (its dashboard test
    "calculates conversion_rate when filtering for goal": a Signup on ``/`` gives ``/`` 1 visitor, CR 33.3).
    Without such a filter Beacon's pages count pageviews only, as its page rollups do.
    """
    return any(isinstance(item, Condition) and item.dimension in EVENT_CHOOSING
               and not item.operator.endswith("_not") for item in query.filters)


def bounce_entry_filter(query: Query) -> Condition | None:
    """The condition on the entry page that a visit needs to count in ``bounce_rate``: the query's first top-level
    ``event:page`` filter applied to ``visit:entry_page`` (same operator, clauses and case), unless ``event:page``
    is a dimension (its rows' bounce rates are already those of the visits entering on the row's page, which the
    filter keeps); None when every visit counts.

    Plausible's bounce_rate (``SQL.Expression.session_metric(:bounce_rate)``): "if page is passed to query, we only
    count bounce rate where users entered at page", so the bounce rate of a page is that of the visits landing on
    it, while the other metrics count every visit that saw it. A group without such a visit has bounce rate 0.
    """
    if "event:page" in query.dimensions:
        return None
    page = next((item for item in query.filters if isinstance(item, Condition) and item.dimension == "event:page"),
                None)
    return None if page is None else dataclasses.replace(page, dimension="visit:entry_page")


def _dimension_conditions(dimensions: Sequence[str], exprs: Sequence[str], all_events: bool = False) -> list[str]:
    """Which events a group counts: pageviews for pages (every event with ``all_events``, see
    :func:`pages_count_all`); visits with a value where empty ones are left out."""
    where = []
    if "event:page" in dimensions and not all_events:
        where.append("e.name = 'pageview'")  # the pages report counts page views
    for dimension, expr in zip(dimensions, exprs, strict=True):
        if dimension in VISIT_COLUMNS and VISIT_COLUMNS[dimension][1] is None:
            where.append(f"{expr} <> ''")  # Plausible leaves visits without the value out of such groups
    return where


def build(query: Query, site_id: int, visits: Literal["window", "table"] = "window",
          goals: tuple[GoalDef, ...] | None = None) -> tuple[str, dict[str, Any]]:
    """The SQL statement and its parameters for ``query`` on ``site_id``.

    ``visits``: where visit attributes and session metrics come from: ``window`` computes them from the events
    with window functions (the raw engine, the reference every other path is compared with); ``table`` reads
    them from the visits table (see :func:`visits_table_cte`). ``goals``: the site's goals read beforehand
    (:func:`load_goals`), so that goal filters and the goal dimension read only the events that can complete
    a goal; None: matched against the goals table in the statement (the same answer).
    """
    sql = _Sql({"site": site_id, "start": query.date_range.start, "end": query.date_range.end}, goals=goals)
    tz = sql.bind(query.date_range.timezone)
    bucket = time_bucket(query)
    sql.goal_joined = GOAL in query.dimensions

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
    where += _dimension_conditions(query.dimensions, dims, pages_count_all(query))
    if sql.goal_joined and goals is not None:
        # Only events completing some goal can join one: a condition the name and page indexes answer.
        where.append(_goal_events(goals, sql))

    d_cols = [f"d{i}" for i in range(len(dims))]
    sd_cols = [f"sd{i}" for i in range(len(dims))]
    needs_sessions = bool({"bounce_rate", "visit_duration", "views_per_visit"} & set(query.metrics))
    entry = bounce_entry_filter(query) if needs_sessions else None
    # Visit attributes are the expensive part: compute them only when a visit attribute or metric is asked for.
    visit_columns = visit_columns_read(query)
    if needs_sessions:
        visit_columns |= {*SESSION_COLUMNS, *(["entry_page"] if "event:page" in query.dimensions or entry else [])}
    needs_visits = bool(visit_columns)
    # The window's visit events reach a day beyond the range either side; the visits table's join reads the
    # range's events only, so repeating the range there would only halve PostgreSQL's row estimates again and
    # again (a 116,000-event goal join estimated at 93 rows was run as 116,000 index lookups).
    in_time = ["e.timestamp >= :start AND e.timestamp < :end"] if needs_visits and visits == "window" else []
    where_sql = " AND ".join([*where, *in_time]) or "TRUE"
    columns = [f"{expr} AS {col}" for expr, col in zip(dims, d_cols, strict=True)]
    columns += ["e.visitor_id", "e.session_id", "e.name"]
    revenue = bool(REVENUE_METRICS & set(query.metrics))
    if revenue:
        columns += ["e.revenue_amount", "e.revenue_currency"]
    if needs_sessions:
        columns += [f"{expr} AS {col}" for expr, col in zip(session_dims, sd_cols, strict=True)]
        columns += [f"{_condition_sql(entry, sql) if entry is not None else 'TRUE'} AS entered",
                    "(e.v_pageviews <= 1 AND e.v_interactive_events = 0) AS bounce",
                    "extract(epoch FROM e.v_ended_at - e.v_started_at) AS duration", "e.v_pageviews AS visit_pageviews"]
    group = f"GROUP BY {', '.join(d_cols)}" if d_cols else ""
    session_group = f"GROUP BY {', '.join(sd_cols)}" if sd_cols else ""
    source = "vev e" if needs_visits else "in_range e"
    joined = f"{source} JOIN goals g ON g.site_id = :site AND {GOAL_MATCH}" if sql.goal_joined else source

    ctes = [
        # Inlined where read (table mode): materialising every column of a year's events cost more than
        # reading them twice.
        f"in_range AS {'NOT MATERIALIZED ' if visits == 'table' else ''}(SELECT * FROM events "
        "WHERE site_id = :site AND timestamp >= :start AND timestamp < :end)",
        *([(visits_cte if visits == "window" else visits_table_cte)(visit_columns)] if needs_visits else []),
        f"matched AS (SELECT {', '.join(columns)} FROM {joined} WHERE {where_sql})",
        f"agg AS (SELECT {', '.join([*d_cols, ''])}"
        "count(DISTINCT visitor_id) AS visitors, count(DISTINCT session_id) AS visits, "
        "count(*) FILTER (WHERE name = 'pageview') AS pageviews, count(*) AS events"
        + (", sum(revenue_amount) AS revenue_total, avg(revenue_amount) AS revenue_average, "
           "min(revenue_currency) AS revenue_currency, count(DISTINCT revenue_currency) AS revenue_currencies"
           if revenue else "")
        + f" FROM matched {group})",
    ]
    joins: list[str] = []
    if needs_sessions:
        ctes.append(
            f"per_visit AS (SELECT {', '.join([*sd_cols, ''])}session_id, bool_or(bounce) AS bounce, "
            "bool_or(entered) AS entered, "
            f"max(duration) AS duration, max(visit_pageviews) AS pageviews FROM matched "
            f"GROUP BY {', '.join([*sd_cols, 'session_id'])})"
        )
        ctes.append(
            f"sess AS (SELECT {', '.join([*sd_cols, ''])}"
            # Bounces only of the visits entering where a page filter keeps (see bounce_entry_filter).
            "round(100 * avg(bounce::int) FILTER (WHERE entered)) AS bounce_rate, "
            "round(avg(duration)) AS visit_duration, round(avg(pageviews), 2) AS views_per_visit, "
            "sum(bounce::int) FILTER (WHERE entered) AS bounces, count(*) FILTER (WHERE entered) AS bounce_n, "
            "sum(duration) AS duration, count(*) AS n, sum(pageviews) AS visit_pageviews "
            f"FROM per_visit {session_group})"
        )
        on = " AND ".join(_same(f"sess.{sd}", f"agg.{d}", dimension)
                          for sd, d, dimension in zip(sd_cols, d_cols, query.dimensions, strict=True))
        joins.append(f"LEFT JOIN sess ON {on or 'TRUE'}")
    metric_sql = {
        "visitors": "agg.visitors", "visits": "agg.visits", "pageviews": "agg.pageviews", "events": "agg.events",
        "bounce_rate": "coalesce(sess.bounce_rate, 0)", "visit_duration": "coalesce(sess.visit_duration, 0)",
        "views_per_visit": "coalesce(sess.views_per_visit, 0)",
        "percentage": "round(100.0 * agg.visitors / nullif((SELECT count(DISTINCT visitor_id) FROM matched), 0), 1)",
        # The components of the session metrics, for merging imported stats (services.analytics.imports).
        "__bounces": "coalesce(sess.bounces, 0)", "__duration": "coalesce(sess.duration, 0)",
        "__session_visits": "coalesce(sess.n, 0)", "__visit_pageviews": "coalesce(sess.visit_pageviews, 0)",
        "__bounce_visits": "coalesce(sess.bounce_n, 0)",
    }

    sql.goal_joined = False  # the divisors and the time on page read events without the goal join
    _conversion_rates(query, sql, dims, source if visits == "window" else "", in_time, (ctes, joins, metric_sql))
    extra = _page_and_revenue_metrics(query, sql, dims, source, in_time, visit_columns, (ctes, joins, metric_sql))
    return finish(query, sql, ctes, metric_sql, " ".join(joins), extra), sql.params


SCROLL_DEPTH_METRICS = ("scroll_depth", "__scroll_depth_total", "__scroll_depth_visits")
"""``scroll_depth`` and the components imports merge it by: what :func:`build_scroll_depth` answers."""


def build_scroll_depth(query: Query, site_id: int) -> tuple[str, dict[str, Any]]:
    """The statement answering ``query`` whose metrics are among :data:`SCROLL_DEPTH_METRICS`, from the engagement
    events alone: a row per group that has some (:func:`build` also reads every event of the range for its
    groups, which then have no depth or one of these). The same values as :func:`build` gives those groups.

    For a planner that answers a query's other metrics elsewhere (the pages panel's visitors and pageviews from
    the rollups) and adds the depths of the groups it got."""
    assert set(query.metrics) <= set(SCROLL_DEPTH_METRICS), query.metrics
    sql = _Sql({"site": site_id, "start": query.date_range.start, "end": query.date_range.end})
    tz = sql.bind(query.date_range.timezone)
    bucket = time_bucket(query)
    dims = [_BUCKET_SQL[bucket or "day"].format(tz=tz) if d.startswith("time") else _dimension_expr(d, sql)
            for d in query.dimensions]
    ctes = [_engagements_cte(query, sql, visit_columns_read(query))]
    joins: list[str] = []
    metric_sql: dict[str, str] = {}
    _scroll_depth(query, sql, dims, (ctes, joins, metric_sql))
    d_cols = [f"d{i}" for i in range(len(dims))]
    ctes.append(f"agg AS (SELECT {', '.join(d_cols) or '1 AS one'} FROM sd)")
    return finish(query, sql, ctes, metric_sql, " ".join(joins)), sql.params


def _page_and_revenue_metrics(query: Query, sql: _Sql, dims: list[str], source: str, in_time: list[str],
                              visit_columns: set[str], into: tuple[list[str], list[str], dict[str, str]]
                              ) -> dict[str, str]:
    """scroll_depth and time_on_page (from the engagement events), total_revenue and average_revenue: their
    CTEs, joins and SQL; returns the extra columns :func:`rows_to_result` needs (the revenue's currency)."""
    ctes, _, metric_sql = into
    if {"time_on_page", "scroll_depth"} & set(query.metrics):
        ctes.append(_engagements_cte(query, sql, visit_columns))
    if "scroll_depth" in query.metrics:
        _scroll_depth(query, sql, dims, into)
    if "time_on_page" in query.metrics:
        _time_on_page(query, sql, dims, source, in_time, into)
    if not REVENUE_METRICS & set(query.metrics):
        return {}
    # Plausible sums revenue only for revenue goals (a goal filter or dimension) of one currency, converting
    # amounts to it; Beacon's goals have no currency, so a group's revenue counts when it is in one currency.
    goal = GOAL in {*query.dimensions, *query.filtered_dimensions()}
    for name, column in (("total_revenue", "revenue_total"), ("average_revenue", "revenue_average")):
        metric_sql[name] = (f"CASE WHEN agg.revenue_currencies = 1 AND {'TRUE' if goal else 'FALSE'} "
                            f"THEN round(agg.{column}, 3) END")
    return {"revenue_currency": "agg.revenue_currency"}


def _dimensions_of(filters: Iterable[Filter]) -> set[str]:
    """Every dimension the filters (and their nested filters) read."""
    found: set[str] = set()
    for item in filters:
        if isinstance(item, Condition):
            found.add(item.dimension)
        else:
            found |= _dimensions_of(item.children)
    return found


def _conversion_rates(query: Query, sql: _Sql, dims: list[str], source: str, in_time: list[str],
                      into: tuple[list[str], list[str], dict[str, str]]) -> None:
    """CTEs, joins and SQL of conversion_rate and group_conversion_rate: the divisor is the same query without
    its top-level goal and property filters (and, per group, without the goal dimension)."""
    ctes, joins, metric_sql = into
    remaining = _top_level_without(query, GOAL, PROPS_PREFIX)
    totals_where = [_filter_sql(item, sql) for item in remaining] + in_time
    if not source:
        # The divisors read visits only if their own filters (or groups) need visit attributes.
        uses = _dimensions_of(remaining) | {d for d in query.dimensions if d != GOAL}
        source = "vev e" if uses & set(VISIT_COLUMNS) else "in_range e"
    if "conversion_rate" in query.metrics:
        ctes.append(f"cr_total AS (SELECT count(DISTINCT e.visitor_id) AS visitors FROM {source} "
                    f"WHERE {' AND '.join(totals_where) or 'TRUE'})")
        metric_sql["conversion_rate"] = ("coalesce(round(100.0 * agg.visitors / "
                                         "nullif((SELECT visitors FROM cr_total), 0), 1), 0)")
    if "group_conversion_rate" in query.metrics:
        groups = [i for i, d in enumerate(query.dimensions) if d != GOAL]
        # The divisor counts the events the numerator's groups count (a page's every event under a goal).
        group_where = totals_where + _dimension_conditions([query.dimensions[i] for i in groups],
                                                           [dims[i] for i in groups], pages_count_all(query))
        if len(groups) == 1 and (query.dimensions[groups[0]] in (*EVENT_COLUMNS, *VISIT_COLUMNS)
                                 or query.dimensions[groups[0]].startswith("time")):
            # Only the numerator's groups are joined: by one dimension never null, read only theirs (a goal's
            # pages through the page index, not every event of the range; the array is computed once).
            group_where.append(f"{dims[groups[0]]} = ANY(ARRAY(SELECT d{groups[0]} FROM agg))")
        ctes.append(
            f"gcr AS (SELECT {''.join(f'{dims[i]} AS g{i}, ' for i in groups)}count(DISTINCT e.visitor_id) AS visitors "
            f"FROM {source} WHERE {' AND '.join(group_where) or 'TRUE'}"
            f"{' GROUP BY ' + ', '.join(f'g{i}' for i in groups) if groups else ''})"
        )
        on = " AND ".join(_same(f"gcr.g{i}", f"agg.d{i}", query.dimensions[i]) for i in groups)
        joins.append(f"LEFT JOIN gcr ON {on or 'TRUE'}")
        metric_sql["group_conversion_rate"] = "coalesce(round(100.0 * agg.visitors / nullif(gcr.visitors, 0), 1), 0)"


def _engagements_cte(query: Query, sql: _Sql, visit_columns: set[str]) -> str:
    """``eng``: the range's engagement events (migration 0013) with their visit's ``visit_columns`` (from the
    visits table, whichever path the query takes) and the query's filters applied, shaped like ``matched``'s
    rows so that dimension and filter SQL reads them alike."""
    names = [name for name in VISIT_EXPRESSIONS if name in visit_columns]
    select = "".join(f", {TABLE_EXPRESSIONS[n]} AS v_{n}" for n in names)
    join = "JOIN sessions s ON s.site_id = r.site_id AND s.session_id = r.session_id " if names else ""
    where = [_filter_sql(item, sql) for item in query.filters]
    return (f"eng AS (SELECT * FROM (SELECT r.*, CAST('engagement' AS varchar) AS name{select} "
            f"FROM engagements r {join}WHERE r.site_id = :site AND r.timestamp >= :start AND r.timestamp < :end) e "
            f"WHERE {' AND '.join(where) or 'TRUE'})")


def _engagement_groups(query: Query, sql: _Sql, dims: list[str]) -> tuple[str, list[str]]:
    """The engagement rows (``eng``) as the groups of ``dims`` read them: the relation, joined with the goals
    when ``event:goal`` is a dimension, and the conditions a row needs to join a group.

    An engagement event completes only a goal whose event name is ``engagement`` (Plausible's goal join on its
    ``engagement`` events: a page goal wants a pageview, a custom-event goal its own name), so by ``event:goal``
    the page and custom-event goals find no engagement and their scroll depth and time on page are null; the
    top-level goal filters pick the goals as they do for the events."""
    groups = [c for c in _dimension_conditions(query.dimensions, dims) if c != "e.name = 'pageview'"]
    if GOAL not in query.dimensions:
        return "eng e", groups
    joined, sql.goal_joined = sql.goal_joined, True
    groups += [_goal_condition(item, sql) for item in query.filters
               if isinstance(item, Condition) and item.dimension == GOAL]
    sql.goal_joined = joined
    return f"eng e JOIN goals g ON g.site_id = :site AND {GOAL_MATCH}", groups


def _scroll_depth(query: Query, sql: _Sql, dims: list[str], into: tuple[list[str], list[str], dict[str, str]]) -> None:
    """CTEs, join and SQL of scroll_depth (Plausible's definition): the deepest scroll of each visit (in each
    group), averaged over the visits that reported one; percent, rounded half to even; null without any.

    Its components ride along hidden, for merging imported scroll depth (:mod:`services.analytics.imports`):
    ``__scroll_depth_total`` (the visits' depths summed, percent) and ``__scroll_depth_visits``."""
    ctes, joins, metric_sql = into
    d_cols = [f"d{i}" for i in range(len(dims))]
    relation, groups = _engagement_groups(query, sql, dims)
    ctes += [
        f"sd_visits AS (SELECT {''.join(f'{d} AS {c}, ' for d, c in zip(dims, d_cols, strict=True))}"
        f"e.session_id, max(e.scroll_depth) AS depth FROM {relation} "
        f"WHERE {' AND '.join(['e.scroll_depth IS NOT NULL', *groups])} "
        f"GROUP BY {', '.join([*d_cols, 'e.session_id'])})",
        f"sd AS (SELECT {''.join(f'{c}, ' for c in d_cols)}round(CAST(sum(depth) AS float8) / count(*)) AS depth, "
        f"sum(depth) AS total, count(*) AS visits FROM sd_visits{' GROUP BY ' + ', '.join(d_cols) if d_cols else ''})",
    ]
    on = " AND ".join(_same(f"sd.{c}", f"agg.{c}", dimension)
                      for c, dimension in zip(d_cols, query.dimensions, strict=True))
    joins.append(f"LEFT JOIN sd ON {on or 'TRUE'}")
    metric_sql["scroll_depth"] = "sd.depth"
    metric_sql["__scroll_depth_total"] = "coalesce(sd.total, 0)"
    metric_sql["__scroll_depth_visits"] = "coalesce(sd.visits, 0)"


def _same(left: str, right: str, dimension: str) -> str:
    """SQL: ``left IS NOT DISTINCT FROM right`` (nulls equal) for two columns of ``dimension``, as equalities
    a hash or merge join can use.

    PostgreSQL joins on ``IS NOT DISTINCT FROM`` only by a nested loop: a breakdown by day and page joined its
    per-group metrics (scroll depth, time on page) row by row, 2.1 s for 90 days of 12,000 events, 0.1 s
    hashed. A time bucket is never null; any other value is compared as text (a string, or ``visit:city``'s 0),
    its null told apart by an equality of its own.
    """
    if dimension.startswith("time"):
        return f"{left} = {right}"
    return (f"({left} IS NULL) = ({right} IS NULL) AND coalesce(CAST({left} AS text), '') = "
            f"coalesce(CAST({right} AS text), '')")


def _time_on_page(query: Query, sql: _Sql, dims: list[str], source: str, in_time: list[str],
                  into: tuple[list[str], list[str], dict[str, str]]) -> None:
    """CTEs, join and SQL of time_on_page, Plausible's current definition joined to its legacy one.

    From the site's first engagement event on (its local midnight, Plausible's ``legacy_time_on_page_cutoff``)
    a group's time is the engaged time its engagement events report, in seconds, divided by the visits that
    reported one (``top_new``, grouped by every dimension: a visit attribute, a time bucket or a property as
    the engagement event reads it). Before that day, the legacy definition (``top_pages``): the summed time to
    the visit's next event and the number of transitions; where both reach, the totals and the counts add up.
    As in Plausible (``Legacy.TimeOnPage.can_merge_legacy_time_on_page?``), the legacy part joins only a query
    without dimensions or by ``event:page`` alone; by any other dimensions the days before the cutoff have no
    time on page (null).

    Its components ride along hidden, for merging imported time on page (:mod:`services.analytics.imports`):
    ``__time_on_page_total`` (seconds, both parts) and ``__time_on_page_visits`` (visits and transitions).
    """
    ctes, joins, metric_sql = into
    d_cols = [f"d{i}" for i in range(len(dims))]
    relation, groups = _engagement_groups(query, sql, dims)
    ctes.append(
        f"top_new AS (SELECT {''.join(f'{d} AS {c}, ' for d, c in zip(dims, d_cols, strict=True))}"
        f"sum(e.engagement_time) / 1000.0 AS duration, count(DISTINCT e.session_id) AS visits FROM {relation} "
        f"WHERE {' AND '.join(groups) or 'TRUE'}{' GROUP BY ' + ', '.join(d_cols) if d_cols else ''})"
    )
    if query.dimensions:
        on = " AND ".join(_same(f"top_new.{c}", f"agg.{c}", dimension)
                          for c, dimension in zip(d_cols, query.dimensions, strict=True))
        joins.append(f"LEFT JOIN top_new ON {on}")
    if tuple(query.dimensions) not in ((), ("event:page",)):
        metric_sql["time_on_page"] = "round(CAST(top_new.duration / nullif(top_new.visits, 0) AS float8))"
        metric_sql["__time_on_page_total"] = "coalesce(top_new.duration, 0)"
        metric_sql["__time_on_page_visits"] = "coalesce(top_new.visits, 0)"
        return
    tz = sql.bind(query.date_range.timezone)
    cutoff = (f"(SELECT coalesce(date_trunc('day', min(timestamp) AT TIME ZONE {tz}) AT TIME ZONE {tz}, "
              "'infinity') FROM engagements WHERE site_id = :site)")
    legacy_where = [f"e.timestamp < {cutoff}"]
    # Plausible leaves out the top-level page filters (and, by page, the property filters) so that the
    # next event is seen whatever its page; pages are picked afterwards.
    dropped = ("event:page",) if "event:page" not in query.dimensions else ("event:page", PROPS_PREFIX)
    where = [_filter_sql(item, sql) for item in _top_level_without(query, *dropped)] + in_time + legacy_where
    if pages := [_filter_sql(item, sql) for item in query.filters
                 if isinstance(item, Condition) and item.dimension == "event:page"]:
        # Only a visit with an event on a page the filters keep (in the range, before the cutoff) has a transition
        # from such a page: the others' events are not read (found through the page index, migration 0015).
        where.append(f"e.session_id IN (SELECT e.session_id FROM events e WHERE e.site_id = :site "
                     f"AND e.timestamp >= :start AND e.timestamp < :end AND {' AND '.join([*pages, *legacy_where])})")
    ctes += [
        "top_events AS (SELECT e.session_id, e.pathname, e.timestamp, lead(e.pathname) OVER s AS next_pathname, "
        f"lead(e.timestamp) OVER s AS next_timestamp FROM {source} WHERE {' AND '.join(where) or 'TRUE'} "
        "WINDOW s AS (PARTITION BY e.session_id ORDER BY e.timestamp, e.id))",
        "top_pairs AS (SELECT pathname, next_pathname <> pathname AS transition, "
        "sum(extract(epoch FROM next_timestamp - timestamp)) AS duration FROM top_events "
        "WHERE next_timestamp IS NOT NULL GROUP BY pathname, next_pathname, session_id)",
        "top_pages AS (SELECT pathname, sum(duration) AS duration, count(*) FILTER (WHERE transition) AS transitions "
        "FROM top_pairs GROUP BY pathname)",
    ]
    if query.dimensions:
        joins.append("LEFT JOIN top_pages ON top_pages.pathname = agg.d0")
        metric_sql["time_on_page"] = (
            "round(CAST((coalesce(top_pages.duration, 0) + coalesce(top_new.duration, 0)) / "
            "nullif(coalesce(top_pages.transitions, 0) + coalesce(top_new.visits, 0), 0) AS float8))")
        metric_sql["__time_on_page_total"] = "coalesce(top_pages.duration, 0) + coalesce(top_new.duration, 0)"
        metric_sql["__time_on_page_visits"] = "coalesce(top_pages.transitions, 0) + coalesce(top_new.visits, 0)"
    else:
        ctes.append("top_old AS (SELECT sum(e.duration) AS duration, sum(e.transitions) AS transitions "
                    f"FROM top_pages e WHERE {' AND '.join(pages) or 'TRUE'})")
        metric_sql["time_on_page"] = (
            "(SELECT round(CAST((coalesce(o.duration, 0) + coalesce(n.duration, 0)) / "
            "nullif(coalesce(o.transitions, 0) + coalesce(n.visits, 0), 0) AS float8)) FROM top_old o, top_new n)")
        metric_sql["__time_on_page_total"] = (
            "(SELECT coalesce(o.duration, 0) + coalesce(n.duration, 0) FROM top_old o, top_new n)")
        metric_sql["__time_on_page_visits"] = (
            "(SELECT coalesce(o.transitions, 0) + coalesce(n.visits, 0) FROM top_old o, top_new n)")


def finish(query: Query, sql: _Sql, ctes: list[str], metric_sql: dict[str, str], join: str = "",
           extra: dict[str, str] | None = None) -> str:
    """The final SELECT over a CTE ``agg`` with dimension columns d0, d1, …: metrics, order, pagination;
    ``extra`` columns (name -> SQL) follow the metrics, for :func:`rows_to_result`."""
    unsupported = [m for m in query.metrics if m not in metric_sql]
    if unsupported:
        raise QueryError(f"metrics: {', '.join(unsupported)} not available yet")
    d_cols = [f"d{i}" for i in range(len(query.dimensions))]
    select = [f"agg.{col}" for col in d_cols] + [f"{metric_sql[m]} AS m_{m}" for m in query.metrics]
    select += [f"{expr} AS x_{name}" for name, expr in (extra or {}).items()]
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


def money(value: Decimal | None, currency: str | None) -> dict[str, Any] | None:
    """A revenue metric as Plausible answers it: ``{"currency", "value", "long", "short"}`` (``$1,659.50``,
    ``$1.7K``: CLDR's English formats, through Babel); None without a single currency."""
    if value is None or currency is None:
        return None
    amount = float(value)
    long = format_currency(value, currency, locale="en_US")
    if abs(amount) < 1000:
        short = format_currency(round(value, 1), currency, format="¤#,##0.0", locale="en_US", currency_digits=False)
    else:
        short = format_compact_currency(amount, currency, locale="en_US", fraction_digits=1)
        short = re.sub(r"(\d)([^\d.,]+)$", r"\1.0\2", short) if "." not in short else short
    return {"currency": currency, "long": long, "short": short, "value": amount}


def _metric_value(name: str, value: Any) -> Any:
    if value is None:
        return 0 if name not in ("percentage", "time_on_page", "scroll_depth") else None
    if name in ("visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "time_on_page",
                "scroll_depth"):
        return int(value)
    return float(value)


async def run(session: AsyncSession, query: Query, site_id: int,
              visits: Literal["window", "table"] = "window", goals: tuple[GoalDef, ...] | None = None) -> Result:
    """Answer ``query`` from the events (and their visits, see :func:`build`); a query whose visit filters keep
    few of the range's visits looks their events up visit by visit (see :data:`LOOKUP_SHARE`)."""
    statement, params = build(query, site_id, visits, goals)
    if visits != "table" or not await few_visits(session, query, site_id):
        return await execute(session, query, statement, params)
    for setting in LOOKUP_SETTINGS:
        await session.execute(text(f"SET LOCAL {setting} = off"))
    # Not in a ``finally``: a failed statement (a statement timeout) aborts the transaction, which takes the
    # settings with it, and a SET there would replace its error with "current transaction is aborted".
    result = await execute(session, query, statement, params)
    for setting in LOOKUP_SETTINGS:
        await session.execute(text(f"SET LOCAL {setting} TO DEFAULT"))
    return result


LOOKUP_SHARE = 0.15
"""The share of the range's visits under which the join path finds the events of the visits its visit filters
keep through the ``(site_id, session_id)`` index, visit by visit, rather than hashing them against every event
of the range. PostgreSQL costs such a lookup into the monthly partitions of ``events`` as a probe of every
partition; run-time pruning probes only the one or two of the visit's own time (:func:`visits_table_cte`), so
left alone it hashes a year's events even for a few percent of its visits. Measured at 10 M events over 12
months (docs/benchmarks.md, run 21): the pages of the visits from one country and source (3 % of the visits)
2.2 s hashed against 1.0 s looked up, of one country (12 %) 2.7 against 2.1 s."""
LOOKUP_SETTINGS = ("enable_hashjoin", "enable_mergejoin")
"""Off for a statement that looks its visits' events up (:data:`LOOKUP_SHARE`); the joins left are nested loops."""


def _visit_filters(query: Query) -> list[Filter]:
    """The query's top-level filters that read visit attributes only."""
    def visit_only(item: Filter) -> bool:
        if isinstance(item, Condition):
            return item.dimension in VISIT_COLUMNS
        return item.operator not in BEHAVIORAL_OPERATORS and all(visit_only(child) for child in item.children)
    return [item for item in query.filters if visit_only(item)]


async def few_visits(session: AsyncSession, query: Query, site_id: int) -> bool:
    """Whether PostgreSQL estimates that the query's visit filters keep at most :data:`LOOKUP_SHARE` of the
    visits the join path reads (those starting from a day before the range to its end): two ``EXPLAIN`` of the
    visits table, planned from its statistics in well under a millisecond each, nothing run. False without a
    visit filter, and for time on page, whose statement joins events with events."""
    filters = _visit_filters(query)
    if not filters or "time_on_page" in query.metrics:
        return False
    sql = _Sql({"site": site_id, "start": query.date_range.start, "end": query.date_range.end})
    columns = {VISIT_COLUMNS[d][0] for d in query.filtered_dimensions() if d in VISIT_COLUMNS}
    select = ", ".join(f"{TABLE_EXPRESSIONS[n]} AS v_{n}" for n in sorted(columns))
    visits = (f"SELECT {select} FROM sessions s WHERE s.site_id = :site AND s.started_at < :end "
              f"AND s.started_at >= CAST(:start AS timestamptz) - interval '{VISIT_SPAN.days} day'")
    kept = f"SELECT 1 FROM ({visits}) e WHERE {' AND '.join(_filter_sql(item, sql) for item in filters)}"
    estimates = []
    for statement in (kept, visits):
        plan = (await session.execute(text(f"EXPLAIN (FORMAT JSON) {statement}"), sql.params)).scalar_one()
        estimates.append(float(plan[0]["Plan"]["Plan Rows"]))
    return estimates[0] <= LOOKUP_SHARE * estimates[1]


async def execute(session: AsyncSession, query: Query, statement: str, params: dict[str, Any]) -> Result:
    """Run a statement built by :func:`finish` with the analytics settings; PostgreSQL's refusal of a regular
    expression becomes a :class:`QueryError` (400)."""
    await prepare(session)
    try:
        rows = (await session.execute(text(statement), params)).all()
    except DBAPIError as exc:
        if isinstance(exc.orig, psycopg.errors.InvalidRegularExpression):
            # PostgreSQL's own words (its regex dialect differs from Python's), not the driver's class name.
            reason = exc.orig.diag.message_primary or "not a valid PostgreSQL regular expression"
            raise QueryError(f"filters: invalid regular expression: {reason}") from None
        raise
    return rows_to_result(query, rows)


def rows_to_result(query: Query, rows: Sequence[Any]) -> Result:
    """Rows of a statement built by :func:`finish` as results in Plausible's shape."""
    n = len(query.dimensions)
    results = [
        {
            "dimensions": [_label(row[i], query) for i in range(n)],
            "metrics": [money(row[n + j], row._mapping["x_revenue_currency"]) if m in REVENUE_METRICS
                        else _metric_value(m, row[n + j]) for j, m in enumerate(query.metrics)],
        }
        for row in rows
    ]
    # Without dimensions the answer is always one row (all zeros when nothing matched), as the engine's
    # aggregate without GROUP BY gives it; a rollup or a split answer without rows says so here.
    total = int(rows[0][-1]) if rows else 0 if query.dimensions else 1
    if not query.dimensions and not results:
        results = [{"dimensions": [], "metrics": [None if m in REVENUE_METRICS else _metric_value(m, 0)
                                                  for m in query.metrics]}]
    return Result(results, total)


def response(query: Query, result: Result, now: datetime) -> dict[str, Any]:
    """Plausible's response shape: results, meta, query."""
    meta: dict[str, Any] = dict(result.meta)
    if query.time_labels:
        meta["time_labels"] = time_labels(query)
    if query.total_rows:
        meta["total_rows"] = result.total_rows
    revenue = [m for m in query.metrics if m in REVENUE_METRICS]
    if revenue and GOAL not in {*query.dimensions, *query.filtered_dimensions()}:
        # Plausible's answer when no revenue goal matches: the metrics are null, and why.
        meta["metric_warnings"] = {**meta.get("metric_warnings", {}), **{
            m: {"code": "no_revenue_goals_matching",
                "warning": "Revenue metrics are null as there are no matching revenue goals."} for m in revenue}}
    if query.imports and "imports_included" not in meta:
        # Plausible's meta when imports are asked for and nothing decided otherwise (services.analytics.imports
        # sets these fields whenever it looked at the site's imports).
        meta["imports_included"] = False
        meta["imports_skip_reason"] = "no_imported_data"
    zone = ZoneInfo(query.date_range.timezone)
    return {
        "results": result.rows,
        "meta": dict(sorted(meta.items())),
        "query": {
            "site_id": query.site,
            "metrics": list(query.metrics),
            "date_range": [query.date_range.start.astimezone(zone).isoformat(), _last_second(query).isoformat()],
            "dimensions": list(query.dimensions),
            "filters": [_filter_json(item) for item in query.filters],
            "order_by": [list(pair) for pair in (query.order_by or _default_order(query))],
            # Plausible's QueryResult echoes the include options that are on, and only those.
            "include": {key: True for key, on in (("imports", query.imports), ("time_labels", query.time_labels),
                                                  ("total_rows", query.total_rows)) if on},
            "pagination": {"limit": query.limit, "offset": query.offset},
        },
    }


def legacy_time_on_page_warning(cutoff: date) -> dict[str, str]:
    """Plausible's ``metric_warnings.time_on_page`` when a range reaches before the site's first engagement event
    (``cutoff``, a local date): the part before it uses the legacy definition."""
    return {"code": "legacy_time_on_page_used",
            "message": f"This period includes data calculated with the legacy time on page method up to {cutoff}"}


def _last_second(query: Query) -> datetime:
    """The range's last second in the site's time zone, as Plausible's ``query.date_range`` ends: 23:59:59 of the
    last day for days (``day`` too, though Beacon counts today up to now), the given end for date-times."""
    zone = ZoneInfo(query.date_range.timezone)
    raw = query.raw_date_range
    if raw == "24h" or (isinstance(raw, list) and any("T" in str(part) for part in raw)):
        return (query.date_range.end - timedelta(seconds=1)).astimezone(zone)
    return datetime.combine(query.date_range.last_day, time(23, 59, 59), zone)


def _filter_json(item: Filter) -> list[Any]:
    if isinstance(item, Condition):
        base: list[Any] = [item.operator, item.dimension, list(item.clauses)]
        return [*base, {"case_sensitive": False}] if not item.case_sensitive else base
    if item.operator in ("not", *BEHAVIORAL_OPERATORS):
        return [item.operator, _filter_json(item.children[0])]
    return [item.operator, [_filter_json(child) for child in item.children]]

