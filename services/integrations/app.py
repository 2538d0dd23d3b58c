"""The integrations service (port 8003): webhooks and alerts, imports and exports, external APIs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from litestar import Litestar

from app.core.service import create_service_app
from app.core.settings import Settings, get_settings
from services.integrations.routes import test_webhook


@contextlib.asynccontextmanager
async def webhook_client(app: Litestar) -> AsyncIterator[None]:
    """Deliveries go to other people's servers: short timeouts, no redirects followed."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False) as client:
        app.state.webhook_client = client
        yield


def create_app(settings: Settings | None = None) -> Litestar:
    return create_service_app("integrations", settings or get_settings(), [test_webhook],
                              lifespan=[webhook_client])
