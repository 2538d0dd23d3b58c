"""Plausible-compatible Sites API (``/api/v1/sites``) for provisioning sites from scripts.

Authenticated with an API key that has the ``sites:write`` scope. Like Plausible, errors are
``{"error": "..."}``; reading a site and managing its goals needs owner or admin, deleting needs owner,
and a site the key's user cannot manage is "not found" whether or not it exists.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from app.core.errors import PLAUSIBLE_EXCEPTION_HANDLERS, ClientError
from app.core.models import Goal, Site
from app.core.openapi import BEARER, plausible_responses
from app.core.resources import Resources
from app.domain.apikeys.deps import ApiPrincipal, api_key_dependency, principal_site
from app.domain.sites import services
from app.domain.sites.schemas import Deleted, GoalCreate, GoalDelete, GoalOut, SiteCreate, SiteOut

Principal = NamedDependency[ApiPrincipal]


RESPONSES = plausible_responses(400, 401, 403, 404)
WRITE_RESPONSES = plausible_responses(400, 401, 403, 404, 413)

def _site_out(site: Site) -> SiteOut:
    return SiteOut(domain=site.domain, timezone=site.timezone)


def _goal_out(goal: Goal) -> GoalOut:
    return GoalOut(id=goal.id, display_name=goal.display_name, goal_type="event" if goal.event_name else "page",
                   event_name=goal.event_name, page_path=goal.page_path)


def _required(value: str | None, field: str, action: str) -> str:
    if value is None or not str(value).strip():
        raise ClientError(f"Parameter `{field}` is required to {action}")
    return value


class SitesApiController(Controller):
    path = "/api/v1/sites"
    tags = ["Sites API"]
    dependencies = {"principal": api_key_dependency("sites:write")}
    exception_handlers = PLAUSIBLE_EXCEPTION_HANDLERS
    security = [{BEARER: []}]

    @post("/", status_code=200, summary="Create a site", responses=plausible_responses(400, 401, 403, 409, 413))
    async def create_site(self, request: Request[Any, Any, Any], principal: Principal,
                          data: JSONBody[SiteCreate]) -> SiteOut:
        domain = _required(data.domain, "domain", "create a site")
        timezone = "UTC" if data.timezone in ("Etc/UTC", "") else data.timezone
        resources: Resources = request.app.state.resources
        async with resources.sessions.begin() as session:
            site = await services.create_site(session, domain, timezone, owner_id=principal.user.id)
            return _site_out(site)

    @get("/", summary="List the sites the key's user can manage", responses=plausible_responses(400, 401, 403))
    async def list_sites(self, request: Request[Any, Any, Any], principal: Principal) -> dict[str, Any]:
        resources: Resources = request.app.state.resources
        async with resources.sessions() as session:
            sites = await services.list_sites(session, principal.user.id)
        return {"sites": [_site_out(site) for site in sites],
                "meta": {"after": None, "before": None, "limit": len(sites)}}

    @put("/goals", status_code=200, summary="Find or create a goal", responses=WRITE_RESPONSES)
    async def put_goal(self, request: Request[Any, Any, Any], principal: Principal,
                       data: JSONBody[GoalCreate]) -> GoalOut:
        domain = _required(data.site_id, "site_id", "create a goal")
        goal_type = _required(data.goal_type, "goal_type", "create a goal")
        site = await principal_site(request, principal, domain, "admin")
        resources: Resources = request.app.state.resources
        async with resources.sessions.begin() as session:
            goal = await services.find_or_create_goal(session, site, goal_type, data.event_name, data.page_path,
                                                      data.display_name)
            return _goal_out(goal)

    @get("/goals", summary="List a site's goals", responses=RESPONSES)
    async def list_goals(self, request: Request[Any, Any, Any], principal: Principal,
                         site_id: FromQuery[str] = "") -> dict[str, Any]:
        site = await principal_site(request, principal, _required(site_id, "site_id", "list goals"), "admin")
        resources: Resources = request.app.state.resources
        async with resources.sessions() as session:
            goals = await services.list_goals(session, site.id)
        return {"goals": [_goal_out(goal) for goal in goals],
                "meta": {"after": None, "before": None, "limit": len(goals)}}

    @delete("/goals/{goal_id:int}", status_code=200, summary="Delete a goal", responses=WRITE_RESPONSES)
    async def delete_goal(self, request: Request[Any, Any, Any], principal: Principal, goal_id: FromPath[int],
                          data: JSONBody[GoalDelete | None] = None, site_id: FromQuery[str] = "") -> Deleted:
        domain = _required((data.site_id if data else None) or site_id, "site_id", "delete a goal")
        site = await principal_site(request, principal, domain, "admin")
        resources: Resources = request.app.state.resources
        async with resources.sessions.begin() as session:
            await services.delete_goal(session, site.id, goal_id)
        return Deleted()

    @get("/{site_id:str}", summary="Get a site", responses=RESPONSES)
    async def get_site(self, request: Request[Any, Any, Any],
                             principal: Principal, site_id: FromPath[str]) -> SiteOut:
        return _site_out(await principal_site(request, principal, site_id, "admin"))

    @delete("/{site_id:str}", status_code=200, summary="Delete a site and all its data",
            responses=RESPONSES)
    async def delete_site(self, request: Request[Any, Any, Any],
                                principal: Principal, site_id: FromPath[str]) -> Deleted:
        site = await principal_site(request, principal, site_id, "owner")
        resources: Resources = request.app.state.resources
        async with resources.sessions.begin() as session:
            merged = await session.merge(site)
            await services.delete_site(session, merged, merged.domain)
        await services.revoke_live_access(resources, site.id, deleted=True)
        return Deleted()
