"""Where each query's answer lives: one decision per query, as Plausible's ``TableDecider`` makes it.

:func:`decide` is a pure function of the query (and of how far the rollups reach); :func:`answer` runs the
plan. Every source gives the raw engine's answer exactly (the tests compare them on random queries):

=========  ==================================================================================================
rollups    no filter, at most one rolled-up dimension besides time, whole local days already rolled up
visits     every dimension and filter a visit attribute (or time), metrics of visits: one row per visit from
           the visits table, no event read but those of visits crossing the range's or a bucket's edge
events     no visit attribute and no session metric: the range's events alone
join       the rest (event filters or dimensions with visit filters, dimensions or session metrics, goals,
           conversion rates, time on page): the range's events joined with their visits' rows
=========  ==================================================================================================

A rate of visitors whose divisor is another query (``conversion_rate``, a filtered report's ``percentage``,
a goal-filtered report's ``group_conversion_rate``: :func:`divisor_apart`, :func:`percentage_apart`,
:func:`group_divisor_apart`), the pages report's scroll depth (:func:`scroll_depth_apart`) and the bounce rate
under a page filter (:func:`bounce_apart`) are served apart,
each part from its own cheapest source; a filtered percentage whose two parts the rollups hold, in one
statement (:func:`_percentage_rolled_up`).

The raw engine (``engine.run`` with ``visits="window"``) computes visits from the events with window functions;
it is kept as the reference the other paths are measured and tested against, not served.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.metrics import ANALYTICS_QUERY_SECONDS
from services.analytics import engine, imports, rollups, visits
from services.analytics.engine import GOAL, VISIT_COLUMNS, Result
from services.analytics.imports import EVERYTHING
from services.analytics.query import PROPS_PREFIX, SESSION_METRICS, Condition, Filter, Query


class Source(enum.StrEnum):
    ROLLUPS = "rollups"
    VISITS = "visits"
    EVENTS = "events"
    JOIN = "join"


@dataclass(frozen=True)
class Plan:
    source: Source
    reason: str
    """Why, in words (logged and shown by the benchmark)."""


def needs_visits(query: Query) -> bool:
    """Whether the query reads a visit attribute or a session metric."""
    uses = {*query.dimensions, *query.filtered_dimensions()}
    return bool(SESSION_METRICS & set(query.metrics)) or any(d in VISIT_COLUMNS for d in uses)


def decide(query: Query, state: rollups.State | None) -> Plan:
    """The cheapest exact source for ``query``; ``state``: how far the site's rollups reach (None: none)."""
    if rollups.applicable(query) and state is not None and state.rolled_for(query) >= query.date_range.first_day:
        return Plan(Source.ROLLUPS, "unfiltered, rolled up")
    if visits.applicable(query):
        return Plan(Source.VISITS, "visit attributes and visit metrics only")
    if not needs_visits(query):
        return Plan(Source.EVENTS, "no visit attribute or session metric")
    return Plan(Source.JOIN, "event and visit attributes together")


async def answer(session: AsyncSession, query: Query, site_id: int) -> Result:
    """The answer to ``query`` from the source :func:`decide` picks, with imported stats merged in when the
    query asks for them and Plausible's rules allow (see :mod:`services.analytics.imports`); the imports' meta
    fields ride on the result."""
    found = await imports.resolve(session, query, site_id)
    if found.included:
        result = await imports.answer(session, query, site_id, found,
                                      lambda inner: native(session, inner, site_id))
    else:
        result = await native(session, query, site_id)
    result.meta.update(found.meta())
    if (warning := await imports.scroll_depth_warning(session, query, found)) is not None:
        result.meta["metric_warnings"] = {**result.meta.get("metric_warnings", {}), "scroll_depth": warning}
    return result


def divisor_apart(query: Query) -> tuple[Query, Query] | None:
    """``(query without conversion_rate but with visitors, its divisor's query)`` when ``conversion_rate`` can be
    computed from two answers the planner serves separately; None when it cannot (the rate orders the rows).

    The divisor of ``conversion_rate`` is, by its definition (see :mod:`services.analytics.engine`), the
    visitors of the same query without its top-level goal and property filters and without dimensions: a
    query the rollups or the visits table usually answer, where the engine counted it from every event of
    the range."""
    if "conversion_rate" not in query.metrics or "conversion_rate" in _ordering(query):
        return None  # two rates rounding alike would order their rows by the rounded value
    return _apart(query, "conversion_rate", tuple(engine._top_level_without(query, GOAL, PROPS_PREFIX)))


