"""Sites list and the dashboard page."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.core.errors import NotFound, ServiceUnavailable
from app.core.resources import Resources
from app.domain.accounts.deps import current_user
from app.domain.dashboard.services import live_token, total_pageviews
from app.domain.sites.services import get_site_by_domain, list_sites


class DashboardController(Controller):
    include_in_schema = False

    @get("/")
    async def index(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        user = await current_user(request)
        if user is None:
            return Redirect("/login")
        resources: Resources = request.app.state.resources
        async with resources.sessions() as session:
            sites = await list_sites(session)
        return Template("sites.html", context={"user": user, "sites": sites})

    @get("/sites/{domain:str}")
    async def dashboard(self, request: Request[Any, Any, Any], domain: FromPath[str]) -> Template | Redirect:
        user = await current_user(request)
        if user is None:
            return Redirect(f"/login?next=/sites/{domain}")
        resources: Resources = request.app.state.resources
        async with resources.sessions() as session:
            site = await get_site_by_domain(session, domain)
        if site is None:
            raise NotFound(f"no site {domain}")
        pageviews: int | None
        error = None
        try:
            pageviews = await total_pageviews(resources, site)
        except ServiceUnavailable as exc:
            pageviews, error = None, exc.detail
        return Template("dashboard.html", context={
            "user": user, "site": site, "pageviews": pageviews, "error": error,
            "ws_token": live_token(resources, site),
        })
