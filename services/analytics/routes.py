"""Internal endpoints of the analytics service."""

from __future__ import annotations

from datetime import date
from typing import Any

from litestar import Request, get
from litestar.params import FromPath, FromQuery

from app.core.internal import internal_token_guard
from app.core.resources import Resources
from services.analytics import logic
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