def percentage_apart(query: Query) -> tuple[Query, Query] | None:
    """``(query without percentage but with visitors, its divisor's query)`` when a filtered ``percentage`` by one
    visit attribute can be computed from two answers the rollups serve: the dashboard's sources, countries,
    devices and browsers panels under a filter. None otherwise (no filter: the rollups hold the percentage
    themselves; other dimensions; the rate orders the rows; the rollups cannot answer the groups).

    The divisor of ``percentage`` is, by its definition (see :mod:`services.analytics.engine`), the visitors
    matching the filters, among those with a value where a dimension leaves empty values out (the country,
    pages, UTM tags): the same query without dimensions, plus ``is_not ''`` on such a dimension unless a
    filter already keeps one non-empty value of it (for the country under one source, page or event name the
    rollups hold that too: ``rollups.PAIR_TOTALS``). The rollups' own percentage divides by the unfiltered
    visitors, so without this a filtered panel read every event or visit of the range (1.7-4 s over 12 months
    of 10 M events, docs/benchmarks.md). Where the rollups hold both parts, :func:`native` asks them in one
    statement (:func:`_percentage_rolled_up`)."""
    if "percentage" not in query.metrics or not query.filters or len(query.dimensions) != 1:
        return None
    dimension = query.dimensions[0]
    if dimension not in VISIT_COLUMNS or "percentage" in _ordering(query):
        return None
    inner, divisor = _apart(query, "percentage", query.filters)
    if not rollups.applicable(inner):
        return None
    if VISIT_COLUMNS[dimension][1] is None and not any(
            isinstance(f, Condition) and f.dimension == dimension and f.operator == "is" and "" not in f.clauses
            for f in query.filters):
        divisor = dataclasses.replace(divisor, filters=(*divisor.filters, Condition("is_not", dimension, ("",))))
    return inner, divisor


def scroll_depth_apart(query: Query) -> tuple[Query, Query] | None:
    """``(query without scroll depth, its scroll depth's query)`` when the pages panel's other metrics (visitors,
    pageviews) are rolled up: the scroll depth of the pages it lists is then read from the engagement events
    alone (:func:`engine.build_scroll_depth`), where the whole query read every event of the range joined with
    its visit (3-4 s over 12 months of 10 M events, the dashboard's pages panel without any filter). None
    otherwise, or when the depth orders the rows.

    The same answer: a page's scroll depth is computed from the engagement events on that page only (see
    :mod:`services.analytics.engine`), whatever else the query asks."""
    depth = tuple(m for m in query.metrics if m in engine.SCROLL_DEPTH_METRICS)
    rest = tuple(m for m in query.metrics if m not in engine.SCROLL_DEPTH_METRICS)
    if not depth or not rest or query.dimensions != ("event:page",) or set(depth) & set(_ordering(query)):
        return None
    inner = dataclasses.replace(query, metrics=rest)
    if not rollups.applicable(inner):
        return None
    return inner, dataclasses.replace(query, metrics=depth, order_by=(), time_labels=False, total_rows=False,
                                      offset=0)


def group_divisor_apart(query: Query) -> tuple[Query, Query] | None:
    """``(query without group_conversion_rate but with visitors, its divisors' query)`` when grouped by one visit
    attribute: the dashboard's sources, countries, devices, browsers and entry pages panels under a goal filter.
    None otherwise, or when the rate orders the rows.

    The divisor of ``group_conversion_rate`` is, by its definition (see :mod:`services.analytics.engine`), each
    group's visitors in the same query without its top-level goal and property filters: the same groups of a
    query without them, which the rollups hold (a goal filter alone: the unfiltered report). Served together,
    the engine counted those divisors from every event of the range joined with its visit (13 s for the
    sources of a goal over 12 months of 10 M events)."""
    if ("group_conversion_rate" not in query.metrics or len(query.dimensions) != 1
            or query.dimensions[0] not in VISIT_COLUMNS or "group_conversion_rate" in _ordering(query)):
        return None
    inner, divisor = _apart(query, "group_conversion_rate",
                            tuple(engine._top_level_without(query, GOAL, PROPS_PREFIX)))
    return inner, dataclasses.replace(divisor, dimensions=query.dimensions, limit=EVERYTHING)


