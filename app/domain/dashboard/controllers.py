"""The dashboard page of a site, and the read-only dashboard behind a share link."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.core.errors import NotFound, ServiceUnavailable
from app.core.models import Site, User
from app.core.resources import Resources
from app.domain.accounts.deps import current_user
from app.domain.annotations.services import list_annotations
from app.domain.dashboard.services import live_token, total_pageviews
from app.domain.sites.services import site_access, site_by_share_token


async def _dashboard(request: Request[Any, Any, Any], site: Site, user: User | None, role: str | None,
                     ws_url: str) -> Template:
    resources: Resources = request.app.state.resources
    pageviews: int | None
    error = None
    try:
        pageviews = await total_pageviews(resources, site)
    except ServiceUnavailable as exc:
        pageviews, error = None, exc.detail
    async with resources.sessions() as session:
        annotations = await list_annotations(session, site.id)
    return Template("dashboard.html", context={
        "user": user, "site": site, "role": role, "pageviews": pageviews, "error": error, "ws_url": ws_url,
        "annotations": annotations, "read_only": role is None,
    })


class DashboardController(Controller):
    include_in_schema = False

    @get("/sites/{domain:str}")
    async def dashboard(self, request: Request[Any, Any, Any], domain: FromPath[str]) -> Template | Redirect:
        user = await current_user(request)
        if user is None:
            return Redirect(f"/login?next=/sites/{domain}")
        resources: Resources = request.app.state.resources
        async with resources.sessions() as session:
            access = await site_access(session, user.id, domain, "viewer")
        token = live_token(resources, access.site, user.id)
        return await _dashboard(request, access.site, user, access.role, f"/ws?token={token}")

    @get("/share/{token:str}")
    async def shared(self, request: Request[Any, Any, Any], token: FromPath[str]) -> Template:
        """The read-only dashboard of a shared site; a revoked or unknown link is simply not found."""
        resources: Resources = request.app.state.resources
        async with resources.sessions() as session:
            site = await site_by_share_token(session, token)
        if site is None:
            raise NotFound("this share link does not exist or was revoked")
        return await _dashboard(request, site, None, None, f"/ws?share={token}")
