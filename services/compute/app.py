"""The compute service (port 8004): anomaly detection, forecasting, significance tests."""

from __future__ import annotations

from litestar import Litestar

from app.core.service import create_service_app
from app.core.settings import Settings, get_settings
from services.compute.routes import site_summary


def create_app(settings: Settings | None = None) -> Litestar:
    return create_service_app("compute", settings or get_settings(), [site_summary])
