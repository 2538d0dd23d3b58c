"""Plausible-compatible Sites API (``/api/v1/sites``) for provisioning sites from scripts.

Authenticated with an API key that has the ``sites:write`` scope. Like Plausible, errors are
``{"error": "..."}``; reading a site and managing its goals needs owner or admin, deleting needs owner,
and a site the key's user cannot manage is "not found" whether or not it exists.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import PLAUSIBLE_EXCEPTION_HANDLERS, ClientError
from app.core.models import Goal, Site
from app.core.openapi import BEARER, plausible_responses
from app.core.resources import Resources
from app.domain.access.services import SiteAccess
from app.domain.apikeys.deps import ApiPrincipal, api_key_dependency, checked_site, site_access_dependency
from app.domain.deps import DEPENDENCIES
from app.domain.sites import services
from app.domain.sites.schemas import Deleted, GoalCreate, GoalDelete, GoalOut, SiteCreate, SiteOut

Principal = NamedDependency[ApiPrincipal]
Session = NamedDependency[AsyncSession]
Access = NamedDependency[SiteAccess]


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
    """The Sites API's handlers: each takes the key's principal, the request's session and, for a site named in
    the path, its checked :class:`SiteAccess` from the providers below; a handler that writes commits."""

    path = "/api/v1/sites"
    tags = ["Sites API"]
    dependencies = {**DEPENDENCIES, "principal": api_key_dependency("sites:write")}
    exception_handlers = PLAUSIBLE_EXCEPTION_HANDLERS
    security = [{BEARER: []}]

    @post("/", status_code=200, summary="Create a site", responses=plausible_responses(400, 401, 403, 409, 413))
    async def create_site(self, principal: Principal, db_session: Session, data: JSONBody[SiteCreate]) -> SiteOut:
        domain = _required(data.domain, "domain", "create a site")
        timezone = "UTC" if data.timezone in ("Etc/UTC", "") else data.timezone
        site = await services.create_site(db_session, domain, timezone, owner_id=principal.user.id)
        created = _site_out(site)
        await db_session.commit()
        return created

    @get("/", summary="List the sites the key's user can manage", responses=plausible_responses(400, 401, 403))
    async def list_sites(self, principal: Principal, db_session: Session) -> dict[str, Any]:
        sites = await services.list_sites(db_session, principal.user.id)
        return {"sites": [_site_out(site) for site in sites],
                "meta": {"after": None, "before": None, "limit": len(sites)}}

    @put("/goals", status_code=200, summary="Find or create a goal", responses=WRITE_RESPONSES)
    async def put_goal(self, principal: Principal, db_session: Session, data: JSONBody[GoalCreate]) -> GoalOut:
        domain = _required(data.site_id, "site_id", "create a goal")
        goal_type = _required(data.goal_type, "goal_type", "create a goal")
        access = await checked_site(db_session, principal, domain, "admin")
        goal = await services.find_or_create_goal(db_session, access.site, goal_type, data.event_name,
                                                  data.page_path, data.display_name)
        found = _goal_out(goal)
        await db_session.commit()
        return found

    @get("/goals", summary="List a site's goals", responses=RESPONSES)
    async def list_goals(self, principal: Principal, db_session: Session,
                         site_id: FromQuery[str] = "") -> dict[str, Any]:
        access = await checked_site(db_session, principal, _required(site_id, "site_id", "list goals"), "admin")
        goals = await services.list_goals(db_session, access.site.id)
        return {"goals": [_goal_out(goal) for goal in goals],
                "meta": {"after": None, "before": None, "limit": len(goals)}}

    @delete("/goals/{goal_id:int}", status_code=200, summary="Delete a goal", responses=WRITE_RESPONSES)
    async def delete_goal(self, principal: Principal, db_session: Session, goal_id: FromPath[int],
                          data: JSONBody[GoalDelete | None] = None, site_id: FromQuery[str] = "") -> Deleted:
        domain = _required((data.site_id if data else None) or site_id, "site_id", "delete a goal")
        access = await checked_site(db_session, principal, domain, "admin")
        await services.delete_goal(db_session, access.site.id, goal_id)
        await db_session.commit()
        return Deleted()

    @get("/{site_id:str}", summary="Get a site", responses=RESPONSES,
         dependencies={"access": site_access_dependency("admin")})
    async def get_site(self, access: Access) -> SiteOut:
        return _site_out(access.site)

    @delete("/{site_id:str}", status_code=200, summary="Delete a site and all its data", responses=RESPONSES,
            dependencies={"access": site_access_dependency("owner")})
    async def delete_site(self, resources: NamedDependency[Resources], db_session: Session,
                          access: Access) -> Deleted:
        site_id = access.site.id
        await services.delete_site(db_session, access.site, access.site.domain)
        await db_session.commit()
        await services.revoke_live_access(resources, site_id, deleted=True)
        return Deleted()
