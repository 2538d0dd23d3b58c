"""The Litestar application every Beacon HTTP process is built on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Litestar
from litestar.types import ControllerRouterHandler

from app.core.errors import EXCEPTION_HANDLERS
from app.core.health import service_health
from app.core.inputs import InputGuardMiddleware
from app.core.metrics import HttpMetricsMiddleware, MetricsRefresh, metrics_route
from app.core.request_id import RequestIdMiddleware
from app.core.resources import RESOURCES, resources_lifespan
from app.core.sentry import init_sentry
from app.core.settings import Settings


def create_service_app(
    name: str,
    settings: Settings,
    route_handlers: Sequence[ControllerRouterHandler],
    *,
    health_route: bool = True,
    plausible_prefixes: tuple[str, ...] = (),
    metrics_refresh: MetricsRefresh | None = None,
    **kwargs: Any,
) -> Litestar:
    """A Litestar app with Beacon's resources (opened by its lifespan; handlers take ``resources: Resources``),
    error mapping, ``GET /metrics`` (Prometheus, on the process's loopback port; Nginx never routes it),
    request ids, Sentry when configured, and (unless told otherwise) ``GET /health``.

    ``plausible_prefixes``: request paths whose errors take Plausible's ``{"error": "..."}`` shape.
    ``metrics_refresh``: updates gauges read at scrape time before ``/metrics`` answers.
    """
    init_sentry(name, settings)
    handlers = [*route_handlers, metrics_route(metrics_refresh), *([service_health] if health_route else [])]
    # Input no field can hold (NUL, invalid UTF-8, JSON too deep to parse safely) stops before anything else.
    guard = InputGuardMiddleware(max_body=kwargs.get("request_max_body_size") or 1024 * 1024)
    app = Litestar(
        route_handlers=handlers,
        lifespan=[resources_lifespan(settings, name), *kwargs.pop("lifespan", [])],
        exception_handlers=EXCEPTION_HANDLERS,
        debug=False,
        logging_config=None,  # configure_logging() owns the root logger
        openapi_config=kwargs.pop("openapi_config", None),
        middleware=[guard, *kwargs.pop("middleware", [])],
        dependencies={**RESOURCES, **kwargs.pop("dependencies", {})},
        **kwargs,
    )
    # Paths whose errors are Plausible's {"error": "..."} (app.core.errors reads it).
    app.state.plausible_prefixes = plausible_prefixes
    # Around Litestar's router and exception handling, so every answer (a 404 of no route too) is counted
    # and carries its request id.
    app.asgi_handler = RequestIdMiddleware(HttpMetricsMiddleware(app.asgi_handler))
    return app
