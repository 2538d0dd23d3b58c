"""The site's imports page (owners and admins). The integrations service owns imports; the page asks it, and
an upload streams through to it (``PUT .../imports/upload``, the file as the body, sent by ``imports.js``)
without ever being held in memory here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Response, Stream, Template
from litestar.status_codes import HTTP_507_INSUFFICIENT_STORAGE

from app.core.errors import NotFound, PayloadTooLarge, ServiceUnavailable, problem
from app.core.http import ServiceError
from app.core.import_contracts import ImportSource
from app.core.inputs import body_stream
from app.core.pages import flash
from app.core.resources import Resources
from app.core.tokens import sign_token, verify_token
from app.domain.access.deps import SITE_PAGE_DEPENDENCIES, SitePage
from app.domain.accounts.deps import USER_DEPENDENCIES
from app.domain.stats.export import zip_stream

SOURCES = (("plausible", "Plausible CE — CSV export (zip of imported_*.csv)"),
           ("umami", "Umami — data export (website events CSV, or its zip)"))
Managed = NamedDependency[SitePage]
Res = NamedDependency[Resources]
FileName = Annotated[str, QueryParameter(min_length=1, max_length=300)]


EXPORT_DOWNLOAD = "export-download"
"""The purpose of an export's signed download link (the integrations service signs the emailed one alike)."""


def export_link(resources: Resources, domain: str, site_id: int, item: dict[str, Any]) -> str | None:
    """The signed download link of a ready export, valid until it expires; ``None`` for any other."""
    if item.get("status") != "ready" or not item.get("expires_at"):
        return None
    ttl = (datetime.fromisoformat(item["expires_at"]) - datetime.now(UTC)).total_seconds()
    if ttl <= 0:
        return None
    token = sign_token(resources.settings.security.secret_key, EXPORT_DOWNLOAD,
                       {"export": item["id"], "site": site_id}, ttl)
    return f"/sites/{domain}/exports/{item['id']}/download?{urlencode({'token': token})}"


class ExportDownloadController(Controller):
    path = "/sites/{domain:str}/exports"
    include_in_schema = False
    dependencies = {**USER_DEPENDENCIES, **SITE_PAGE_DEPENDENCIES}

    @get("/{export_id:int}/download", media_type="application/zip")
    async def download(self, resources: Res, managed: Managed, export_id: FromPath[int],
                       token: Annotated[str, QueryParameter(max_length=600)] = "") -> Stream:
        """An export job's zip: for a signed-in owner or admin of the site, with the link's unexpired signature
        (404 otherwise, and once the file is purged)."""
        _, site, services = managed
        payload = verify_token(resources.settings.security.secret_key, EXPORT_DOWNLOAD, token)
        if payload is None or payload.get("export") != export_id or payload.get("site") != site.id:
            raise NotFound("this download link is not valid or has expired")
        return zip_stream(await services.open_stream("integrations", "GET",
                                                     f"/sites/{site.id}/exports/{export_id}/file"))


class ImportsPageController(Controller):
    path = "/sites/{domain:str}/imports"
    include_in_schema = False
    dependencies = {**USER_DEPENDENCIES, **SITE_PAGE_DEPENDENCIES}

    @get("/")
    async def index(self, resources: Res, managed: Managed) -> Template:
        user, site, services = managed
        imports = await services.json("integrations", "GET", f"/sites/{site.id}/imports")
        exports = [{**item, "download": export_link(resources, site.domain, site.id, item)}
                   for item in await services.json("integrations", "GET", f"/sites/{site.id}/exports")]
        return Template("site_imports.html", context={
            "user": user, "site": site, "imports": imports, "exports": exports, "sources": SOURCES,
            "max_upload": resources.settings.imports.max_upload})

    @get("/list", media_type="application/json")
    async def status(self, managed: Managed) -> Response[Any]:
        """The imports as JSON (``SiteImport`` list): the page polls it while one runs."""
        _, site, services = managed
        response = await services.request("integrations", "GET", f"/sites/{site.id}/imports")
        return Response(response.content, status_code=response.status_code, media_type="application/json")

    @put("/upload", request_max_body_size=None, media_type="application/json")
    async def upload(self, request: Request[Any, Any, Any], resources: Res, managed: Managed,
                     source: FromQuery[ImportSource], name: FileName) -> Response[Any]:
        """Stream the body to the integrations service, which stores and checks it: 201 with the import, or its
        problem (413 too large, 422 with file, line and column, 409 already imported, 507 short of disk space)."""
        user, site, services = managed
        limit = resources.settings.imports.max_upload
        if int(request.headers.get("content-length") or 0) > limit:
            # Answered as problem+json, as the service answers: the page's script shows its detail.
            return problem(PayloadTooLarge.status_code, PayloadTooLarge.title,
                           f"the file is larger than the maximum of {limit} bytes")
        response = await services.request(
            "integrations", "PUT", f"/sites/{site.id}/imports", params={"source": source, "name": name,
                                                                        "user": user.id},
            content=body_stream(request), headers={"content-type": "application/octet-stream"})
        if response.status_code >= 500 and response.status_code != HTTP_507_INSUFFICIENT_STORAGE:
            raise ServiceUnavailable(f"the integrations service failed with {response.status_code}")
        return Response(response.content, status_code=response.status_code,
                        media_type=response.headers.get("content-type", "application/json"))

    @post("/export", status_code=303)
    async def export(self, request: Request[Any, Any, Any], managed: Managed, domain: FromPath[str]) -> Redirect:
        """The Export button: a small site's zip is streamed at once (a redirect to ``/sites/{domain}/export``);
        a large one's is built by an export job, shown below with its progress and emailed when ready."""
        user, site, services = managed
        form = await request.form()
        date_range = str(form.get("date_range") or "all")[:40]
        response = await services.request("integrations", "POST", f"/sites/{site.id}/exports",
                                          json={"date_range": date_range, "requested_by": user.id})
        if response.status_code >= 500:
            raise ServiceUnavailable(f"the integrations service failed with {response.status_code}")
        if response.status_code >= 400:
            detail = str(response.json().get("detail", "the export was refused"))
            flash(request, detail[:1].upper() + detail[1:], "error")
            return Redirect(f"/sites/{domain}/imports#export", status_code=303)
        if response.status_code == 200:  # small enough to stream at once
            return Redirect(f"/sites/{domain}/export?{urlencode({'date_range': date_range})}", status_code=303)
        flash(request, "The export is being built. Its download link appears below and is emailed to you when "
                       "it is ready.")
        return Redirect(f"/sites/{domain}/imports#exports", status_code=303)

    @get("/exports", media_type="application/json")
    async def export_status(self, resources: Res, managed: Managed) -> Response[Any]:
        """The export jobs as JSON (``SiteExport`` list), each ready one with its signed download link."""
        _, site, services = managed
        exports = await services.json("integrations", "GET", f"/sites/{site.id}/exports")
        return Response([{**item, "download": export_link(resources, site.domain, site.id, item)}
                         for item in exports], media_type="application/json")

    @post("/{import_id:int}/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], managed: Managed, domain: FromPath[str],
                     import_id: FromPath[int]) -> Redirect:
        _, site, services = managed
        try:
            response = await services.request("integrations", "DELETE", f"/sites/{site.id}/imports/{import_id}")
            if response.status_code >= 400:
                raise ServiceError(response.status_code, str(response.json().get("detail", "")))
        except ServiceError as exc:
            flash(request, exc.detail[:1].upper() + exc.detail[1:], "error")
        else:
            flash(request, "Import deleted, with everything it imported.")
        return Redirect(f"/sites/{domain}/imports", status_code=303)
