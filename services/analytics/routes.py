"""Internal endpoints of the analytics service."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import Body, FromPath, FromQuery

from app.core.errors import NotFound
from app.core.internal import internal_token_guard
from app.core.resources import Resources
from services.analytics import engine, logic, planner, v1
from services.analytics.cache import cached
from services.analytics.query import parse_query
from services.analytics.schemas import DailyCount, PageviewCount


@get("/sites/{site_id:int}/pageviews", guards=[internal_token_guard])
async def site_pageviews(request: Request[Any, Any, Any], site_id: FromPath[int], date_from: FromQuery[date],
                         date_to: FromQuery[date]) -> PageviewCount:
    """Pageviews of a site between two local dates, inclusive."""
    logic.check_range(date_from, date_to)
    resources: Resources = request.app.state.resources
    async with resources.sessions() as session:
        tz = await logic.site_timezone(session, site_id)
        start, end = logic.bounds(date_from, date_to, tz)
        count = await logic.pageviews(session, site_id, start, end)
    return PageviewCount(site_id=site_id, date_from=date_from, date_to=date_to, timezone=tz, pageviews=count)


@get("/sites/{site_id:int}/pageviews/daily", guards=[internal_token_guard])
async def site_daily_pageviews(request: Request[Any, Any, Any], site_id: FromPath[int], date_from: FromQuery[date],
                               date_to: FromQuery[date]) -> list[DailyCount]:
    """Pageviews per local day between two dates, inclusive."""
    logic.check_range(date_from, date_to)
    resources: Resources = request.app.state.resources
    async with resources.sessions() as session:
        tz = await logic.site_timezone(session, site_id)
        days = await logic.daily_pageviews(session, site_id, date_from, date_to, tz)
    return [DailyCount(date=day, pageviews=n) for day, n in days]


@post("/query", guards=[internal_token_guard], status_code=200)
async def stats_query(request: Request[Any, Any, Any], data: Annotated[dict[str, Any], Body()]) -> Any:
    """Plausible's Stats API v2 query (the api has authenticated the caller for ``site_id``)."""
    resources: Resources = request.app.state.resources
    now = datetime.now(UTC)
    async with resources.sessions() as session:
        site_id, tz, stats_start = await logic.site_for_query(session, str(data.get("site_id", "")))
        query = parse_query(data, timezone=tz, now=now, stats_start=stats_start)

        async def compute() -> dict[str, Any]:
            return engine.response(query, await planner.answer(session, query, site_id), now)

        return await cached(resources.redis, resources.keys, resources.settings.analytics.cache_ttl, "v2",
                            site_id, data, compute)


V1_HANDLERS = {"aggregate": v1.aggregate, "timeseries": v1.timeseries, "breakdown": v1.breakdown}


@get("/v1/{endpoint:str}", guards=[internal_token_guard])
async def stats_v1(request: Request[Any, Any, Any], endpoint: FromPath[str]) -> Any:
    """Plausible's Stats API v1: aggregate, timeseries, breakdown and realtime-visitors."""
    resources: Resources = request.app.state.resources
    params = dict(request.query_params.items())
    now = datetime.now(UTC)
    async with resources.sessions() as session:
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
