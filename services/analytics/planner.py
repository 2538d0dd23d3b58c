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

The raw engine (``engine.run`` with ``visits="window"``) computes visits from the events with window functions;
it is kept as the reference the other paths are measured and tested against, not served.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.metrics import ANALYTICS_QUERY_SECONDS
from services.analytics import engine, imports, rollups, visits
from services.analytics.engine import VISIT_COLUMNS, Result
from services.analytics.query import SESSION_METRICS, Query


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
    return result


async def native(session: AsyncSession, query: Query, site_id: int) -> Result:
    """The answer to ``query`` from Beacon's own events, from the source :func:`decide` picks."""
    state = (await rollups.rolled_until(session, site_id, query.date_range.timezone)
             if rollups.applicable(query) else None)
    plan = decide(query, state)
    with ANALYTICS_QUERY_SECONDS.labels(plan.source.value).time():
        if plan.source is Source.ROLLUPS:
            assert state is not None
            return await rollups.run(session, query, site_id, state)
        if plan.source is Source.VISITS:
            return await visits.run(session, query, site_id)
        return await engine.run(session, query, site_id, "table")

