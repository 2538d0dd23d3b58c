"""Internal endpoints of the compute service."""

from __future__ import annotations

from datetime import date
from typing import Any

from litestar import Request, get
from litestar.params import FromPath, FromQuery

from app.core.internal import internal_token_guard
from app.core.resources import Resources
from services.compute.logic import summarize
from services.compute.schemas import SeriesSummary


@get("/sites/{site_id:int}/summary", guards=[internal_token_guard])
async def site_summary(request: Request[Any, Any, Any], site_id: FromPath[int], date_from: FromQuery[date],
                       date_to: FromQuery[date]) -> SeriesSummary:
    """Summary statistics of a site's daily pageviews, taken from the analytics service."""
    resources: Resources = request.app.state.resources
    series = await resources.services.json(
        "analytics", "GET", f"/sites/{site_id}/pageviews/daily",
        params={"date_from": date_from.isoformat(), "date_to": date_to.isoformat()},
    )
    return summarize([int(day["pageviews"]) for day in series])
