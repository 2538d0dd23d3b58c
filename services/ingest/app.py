"""The ingest service (port 8001): Events API, validation, enrichment, durable writes."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

from litestar import Litestar
from litestar.config.cors import CORSConfig

from app.core.metrics import preset_ingest_reasons
from app.core.resources import Resources
from app.core.service import create_service_app
from app.core.settings import IngestSettings, Settings, get_settings
from services.ingest import enrich
from services.ingest.enrich import Countries, SpamList
from services.ingest.live import Live, RateLimiter
from services.ingest.logic import SaltCache, SiteCache
from services.ingest.routes import dropped_events, receive_event
from services.ingest.state import IngestState
from services.ingest.writer import BatchWriter

MAX_BODY = 64 * 1024  # also enforced by the route itself (routes.MAX_BODY)


def ingest_lifespan(settings: Settings, ingest: IngestSettings):  # type: ignore[no-untyped-def]
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        resources: Resources = app.state.resources
        writer = BatchWriter(settings.database.libpq_url, resources.redis, resources.keys, ingest)
        live = Live(resources.redis, resources.keys, ingest)
        writer.on_commit.append(live.after_commit)
        app.state.ingest = IngestState(
            settings=ingest, writer=writer, live=live,
            limiter=RateLimiter(resources.keys, ingest, settings.security.secret_key),
            sites=SiteCache(), salts=SaltCache(), countries=Countries(), spam=SpamList(),
        )
        enrich.warm_up()
        preset_ingest_reasons()
        await live.start()
        await writer.start()
        # Tables loaded at start-up (countries, parsers) live as long as the process: keep them out of the
        # cyclic collector's full passes, which otherwise show up as pauses in the latency tail.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await writer.stop()
            await live.stop()

    return lifespan


def create_app(settings: Settings | None = None, ingest: IngestSettings | None = None) -> Litestar:
    settings = settings or get_settings()
    return create_service_app(
        "ingest",
        settings,
        [receive_event, dropped_events],
        request_max_body_size=MAX_BODY,
        lifespan=[ingest_lifespan(settings, ingest or settings.ingest)],
        # Trackers post from every site's own origin. Only /api/event is routed here from outside.
        cors_config=CORSConfig(allow_origins=["*"], allow_methods=["POST"], allow_headers=["Content-Type"],
                               max_age=86400),
    )
