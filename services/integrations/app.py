"""The integrations service (port 8003): webhook endpoints and their delivery log, alert rules, email, imports,
export jobs."""

from __future__ import annotations

from litestar import Litestar

from app.core.service import create_service_app
from app.core.settings import Settings, get_settings
from services.integrations.imports.routes import ExportsController, ImportsController
from services.integrations.routes import (
    AlertRulesController,
    MailController,
    ReportsController,
    WebhooksController,
    unsubscribe,
)


def create_app(settings: Settings | None = None) -> Litestar:
    return create_service_app("integrations", settings or get_settings(),
                              [WebhooksController, AlertRulesController, ReportsController, ImportsController,
                               ExportsController, MailController, unsubscribe],
                              request_max_body_size=64 * 1024)
