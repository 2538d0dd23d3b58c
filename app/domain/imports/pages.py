"""The site's imports page (owners and admins). The integrations service owns imports; the page asks it, and
an upload streams through to it (``PUT .../imports/upload``, the file as the body, sent by ``imports.js``)
without ever being held in memory here."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post, put
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Response, Template

from app.core.errors import PayloadTooLarge, ServiceUnavailable, problem
from app.core.http import ServiceError
from app.core.import_contracts import ImportSource
from app.core.pages import flash
from app.core.resources import Resources
from app.domain.webhooks.pages import managed_site

SOURCES = (("plausible", "Plausible CE — CSV export (zip of imported_*.csv)"),
           ("umami", "Umami — data export (website events CSV, or its zip)"))
FileName = Annotated[str, QueryParameter(min_length=1, max_length=300)]


class ImportsPageController(Controller):
    path = "/sites/{domain:str}/imports"
    include_in_schema = False

    @get("/")
    async def index(self, request: Request[Any, Any, Any], domain: FromPath[str]) -> Template:
        user, site, services = await managed_site(request, domain)
        imports = await services.json("integrations", "GET", f"/sites/{site.id}/imports")
        resources: Resources = request.app.state.resources
        return Template("site_imports.html", context={
            "user": user, "site": site, "imports": imports, "sources": SOURCES,
            "max_upload": resources.settings.imports.max_upload})

    @get("/list", media_type="application/json")
    async def status(self, request: Request[Any, Any, Any], domain: FromPath[str]) -> Response[Any]:
        """The imports as JSON (``SiteImport`` list): the page polls it while one runs."""
        _, site, services = await managed_site(request, domain)
        response = await services.request("integrations", "GET", f"/sites/{site.id}/imports")
        return Response(response.content, status_code=response.status_code, media_type="application/json")

    @put("/upload", request_max_body_size=None, media_type="application/json")
    async def upload(self, request: Request[Any, Any, Any], domain: FromPath[str], source: FromQuery[ImportSource],
                     name: FileName) -> Response[Any]:
        """Stream the body to the integrations service, which stores and checks it: 201 with the import, or its
        problem (413 too large, 422 with file, line and column, 409 already imported)."""
        user, site, services = await managed_site(request, domain)
        resources: Resources = request.app.state.resources
        limit = resources.settings.imports.max_upload
        if int(request.headers.get("content-length") or 0) > limit:
            # Answered as problem+json, as the service answers: the page's script shows its detail.
            return problem(PayloadTooLarge.status_code, PayloadTooLarge.title,
                           f"the file is larger than the maximum of {limit} bytes")
        response = await services.request(
            "integrations", "PUT", f"/sites/{site.id}/imports", params={"source": source, "name": name,
                                                                        "user": user.id},
            content=request.stream(), headers={"content-type": "application/octet-stream"})
        if response.status_code >= 500:
            raise ServiceUnavailable(f"the integrations service failed with {response.status_code}")
        return Response(response.content, status_code=response.status_code,
                        media_type=response.headers.get("content-type", "application/json"))

    @post("/{import_id:int}/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], domain: FromPath[str],
                     import_id: FromPath[int]) -> Redirect:
        _, site, services = await managed_site(request, domain)
        try:
            response = await services.request("integrations", "DELETE", f"/sites/{site.id}/imports/{import_id}")
            if response.status_code >= 400:
                raise ServiceError(response.status_code, str(response.json().get("detail", "")))
        except ServiceError as exc:
            flash(request, exc.detail[:1].upper() + exc.detail[1:], "error")
        else:
            flash(request, "Import deleted, with everything it imported.")
        return Redirect(f"/sites/{domain}/imports", status_code=303)
