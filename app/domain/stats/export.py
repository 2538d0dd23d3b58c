"""Export a site's stats in Plausible's CSV export format: ``GET /api/v1/sites/{domain}/export`` (an API key of
scope ``stats:read`` on a site the key's user can see, else "not found") and the **Export** button of the site's
imports page (``GET /sites/{domain}/export``, owners and admins, signed in).

The analytics service builds the zip (``services/analytics/export.py``); the api passes its bytes on as they
come, so the zip is never whole in memory here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from app.core.errors import PLAUSIBLE_EXCEPTION_HANDLERS
from app.core.openapi import BEARER, plausible_responses
from app.core.resources import Resources
from app.domain.access.deps import SITE_PAGE_DEPENDENCIES, SitePage
from app.domain.accounts.deps import USER_DEPENDENCIES
from app.domain.apikeys.deps import ApiPrincipal, api_key_dependency, principal_site
from app.domain.deps import DEPENDENCIES

Principal = NamedDependency[ApiPrincipal]
Res = NamedDependency[Resources]
DateRange = Annotated[str, QueryParameter(
    description="YYYY-MM-DD,YYYY-MM-DD (local days, inclusive) or a shortcut: all, 7d, 30d, month, 12mo, year.",
    max_length=40)]
EXPORT_TIMEOUT = httpx.Timeout(600.0, connect=2.0)
"""An export reads every event of its range once per file: far longer than a query, never retried."""


async def export_stream(resources: Resources, site_id: int, date_range: str) -> Stream:
    """The analytics service's export of ``site_id`` as a streamed response (errors raise before it starts)."""
    upstream = await resources.services.open_stream(
        "analytics", "GET", f"/sites/{site_id}/export", params={"date_range": date_range}, timeout=EXPORT_TIMEOUT)
    return zip_stream(upstream)


def zip_stream(upstream: httpx.Response) -> Stream:
    """An upstream service's zip answer passed on as it arrives, with its ``Content-Disposition``; the upstream
    connection is closed when the client has it all or goes away."""

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_bytes():
                yield chunk
        finally:
            await upstream.aclose()

    disposition = upstream.headers.get("content-disposition", 'attachment; filename="export.zip"')
    return Stream(body(), media_type="application/zip", headers={"Content-Disposition": disposition})


class ExportApiController(Controller):
    path = "/api/v1/sites"
    tags = ["Sites API"]
    dependencies = {**DEPENDENCIES, "principal": api_key_dependency("stats:read")}
    exception_handlers = PLAUSIBLE_EXCEPTION_HANDLERS
    security = [{BEARER: []}]

    @get("/{domain:str}/export", summary="Export a site's stats as Plausible's CSV export zip",
         responses=plausible_responses(400, 401, 403, 404, 503), media_type="application/zip")
    async def export(self, resources: Res, principal: Principal, domain: FromPath[str],
                     date_range: DateRange = "all") -> Stream:
        """A zip of ``imported_*.csv`` files (one row per local day and group), which Plausible and Beacon import."""
        site = await principal_site(resources, principal, domain)
        return await export_stream(resources, site.id, date_range)


class ExportPageController(Controller):
    path = "/sites/{domain:str}/export"
    include_in_schema = False
    dependencies = {**USER_DEPENDENCIES, **SITE_PAGE_DEPENDENCIES}

    @get("/", media_type="application/zip")
    async def download(self, resources: Res, managed: NamedDependency[SitePage],
                       date_range: DateRange = "all") -> Stream:
        """The site settings' export button: the same zip as the API's, for a signed-in owner or admin."""
        return await export_stream(resources, managed.site.id, date_range)
