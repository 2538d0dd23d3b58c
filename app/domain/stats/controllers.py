"""Plausible's Stats API in the api process: authenticate the key, check the site, ask the analytics service.

Authenticated with ``Authorization: Bearer <key>`` of scope ``stats:read``; a site the key's user cannot see
is "not found" whether or not it exists. Errors are Plausible's ``{"error": "..."}``; an invalid query is a
400 whose message says exactly what is wrong (the analytics service validates it).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from app.core.errors import PLAUSIBLE_EXCEPTION_HANDLERS, ClientError
from app.core.resources import Resources
from app.domain.apikeys.deps import ApiPrincipal, api_key_dependency, principal_site

Principal = NamedDependency[ApiPrincipal]


async def _site_param(request: Request[Any, Any, Any], principal: ApiPrincipal, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ClientError("site_id: required, the site's domain")
    site = await principal_site(request, principal, value.strip())
    return site.domain


class StatsApiController(Controller):
    path = "/api"
    tags = ["Stats API"]
    dependencies = {"principal": api_key_dependency("stats:read")}
    exception_handlers = PLAUSIBLE_EXCEPTION_HANDLERS

    @post("/v2/query", status_code=200, summary="Query stats (Plausible Stats API v2)")
    async def query(self, request: Request[Any, Any, Any], principal: Principal,
                    data: JSONBody[dict[str, Any]]) -> Any:
        """Metrics over a date range, optionally by dimensions, filtered, ordered and paginated."""
        body = {**data, "site_id": await _site_param(request, principal, data.get("site_id"))}
        resources: Resources = request.app.state.resources
        return await resources.services.json("analytics", "POST", "/query", json=body)

    async def _v1(self, request: Request[Any, Any, Any], principal: ApiPrincipal, endpoint: str) -> Any:
        params = dict(request.query_params.items())
        params["site_id"] = await _site_param(request, principal, params.get("site_id"))
        resources: Resources = request.app.state.resources
        return await resources.services.json("analytics", "GET", f"/v1/{endpoint}", params=params)

    @get("/v1/stats/realtime/visitors", summary="Current visitors (last 5 minutes)")
    async def realtime_visitors(self, request: Request[Any, Any, Any], principal: Principal) -> Any:
        return await self._v1(request, principal, "realtime-visitors")

    @get("/v1/stats/aggregate", summary="Aggregate metrics (Plausible Stats API v1)")
    async def aggregate(self, request: Request[Any, Any, Any], principal: Principal) -> Any:
        return await self._v1(request, principal, "aggregate")

    @get("/v1/stats/timeseries", summary="Time series (Plausible Stats API v1)")
    async def timeseries(self, request: Request[Any, Any, Any], principal: Principal) -> Any:
        return await self._v1(request, principal, "timeseries")

    @get("/v1/stats/breakdown", summary="Breakdown by a property (Plausible Stats API v1)")
    async def breakdown(self, request: Request[Any, Any, Any], principal: Principal) -> Any:
        return await self._v1(request, principal, "breakdown")
