"""Internal endpoints of the analytics service.

Every query runs within the analytics query budget (``BEACON_ANALYTICS_QUERY_BUDGET``, below the api's
timeout): PostgreSQL cancels a statement that exceeds it, and the caller gets a 503 naming the budget rather
than a timeout of its own while the work goes on. A caller that disconnects earlier cancels the work too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from litestar import Request, get, post
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Stream
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.contracts import EventsReceived, PropertyKeys
from app.core.errors import ClientError, NotFound, ServiceUnavailable
from app.core.internal import internal_token_guard
from app.core.resources import ResourcesDep
from services.analytics import engine, export, logic, planner, v1
from services.analytics.cache import cached
from services.analytics.query import check_goals_exist, parse_query, resolve_date_range
from services.analytics.schemas import DailyCount, PageviewCount

T = TypeVar("T")


class OverBudget(ServiceUnavailable):
    """A query ran longer than the analytics query budget and was stopped."""

    title = "Query over budget"


@asynccontextmanager
async def budgeted(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    """A session whose statements PostgreSQL stops at the query budget; that stop raises :class:`OverBudget`."""
    budget = resources.settings.analytics.query_budget
    async with resources.sessions() as session:
        await session.execute(text("SELECT set_config('statement_timeout', :ms, true)"),
                              {"ms": str(max(1, round(budget * 1000)))})
        try:
            yield session
        except DBAPIError as exc:
            if "statement timeout" not in str(exc):
                raise
            raise OverBudget(f"the query ran longer than its budget of {budget:g} s and was stopped; "
                             "a shorter date range or fewer filters may fit") from None


async def unless_disconnected(request: Request[Any, Any, Any], work: Awaitable[T]) -> T:
    """Await ``work``; cancel it (and with it the running statement) if the caller hangs up first."""
    task = asyncio.ensure_future(work)

    async def hung_up() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(hung_up())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        raise ServiceUnavailable("the caller gave up; the query was cancelled")
    return task.result()


@get("/sites/{site_id:int}/pageviews", guards=[internal_token_guard])
async def site_pageviews(resources: ResourcesDep, site_id: FromPath[int], date_from: FromQuery[date],
                         date_to: FromQuery[date]) -> PageviewCount:
    """Pageviews of a site between two local dates, inclusive."""
    logic.check_range(date_from, date_to)
    async with resources.sessions() as session:
        tz = await logic.site_timezone(session, site_id)
        start, end = logic.bounds(date_from, date_to, tz)
        count = await logic.pageviews(session, site_id, start, end)
    return PageviewCount(site_id=site_id, date_from=date_from, date_to=date_to, timezone=tz, pageviews=count)


@get("/sites/{site_id:int}/pageviews/daily", guards=[internal_token_guard])
async def site_daily_pageviews(resources: ResourcesDep, site_id: FromPath[int], date_from: FromQuery[date],
                               date_to: FromQuery[date]) -> list[DailyCount]:
    """Pageviews per local day between two dates, inclusive."""
    logic.check_range(date_from, date_to)
    async with resources.sessions() as session:
        tz = await logic.site_timezone(session, site_id)
        days = await logic.daily_pageviews(session, site_id, date_from, date_to, tz)
    return [DailyCount(date=day, pageviews=n) for day, n in days]


@get("/sites/{site_id:int}/property-keys", guards=[internal_token_guard])
async def site_property_keys(resources: ResourcesDep, site_id: FromPath[int], date_to: FromQuery[date],
                             date_from: FromQuery[date | None] = None, limit: FromQuery[int] = 50) -> PropertyKeys:
    """Custom property keys seen between two local dates, inclusive (without ``date_from``: since the site's
    first event), for the dashboard's property picker."""
    if not 1 <= limit <= 1000:
        raise ClientError("limit: an integer from 1 to 1000")
    async with budgeted(resources) as session:
        tz = await logic.site_timezone(session, site_id)
        first = date_from or await logic.first_day(session, site_id, tz) or date_to
        logic.check_range(first, date_to)
        start, end = logic.bounds(first, date_to, tz)
        keys = await logic.property_keys(session, site_id, start, end, limit)
    return PropertyKeys(site_id=site_id, date_from=first, date_to=date_to, keys=keys)


@get("/sites/{site_id:int}/received", guards=[internal_token_guard])
async def site_received(resources: ResourcesDep, site_id: FromPath[int]) -> EventsReceived:
    """Whether any event of the site is stored (404 for an unknown site), for the setup page."""
    async with budgeted(resources) as session:
        await logic.site_timezone(session, site_id)
        received = await logic.has_events(session, site_id)
    return EventsReceived(site_id=site_id, received=received)


