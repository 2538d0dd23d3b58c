"""The ingest service (port 8001): Events API, validation, enrichment, durable writes."""

from __future__ import annotations

from litestar import Litestar

from app.core.service import create_service_app
from app.core.settings import Settings, get_settings
from services.ingest.logic import SaltCache
from services.ingest.routes import event_preflight, receive_event

MAX_BODY = 64 * 1024


def create_app(settings: Settings | None = None) -> Litestar:
    app = create_service_app(
        "ingest",
        settings or get_settings(),
        [receive_event, event_preflight],
        request_max_body_size=MAX_BODY,
    )
    app.state.salt_cache = SaltCache()
    return app
