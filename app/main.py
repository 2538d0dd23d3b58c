"""The api process (port 9001): REST API, server-rendered UI, auth; talks to the four services."""

from __future__ import annotations

from pathlib import Path

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.stores.redis import RedisStore
from litestar.template import TemplateConfig

from app.core.assets import Assets
from app.core.openapi import SelfHostedSwaggerUI, components, events_api_path
from app.core.pages import configure_templates
from app.core.redis import make_async_redis
from app.core.service import create_service_app
from app.core.sessions import SESSION_COOKIE
from app.core.settings import Settings, get_settings
from app.domain.accounts.controllers import AccountController
from app.domain.accounts.session import CookieLimitMiddleware, CsrfMiddleware, SessionConfig
from app.domain.admin.controllers import AdminController, AdminPageController
from app.domain.dashboard.controllers import DashboardController
from app.domain.imports.pages import ExportDownloadController, ImportsPageController
from app.domain.search.controllers import SearchController
from app.domain.sites.api import SitesApiController
from app.domain.sites.controllers import SiteController
from app.domain.stats.controllers import StatsApiController
from app.domain.stats.export import ExportApiController, ExportPageController
from app.domain.system.controllers import SystemController
from app.domain.webhooks.controllers import (
    AlertRulesApiController,
    UnsubscribeController,
    WebhooksApiController,
    webhook_events,
)
from app.domain.webhooks.pages import AlertsPageController, ReportsPageController, WebhooksPageController

TEMPLATES = Path(__file__).parent / "templates"


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    secure_cookies = settings.server.base_url.startswith("https://")
    # Through make_async_redis, so that on several hosts sessions follow the master the Sentinels name.
    session_store = RedisStore(make_async_redis(settings.redis), namespace=f"{settings.redis.key_prefix}sessions",
                               handle_client_shutdown=True)
    return create_service_app(
        "api",
        settings,
        [SystemController, AccountController, DashboardController, SiteController, SearchController,
         SitesApiController, StatsApiController, ExportApiController, ExportPageController, AdminController,
         AdminPageController, WebhooksApiController,
         AlertRulesApiController, UnsubscribeController, webhook_events, WebhooksPageController,
         ReportsPageController, AlertsPageController, ImportsPageController,
         ExportDownloadController],
        health_route=False,
        plausible_prefixes=("/api/v1/", "/api/v2/"),
        template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine,
                                       engine_callback=configure_templates),
        stores={"sessions": session_store},
        middleware=[
            CookieLimitMiddleware(),
            # API routes authenticate with keys, except the admin pages, which use the browser's session.
            SessionConfig(
                key=SESSION_COOKIE, secure=secure_cookies, httponly=True, samesite="lax",
                max_age=settings.accounts.session_max_age, lifetime=settings.accounts.session_lifetime,
                secret=settings.security.secret_key, exclude=["^/api/(?!admin/)"],
            ).middleware,
            CsrfMiddleware(settings.security.secret_key, secure_cookies),
        ],
        openapi_config=OpenAPIConfig(
            title="Beacon API", version="1", path="/api/docs", components=components(),
            render_plugins=[SelfHostedSwaggerUI(Assets().url)],
        ),
        request_max_body_size=1024 * 1024,
        on_startup=[_document_events_api],
    )


def _document_events_api(app: Litestar) -> None:
    """The Events API is served by ingest behind the same host; it belongs in the public API document."""
    app.openapi_schema.paths = {**(app.openapi_schema.paths or {}), "/api/event": events_api_path()}