@post("/query", guards=[internal_token_guard], status_code=200)
async def stats_query(request: Request[Any, Any, Any], resources: ResourcesDep,
                      data: Annotated[dict[str, Any], Body()], public: FromQuery[bool] = False) -> Any:
    """Plausible's Stats API v2 query (the api has authenticated the caller for ``site_id``); ``public``: asked
    through the public Stats API, which holds it to the rules Plausible's dashboard is not held to."""
    now = datetime.now(UTC)

    async def answer() -> Any:
        async with budgeted(resources) as session:
            site_id, tz, stats_start = await logic.site_for_query(session, str(data.get("site_id", "")))
            query = parse_query(data, timezone=tz, now=now, stats_start=stats_start, public=public)
            if "event:goal" in query.filtered_dimensions():
                check_goals_exist(query, await logic.goal_names(session, site_id))

            async def compute() -> dict[str, Any]:
                result = await planner.answer(session, query, site_id)
                # Plausible warns only where the legacy part joins: no dimensions or event:page alone.
                if "time_on_page" in query.metrics and tuple(query.dimensions) in ((), ("event:page",)):
                    cutoff = await logic.engagement_cutoff(session, site_id, tz)
                    if cutoff is not None and query.date_range.start < cutoff:
                        result.meta["metric_warnings"] = {
                            **result.meta.get("metric_warnings", {}),
                            "time_on_page": engine.legacy_time_on_page_warning(cutoff.astimezone(ZoneInfo(tz)).date())}
                return engine.response(query, result, now)

            return await cached(resources.redis, resources.keys, resources.settings.analytics.cache_ttl, "v2",
                                site_id, data, compute)

    return await unless_disconnected(request, answer())


@get("/sites/{site_id:int}/export", guards=[internal_token_guard])
async def site_export(resources: ResourcesDep, site_id: FromPath[int],
                      date_range: FromQuery[str] = "all") -> Stream:
    """The site's stats as a zip of Plausible's CSV export files, streamed (see :mod:`services.analytics.export`).

    ``date_range``: ``YYYY-MM-DD,YYYY-MM-DD`` or a Stats API shortcut (``all``, ``30d``, ``12mo``, ...); whole
    local days. The range is checked (400) before the first byte is sent.
    """
    now = datetime.now(UTC)
    async with resources.sessions() as session:
        domain, tz, stats_start = await logic.site_for_export(session, site_id)
    value: Any = date_range.split(",") if "," in date_range else date_range
    dr = resolve_date_range(value, tz, now, stats_start)
    first, last = dr.first_day, dr.last_day
    logic.check_range(first, last)

    async def body() -> AsyncIterator[bytes]:
        async with resources.sessions() as session:
            async for chunk in export.stream(session, site_id, domain, tz, first, last):
                yield chunk

    name = f"{domain.replace('/', '_')}_{first:%Y%m%d}_{last:%Y%m%d}.zip"
    return Stream(body(), media_type="application/zip",
                  headers={"Content-Disposition": f'attachment; filename="{name}"'})


V1_HANDLERS = {"aggregate": v1.aggregate, "timeseries": v1.timeseries, "breakdown": v1.breakdown}


@get("/v1/{endpoint:str}", guards=[internal_token_guard])
async def stats_v1(request: Request[Any, Any, Any], resources: ResourcesDep, endpoint: FromPath[str]) -> Any:
    """Plausible's Stats API v1: aggregate, timeseries, breakdown and realtime-visitors."""
    params = dict(request.query_params.items())
    now = datetime.now(UTC)

    async def answer() -> Any:
        async with budgeted(resources) as session:
            site_id, tz, stats_start = await logic.site_for_query(session, params.get("site_id", ""))
            if endpoint == "realtime-visitors":
                return await v1.realtime_visitors(session, site_id, now)
            handler = V1_HANDLERS.get(endpoint)
            if handler is None:
                raise NotFound(f"no Stats API v1 endpoint {endpoint!r}")

            async def compute() -> dict[str, Any]:
                return await handler(session, site_id, tz, stats_start, params, now)

            return await cached(resources.redis, resources.keys, resources.settings.analytics.cache_ttl, endpoint,
                                site_id, params, compute)

    return await unless_disconnected(request, answer())
