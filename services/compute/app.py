"""The compute service (port 8004): anomaly detection, forecasting, significance tests."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi import OpenAPIConfig

from app.core.service import create_service_app
from app.core.settings import Settings, get_settings
from services.compute.routes import ROUTES


def create_app(settings: Settings | None = None) -> Litestar:
    return create_service_app(
        "compute", settings or get_settings(), ROUTES,
        openapi_config=OpenAPIConfig(title="Beacon compute service", version="1.0.0", path="/schema"),
    )
