"""``/api/health``."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.openapi.datastructures import ResponseSpec

from app.core.health import health_response
from app.domain.system.services import instance_health


class SystemController(Controller):
    path = "/api"
    tags = ["system"]

    @get("/health", summary="Health of every component", exclude_from_auth=True, responses={
        503: ResponseSpec(data_container=dict[str, Any], generate_examples=False,
                          description="Some component is unavailable; the body names which")})
    async def health(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """200 when PostgreSQL, Redis, the four services, the workers and the scheduler are fine; 503 naming
        what failed otherwise."""
        return health_response(await instance_health(request.app.state.resources))
