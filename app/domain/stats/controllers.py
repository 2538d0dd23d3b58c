"""Plausible's Stats API in the api process: authenticate the key, check the site, ask the analytics service.

Authenticated with ``Authorization: Bearer <key>`` of scope ``stats:read``; a site the key's user cannot see
is "not found" whether or not it exists. Errors are Plausible's ``{"error": "..."}``; an invalid query is a
400 whose message says exactly what is wrong (the analytics service validates it).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from app.core.errors import PLAUSIBLE_EXCEPTION_HANDLERS, ClientError
from app.core.openapi import BEARER, plausible_responses
from app.core.resources import Resources
from app.domain.apikeys.deps import ApiPrincipal, api_key_dependency, principal_site
from app.domain.deps import DEPENDENCIES

Principal = NamedDependency[ApiPrincipal]
Res = NamedDependency[Resources]
RESPONSES = plausible_responses(400, 401, 403, 404, 503)

# Stats API v1 parameters as Plausible documents them; the analytics service validates their values (with
# Plausible's messages, so ``limit`` and ``property`` are plain optional strings here).
SiteId = Annotated[str | None, QueryParameter(
    description="The site's domain, as added to Beacon (required; without it Plausible's 400).", max_length=253)]
Period = Annotated[str | None, QueryParameter(
    description="day, 7d, 30d, month, 6mo, 12mo or custom (default 30d).")]
Date = Annotated[str | None, QueryParameter(
    description="YYYY-MM-DD the period ends on, or YYYY-MM-DD,YYYY-MM-DD with period=custom.")]
Metrics = Annotated[str | None, QueryParameter(description="Comma-separated metrics, e.g. visitors,pageviews.")]
Filters = Annotated[str | None, QueryParameter(
    description="property==value or property!=value, | between values, ; between filters (other expressions "
                "are left out, as Plausible leaves them out).")]
Compare = Annotated[str | None, QueryParameter(description="previous_period: add each metric's change.")]
Interval = Annotated[str | None, QueryParameter(description="day (or date) or month; default: hour for period=day, "
                                                             "month for 6mo and 12mo, else day.")]
Property = Annotated[str | None, QueryParameter(description="The property to break down by, e.g. visit:source.")]
Limit = Annotated[str | None, QueryParameter(description="Rows per page, 1 to 1000 (default 100).")]
WithImported = Annotated[str | None, QueryParameter(
    description="true: include imported stats where they can answer the query (Plausible's with_imported).")]
Page = Annotated[int | None, QueryParameter(description="Page number from 1.", ge=1, le=2**31 - 1)]


async def _site_param(resources: Resources, principal: ApiPrincipal, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        # Plausible's words (PlausibleWeb.Plugs.AuthorizePublicAPI).
        raise ClientError("Missing site ID. Please provide the required site_id parameter with your request.")
    site = await principal_site(resources, principal, value.strip())
    return site.domain


class StatsApiController(Controller):
    path = "/api"
    tags = ["Stats API"]
    dependencies = {**DEPENDENCIES, "principal": api_key_dependency("stats:read")}
    exception_handlers = PLAUSIBLE_EXCEPTION_HANDLERS
    security = [{BEARER: []}]

    @post("/v2/query", status_code=200, summary="Query stats (Plausible Stats API v2)",
          responses=plausible_responses(400, 401, 403, 404, 413, 503))
    async def query(self, resources: Res, principal: Principal, data: JSONBody[dict[str, Any]]) -> Any:
        """Metrics over a date range, optionally by dimensions, filtered, ordered and paginated."""
        body = {**data, "site_id": await _site_param(resources, principal, data.get("site_id"))}
        return await resources.services.json("analytics", "POST", "/query", json=body, params={"public": "true"})

    async def _v1(self, request: Request[Any, Any, Any], resources: Resources, principal: ApiPrincipal,
                  endpoint: str) -> Any:
        params = dict(request.query_params.items())
        params["site_id"] = await _site_param(resources, principal, params.get("site_id"))
        return await resources.services.json("analytics", "GET", f"/v1/{endpoint}", params=params)

    # The v1 handlers declare their parameters for the OpenAPI document and for type checks; the values go
    # on to the analytics service as the client sent them.
    @get("/v1/stats/realtime/visitors", summary="Current visitors (last 5 minutes)", responses=RESPONSES)
    async def realtime_visitors(self, request: Request[Any, Any, Any], resources: Res, principal: Principal,
                                site_id: SiteId) -> Any:
        return await self._v1(request, resources, principal, "realtime-visitors")

    @get("/v1/stats/aggregate", summary="Aggregate metrics (Plausible Stats API v1)", responses=RESPONSES)
    async def aggregate(self, request: Request[Any, Any, Any], resources: Res, principal: Principal, site_id: SiteId,
                        period: Period = None, date: Date = None, metrics: Metrics = None, filters: Filters = None,
                        compare: Compare = None, with_imported: WithImported = None) -> Any:
        return await self._v1(request, resources, principal, "aggregate")

    @get("/v1/stats/timeseries", summary="Time series (Plausible Stats API v1)", responses=RESPONSES)
    async def timeseries(self, request: Request[Any, Any, Any], resources: Res, principal: Principal, site_id: SiteId,
                         period: Period = None, date: Date = None, metrics: Metrics = None, filters: Filters = None,
                         interval: Interval = None, with_imported: WithImported = None) -> Any:
        return await self._v1(request, resources, principal, "timeseries")

    @get("/v1/stats/breakdown", summary="Breakdown by a property (Plausible Stats API v1)", responses=RESPONSES)
    async def breakdown(self, request: Request[Any, Any, Any], resources: Res, principal: Principal, site_id: SiteId,
                        property: Property = None, period: Period = None, date: Date = None, metrics: Metrics = None,
                        filters: Filters = None, limit: Limit = None, page: Page = None,
                        with_imported: WithImported = None) -> Any:
        return await self._v1(request, resources, principal, "breakdown")