def bounce_apart(query: Query) -> tuple[Query, Query] | None:
    """``(query without bounce_rate, its bounce rate's query)`` when ``bounce_rate`` under a page filter can be
    read apart from the rollups: the same query with the page filter applied to the entry page too, whose every
    visit counts (``event:page is /`` and ``visit:entry_page is /``, ``rollups.bounce_read``). None otherwise
    (the join computes the whole query in one statement), or when the rate orders the rows.

    The same answer: the bounce rate under a page filter is, by its definition (Plausible's, see
    ``engine.bounce_entry_filter``), that of the filtered visits whose entry page the filter keeps, which are
    the visits of the query with that filter on the entry page; a group without such a visit has 0."""
    entry = engine.bounce_entry_filter(query)
    if ("bounce_rate" not in query.metrics or entry is None or entry in query.filters
            or "bounce_rate" in _ordering(query) or any(m.startswith("__") for m in query.metrics)):
        return None
    entered = dataclasses.replace(query, metrics=("bounce_rate",), filters=(*query.filters, entry), order_by=(),
                                  time_labels=False, total_rows=False, offset=0, limit=EVERYTHING)
    if not rollups.applicable(entered):
        return None
    metrics = tuple(m for m in query.metrics if m != "bounce_rate")
    return dataclasses.replace(query, metrics=metrics or ("visitors",)), entered


def _ordering(query: Query) -> list[str]:
    """The names the rows are ordered by: ``order_by``'s, else the first metric's when grouped by other than time."""
    return [name for name, _ in query.order_by] or (
        [query.metrics[0]] if query.dimensions and query.time_dimension is None else [])


def _apart(query: Query, metric: str, filters: tuple[Filter, ...]) -> tuple[Query, Query]:
    """``query`` without ``metric`` (with visitors, which the rate divides), and the visitors of ``filters``
    over the same range without dimensions: the two answers a rate of visitors is computed from."""
    metrics = tuple(m for m in query.metrics if m != metric)
    inner = dataclasses.replace(query, metrics=metrics if "visitors" in metrics else (*metrics, "visitors"))
    divisor = dataclasses.replace(query, metrics=("visitors",), dimensions=(), filters=filters, order_by=(),
                                  time_labels=False, total_rows=False, offset=0)
    return inner, divisor


