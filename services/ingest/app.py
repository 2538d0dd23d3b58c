"""The ingest service (port 8001): Events API, validation, enrichment, durable writes."""

from __future__ import annotations

from litestar import Litestar
from litestar.config.cors import CORSConfig

from app.core.service import create_service_app
from app.core.settings import Settings, get_settings
from services.ingest.logic import SaltCache
from services.ingest.routes import receive_event

MAX_BODY = 64 * 1024


def create_app(settings: Settings | None = None) -> Litestar:
    app = create_service_app(
        "ingest",
        settings or get_settings(),
        [receive_event],
        request_max_body_size=MAX_BODY,
        # Trackers post from every site's own origin. Only /api/event is routed here from outside.
        cors_config=CORSConfig(allow_origins=["*"], allow_methods=["POST"], allow_headers=["Content-Type"],
                               max_age=86400),
    )
    app.state.salt_cache = SaltCache()
    return app
