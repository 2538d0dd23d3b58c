"""``/api/health``."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, head
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from app.core.health import health_response
from app.core.resources import Resources
from app.domain.deps import DEPENDENCIES
from app.domain.system.services import instance_health


class SystemController(Controller):
    path = "/api"
    tags = ["system"]
    dependencies = DEPENDENCIES

    @get("/health", summary="Health of every component", exclude_from_auth=True, responses={
        503: ResponseSpec(data_container=dict[str, Any], generate_examples=False,
                          description="Some component is unavailable; the body names which")})
    async def health(self, resources: NamedDependency[Resources]) -> Response[dict[str, Any]]:
        """200 when PostgreSQL, Redis, the four services, the workers and the scheduler are fine; 503 naming
        what failed otherwise."""
        return health_response(await instance_health(resources))

    # Not in the OpenAPI document: HEAD is GET without the body (RFC 9110), not an operation of its own.
    @head("/health", summary="The health check's status code alone (for monitors that send HEAD)",
          exclude_from_auth=True, include_in_schema=False)
    async def health_head(self, resources: NamedDependency[Resources]) -> Response[None]:
        """200 or 503 exactly as ``GET /api/health``, without a body (RFC 9110 §9.3.2)."""
        report = health_response(await instance_health(resources))
        return Response(content=None, status_code=report.status_code)
