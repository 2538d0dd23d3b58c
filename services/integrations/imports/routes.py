"""Internal endpoints of imports (called by the api with the internal token, which has checked the caller may
write the site): upload an export, list a site's imports, read one, delete one."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, delete, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, QueryParameter

from app.core.errors import PayloadTooLarge
from app.core.import_contracts import ImportSource, SiteImport
from app.core.integration_contracts import PathId
from app.core.internal import internal_token_guard
from app.core.resources import Resources
from services.integrations.imports import store
from services.integrations.imports.files import imports_dir, remove, store_upload
from services.integrations.routes import Session, provide_session


def provide_resources(request: Request[Any, Any, Any]) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = NamedDependency[Resources]
FileName = Annotated[str, QueryParameter(min_length=1, max_length=300)]
UserId = Annotated[int | None, QueryParameter(ge=1, required=False)]


class ImportsController(Controller):
    path = "/sites/{site_id:int}/imports"
    guards = [internal_token_guard]
    dependencies = {"session": Provide(provide_session), "resources": Provide(provide_resources, sync_to_thread=False)}

    @put("/", status_code=201, request_max_body_size=None)
    async def upload(self, request: Request[Any, Any, Any], resources: ResourcesDep, site_id: PathId,
                     source: FromQuery[ImportSource], name: FileName, user: UserId = None) -> SiteImport:
        """Stream the request body to the imports directory (up to ``BEACON_IMPORT_MAX_UPLOAD``), check its files'
        names and headers, and create the pending import. 413 over the maximum, 422 for a file that cannot be
        imported (naming file, line and column), 409 for a file already imported into the site."""
        limits = resources.settings.imports
        length = int(request.headers.get("content-length") or 0)
        if length > limits.max_upload:
            raise PayloadTooLarge(f"the file is larger than the maximum of {limits.max_upload} bytes "
                                  "(BEACON_IMPORT_MAX_UPLOAD)")
        directory = imports_dir(resources.settings.paths.state_dir)
        stored = await store_upload(request.stream(), directory, store.upload_name(), limits.max_upload)
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
