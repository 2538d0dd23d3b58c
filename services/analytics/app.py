"""The analytics service (port 8002): the query engine behind the dashboard and the Stats API."""

from __future__ import annotations

from litestar import Litestar

from app.core.metrics import ANALYTICS_ROLLUP_LAG, ANALYTICS_ROLLUPS_BEHIND
from app.core.resources import Resources
from app.core.service import create_service_app
from app.core.settings import Settings, get_settings
from services.analytics import rollups
from services.analytics.routes import (
    site_daily_pageviews,
    site_export,
    site_pageviews,
    site_property_keys,
    site_received,
    stats_query,
    stats_v1,
)


async def refresh_rollup_lag(app: Litestar) -> None:
    """Read the rollup lag (worst, sites behind) for ``/metrics``: one query per scrape, not per site."""
    resources: Resources = app.state.resources
    async with resources.sessions() as session:
        behind, worst = await rollups.lag(session)
    ANALYTICS_ROLLUPS_BEHIND.set(behind)
    ANALYTICS_ROLLUP_LAG.set(worst)


def create_app(settings: Settings | None = None) -> Litestar:
    return create_service_app("analytics", settings or get_settings(),
                              [site_pageviews, site_daily_pageviews, site_export, site_property_keys, site_received,
                               stats_query, stats_v1],
                              metrics_refresh=refresh_rollup_lag)
