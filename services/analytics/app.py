"""The analytics service (port 8002): the query engine behind the dashboard and the Stats API."""

from __future__ import annotations

from litestar import Litestar

from app.core.service import create_service_app
from app.core.settings import Settings, get_settings
from services.analytics.routes import (
    site_daily_pageviews,
    site_export,
    site_pageviews,
    site_property_keys,
    site_received,
    stats_query,
    stats_v1,
)


def create_app(settings: Settings | None = None) -> Litestar:
    return create_service_app("analytics", settings or get_settings(),
                              [site_pageviews, site_daily_pageviews, site_export, site_property_keys, site_received,
                               stats_query, stats_v1])
