"""Internal endpoints of imports and exports (called by the api with the internal token, which has checked the
caller may write the site): upload an export, list a site's imports, read one, delete one; ask for an export
job, list them, read a ready one's file."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, delete, get, post, put
from litestar.di import Provide
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.response import File, Response

from app.core.errors import PayloadTooLarge
from app.core.import_contracts import ExportRequest, ImportSource, SiteExport, SiteImport
from app.core.inputs import body_stream
from app.core.integration_contracts import PathId
from app.core.internal import internal_token_guard
from app.core.resources import ResourcesDep
from services.integrations import exports
from services.integrations.imports import store
from services.integrations.imports.files import imports_dir, remove, store_upload
from services.integrations.routes import Session, provide_session

FileName = Annotated[str, QueryParameter(min_length=1, max_length=300)]
UserId = Annotated[int | None, QueryParameter(ge=1, required=False)]


class ImportsController(Controller):
    path = "/sites/{site_id:int}/imports"
    guards = [internal_token_guard]
    dependencies = {"session": Provide(provide_session)}

    @put("/", status_code=201, request_max_body_size=None)
    async def upload(self, request: Request[Any, Any, Any], resources: ResourcesDep, site_id: PathId,
                     source: FromQuery[ImportSource], name: FileName, user: UserId = None) -> SiteImport:
        """Stream the request body to the imports directory (up to ``BEACON_IMPORT_MAX_UPLOAD``), check its files'
        names and headers, and create the pending import. 413 over the maximum, 422 for a file that cannot be
        imported (naming file, line and column), 409 for a file already imported into the site, 507 when the disk is
        short of space (``BEACON_IMPORT_MIN_FREE_DISK``)."""
        limits = resources.settings.imports
        length = int(request.headers.get("content-length") or 0)
        if length > limits.max_upload:
            raise PayloadTooLarge(f"the file is larger than the maximum of {limits.max_upload} bytes "
                                  "(BEACON_IMPORT_MAX_UPLOAD)")
        directory = imports_dir(resources.settings.paths.state_dir)
        stored = await store_upload(body_stream(request), directory, store.upload_name(), limits.max_upload,
                                    limits.min_free_disk)
        try:
            await anyio.to_thread.run_sync(store.inspect, stored.path, source, name, limits)
            async with resources.sessions.begin() as session:
                return await store.create_import_async(session, site_id, source, stored, name, user)
        except BaseException:
            remove(str(stored.path))
            raise

    @get("/")
    async def list_imports(self, session: Session, site_id: PathId) -> list[SiteImport]:
        return await store.list_imports(session, site_id)

    @get("/{import_id:int}")
    async def get_import(self, session: Session, site_id: PathId, import_id: PathId) -> SiteImport:
        return await store.get_import(session, site_id, import_id)

    @delete("/{import_id:int}", status_code=204)
    async def delete_import(self, session: Session, site_id: PathId, import_id: PathId) -> None:
        """Delete the import and every row it wrote; a job running it stops writing at its next batch."""
        upload = await store.delete_import(session, site_id, import_id)
        await session.commit()
        remove(upload)


class ExportsController(Controller):
    """A site's export jobs (see :mod:`services.integrations.exports`)."""

    path = "/sites/{site_id:int}/exports"
    guards = [internal_token_guard]
    dependencies = {"session": Provide(provide_session)}

    @post("/")
    async def request_export(self, resources: ResourcesDep, site_id: PathId,
                             data: JSONBody[ExportRequest]) -> Response[SiteExport | None]:
        """201 with a new pending export job when the site has at least ``BEACON_IMPORT_EXPORT_JOB_EVENTS``
        events; 200 with ``null`` when it is small enough to stream its export at once. 400 for a bad range."""
        async with resources.sessions.begin() as session:
            if not await exports.is_large(session, site_id, resources.settings.imports.export_job_events):
                exports.check_range(data.date_range)
                return Response(None, status_code=200, media_type="application/json")
            created = await exports.create_export(session, site_id, data.date_range, data.requested_by)
        return Response(created, status_code=201)

    @get("/")
    async def list_exports(self, session: Session, site_id: PathId) -> list[SiteExport]:
        return await exports.list_exports(session, site_id)

    @get("/{export_id:int}/file", media_type="application/zip")
    async def file(self, session: Session, site_id: PathId, export_id: PathId) -> File:
        """The zip of a ready, unexpired export (404 otherwise)."""
        path, name = await exports.ready_file(session, site_id, export_id)
        return File(path, filename=name, media_type="application/zip")