def _rate(visitors: int, total: int) -> float:
    """``round(100.0 * visitors / total, 1)`` as PostgreSQL's numeric computes it (half away from zero); 0 without
    visitors in the divisor."""
    if not total:
        return 0.0
    return float((Decimal(100 * visitors) / Decimal(total)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def goal_as_name(query: Query, goals: tuple[engine.GoalDef, ...]) -> Query | None:
    """``query`` with its one filter ``event:goal is <goal>`` as ``event:name is <the goal's event>`` when that
    goal is a custom-event goal (``Signup``: events named Signup), so the rollups of event names answer it; None
    otherwise (page goals keep only pageviews of their path, which no rolled-up filter keeps).

    The same answer: a custom-event goal is completed by exactly the events of its name, and every metric
    counts the events (or the visits and visitors with events) that the filter keeps."""
    if len(query.filters) != 1 or not isinstance(cond := query.filters[0], Condition) or cond.dimension != GOAL \
            or cond.operator != "is":
        return None
    named = engine._named_goals(cond, goals)
    if not named or len(named) != 1 or named[0].event_name is None or named[0].event_name == "pageview":
        return None
    return dataclasses.replace(query, filters=(Condition("is", "event:name", (named[0].event_name,)),))


def served_as(query: Query, goals: tuple[engine.GoalDef, ...] | None) -> Query:
    """``query`` as :func:`native` answers it: with its one custom-event goal filter read as the event's name
    (:func:`goal_as_name`) when the rollups hold that, else unchanged; ``goals``: the site's, None when the query
    has no goal filter or dimension."""
    if goals is None or GOAL in query.dimensions:
        return query
    named = goal_as_name(query, goals)
    return named if named is not None and rollups.applicable(named) else query


async def native(session: AsyncSession, query: Query, site_id: int) -> Result:
    """The answer to ``query`` from Beacon's own events, from the source :func:`decide` picks."""
    for metric, apart in (("conversion_rate", divisor_apart), ("percentage", percentage_apart),
                          ("group_conversion_rate", group_divisor_apart)):
        if (split := apart(query)) is not None:
            if metric == "percentage" and (rolled := await _percentage_rolled_up(session, query, site_id, *split)):
                return rolled
            return await _rate_apart(session, query, site_id, metric, *split)
    if (split := scroll_depth_apart(query)) is not None:
        return await _scroll_depth_apart(session, query, site_id, *split)
    if (split := bounce_apart(query)) is not None:
        return await _bounce_apart(session, query, site_id, *split)
    # The site's goals, read once: a goal filter may be read as its event's name, and the join reads them.
    goals = await engine.load_goals(session, site_id) if GOAL in {
        *query.dimensions, *query.filtered_dimensions()} else None
    query = served_as(query, goals)
    state = (await rollups.rolled_until(session, site_id, query.date_range.timezone)
             if rollups.applicable(query) else None)
    plan = decide(query, state)
    with ANALYTICS_QUERY_SECONDS.labels(plan.source.value).time():
        if plan.source is Source.ROLLUPS:
            assert state is not None
            return await rollups.run(session, query, site_id, state)
        if plan.source is Source.VISITS:
            return await visits.run(session, query, site_id)
        return await engine.run(session, query, site_id, "table", goals)


async def _percentage_rolled_up(session: AsyncSession, query: Query, site_id: int, inner: Query, divisor: Query
                                ) -> Result | None:
    """The answer to ``query`` (a filtered report with ``percentage``, see :func:`percentage_apart`) from the
    rollups in one statement, when they hold both ``inner`` and its ``divisor`` with the same days since they
    end (``rollups.percentage_read``): a range reaching into today computes those days once, not once for each
    (countries under a page over the current month at 10 M events: 398 ms for the two, docs/benchmarks.md).
    None otherwise (:func:`_rate_apart` serves it)."""
    if (total := rollups.percentage_read(query, divisor)) is None:
        return None
    state = await rollups.rolled_until(session, site_id, query.date_range.timezone)
    if state is None or decide(inner, state).source is not Source.ROLLUPS \
            or decide(divisor, state).source is not Source.ROLLUPS:
        return None
    with ANALYTICS_QUERY_SECONDS.labels(Source.ROLLUPS.value).time():
        return await rollups.run(session, query, site_id, state, total)


async def _rate_apart(session: AsyncSession, query: Query, site_id: int, metric: str, inner: Query,
                      divisor: Query) -> Result:
    """The answer to ``query`` whose rate ``metric`` is each row's visitors over the visitors the answer to
    ``divisor`` gives it (its one row, or the row of its group when the divisor is grouped: see
    :func:`divisor_apart`, :func:`percentage_apart`, :func:`group_divisor_apart`), each query served from its
    own cheapest source."""
    result = await native(session, inner, site_id)
    totals = {tuple(row["dimensions"]): int(row["metrics"][0] or 0)
              for row in (await native(session, divisor, site_id)).rows}
    grouped = [query.dimensions.index(d) for d in divisor.dimensions]
    at, visitors = query.metrics.index(metric), inner.metrics.index("visitors")
    for row in result.rows:
        values = list(row["metrics"])
        rate = _rate(int(values[visitors]), totals.get(tuple(row["dimensions"][i] for i in grouped), 0))
        values = values[:len(query.metrics) - 1] if len(inner.metrics) == len(query.metrics) else values
        row["metrics"] = [*values[:at], rate, *values[at:]]
    return result


async def _bounce_apart(session: AsyncSession, query: Query, site_id: int, inner: Query, entered: Query) -> Result:
    """The answer to ``query`` from the answer to ``inner`` and the bounce rates of ``entered``'s groups (see
    :func:`bounce_apart`): a group without a visit entering on the filtered page has bounce rate 0."""
    result = await native(session, inner, site_id)
    rates = {tuple(row["dimensions"]): row["metrics"][0] for row in (await native(session, entered, site_id)).rows}
    none = engine._metric_value("bounce_rate", None)
    for row in result.rows:
        values = dict(zip(inner.metrics, row["metrics"], strict=True))
        values["bounce_rate"] = rates.get(tuple(row["dimensions"]), none)
        row["metrics"] = [values[m] for m in query.metrics]
    return result


async def _scroll_depth_apart(session: AsyncSession, query: Query, site_id: int, inner: Query,
                              depth: Query) -> Result:
    """The answer to ``query`` from the answer to ``inner`` and the scroll depths of its pages (see
    :func:`scroll_depth_apart`): a page without engagement events has none (and no components)."""
    result = await native(session, inner, site_id)
    pages = tuple(str(row["dimensions"][0]) for row in result.rows)
    found: dict[str, dict[str, object]] = {}
    if pages:
        # Only the listed pages' engagement events: the same groups, each from its own events. Unlimited: a
        # path holding '*' is a pattern to a page filter and may bring more pages than those listed.
        listed = dataclasses.replace(depth, filters=(*depth.filters, Condition("is", "event:page", pages)),
                                     limit=EVERYTHING)
        with ANALYTICS_QUERY_SECONDS.labels(Source.EVENTS.value).time():
            statement, params = engine.build_scroll_depth(listed, site_id)
            answered = await engine.execute(session, listed, statement, params)
        found = {str(row["dimensions"][0]): dict(zip(depth.metrics, row["metrics"], strict=True))
                 for row in answered.rows}
    empty = {m: engine._metric_value(m, None if m == "scroll_depth" else 0) for m in depth.metrics}
    for row in result.rows:
        values = {**dict(zip(inner.metrics, row["metrics"], strict=True)),
                  **found.get(str(row["dimensions"][0]), empty)}
        row["metrics"] = [values[m] for m in query.metrics]
    return result
