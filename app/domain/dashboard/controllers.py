"""The dashboard page of a site, the read-only dashboard behind a share link, and their data.

The page is rendered with the top metrics and chart data of the state in its URL (first paint without a
round trip); ``app/frontend/dashboard.js`` then keeps it up to date from the JSON endpoints
``/sites/{domain}/stats/{part}`` (session cookie, viewer or better) and ``/share/{token}/stats/{part}``.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.core.errors import NotFound, ServiceUnavailable
from app.core.models import Site, User
from app.core.resources import Resources
from app.domain.access.services import site_access
from app.domain.accounts.deps import USER_DEPENDENCIES
from app.domain.annotations.services import list_annotations
from app.domain.dashboard import services
from app.domain.dashboard.services import (
    BREAKDOWN_PARAMS,
    breakdown_dimension,
    breakdown_limit,
    live_token,
    parse_state,
)
from app.domain.sites.services import site_by_share_token

Res = NamedDependency[Resources]

PARTS = ("overview", "breakdown", "properties", "realtime", "insights", "compare")


def _params(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    return {key: request.query_params.getall(key) for key in request.query_params}


async def _dashboard(request: Request[Any, Any, Any], resources: Resources, site: Site, user: User | None,
                     role: str | None,
                     ws_url: str, stats_url: str) -> Template:
    state = parse_state(_params(request), site)
    async with resources.sessions() as session:
        annotations = await list_annotations(session, site.id)
    data: dict[str, Any] | None
    error = None
    try:
        data = await services.overview(resources, site, state, annotations)
    except ServiceUnavailable as exc:
        data, error = None, exc.detail
    return Template("dashboard.html", context={
        "user": user, "site": site, "role": role, "data": data, "state": state, "error": error,
        "ws_url": ws_url, "stats_url": stats_url, "read_only": role is None, "periods": PERIOD_LABELS,
        "default_top": services.top_entries(services.top_mode(state.filters)), "points": services.POINTS,
        # Query answers are cached this long: a refresh for new live events waits for them to expire.
        "refresh_after": resources.settings.analytics.cache_ttl,
    })


PERIOD_LABELS = {"today": "Today", "7d": "Last 7 days", "30d": "Last 30 days", "month": "This month",
                 "6mo": "Last 6 months", "12mo": "Last 12 months", "all": "All time", "custom": "Custom range"}


async def _stats(request: Request[Any, Any, Any], resources: Resources, site: Site, part: str) -> Any:
    params = _params(request)
    if part == "overview":
        state = parse_state(params, site)
        async with resources.sessions() as session:
            annotations = await list_annotations(session, site.id)
        return await services.overview(resources, site, state, annotations)
    if part == "breakdown":
        state = parse_state(params, site, allowed=BREAKDOWN_PARAMS)
        name, dimension, metrics = breakdown_dimension(params)
        return await services.breakdown(resources, site, state, name, dimension, metrics, breakdown_limit(params))
    if part == "properties":
        return {"keys": await services.property_keys(resources, site, parse_state(params, site))}
    if part == "realtime":
        return {"visitors": await services.realtime_visitors(resources, site)}
    if part == "insights":
        return await services.insights(resources, site, parse_state(params, site))
    if part == "compare":
        state = parse_state(params, site, allowed=services.COMPARE_PARAMS)
        return await services.compare_values(resources, site, state, params)
    raise NotFound(f"no dashboard data {part!r}; there are {', '.join(PARTS)}")


class DashboardController(Controller):
    """Handlers take the resources and the signed-in user from ``USER_DEPENDENCIES``.

    Their database sessions stay short (``resources.sessions()`` blocks) rather than the request's
    ``db_session``: no connection is held while the analytics service answers.
    """

    include_in_schema = False
    dependencies = USER_DEPENDENCIES

    @get("/sites/{domain:str}")
    async def dashboard(self, request: Request[Any, Any, Any], signed_in: NamedDependency[User | None], resources: Res,
                        domain: FromPath[str]) -> Template | Redirect:
        user = signed_in
        if user is None:
            return Redirect(f"/login?next=/sites/{domain}")
        async with resources.sessions() as session:
            access = await site_access(session, user.id, domain, "viewer")
        token = live_token(resources, access.site, user.id, user.session_epoch)
        return await _dashboard(request, resources, access.site, user, access.role, f"/ws?token={token}",
                                f"/sites/{access.site.domain}/stats")

    @get("/sites/{domain:str}/stats/{part:str}")
    async def stats(self, request: Request[Any, Any, Any], user: NamedDependency[User], resources: Res,
                    domain: FromPath[str], part: FromPath[str]) -> Any:
        """Dashboard data as JSON for a signed-in member of the site."""
        async with resources.sessions() as session:
            access = await site_access(session, user.id, domain, "viewer")
        return await _stats(request, resources, access.site, part)

    @get("/share/{token:str}")
    async def shared(self, request: Request[Any, Any, Any], resources: Res, token: FromPath[str]) -> Template:
        """The read-only dashboard of a shared site; a revoked or unknown link is simply not found."""
        site = await _shared_site(resources, token)
        return await _dashboard(request, resources, site, None, None, f"/ws?share={token}",
                                f"/share/{token}/stats")

    @get("/share/{token:str}/stats/{part:str}")
    async def shared_stats(self, request: Request[Any, Any, Any], resources: Res, token: FromPath[str],
                           part: FromPath[str]) -> Any:
        """Dashboard data as JSON for whoever holds the share link."""
        return await _stats(request, resources, await _shared_site(resources, token), part)


async def _shared_site(resources: Resources, token: str) -> Site:
    async with resources.sessions() as session:
        site = await site_by_share_token(session, token)
    if site is None:
        raise NotFound("this share link does not exist or was revoked")
    return site
