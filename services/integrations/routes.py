"""Internal endpoints of the integrations service."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, post
from litestar.params import JSONBody

from app.core.internal import internal_token_guard
from services.integrations.logic import deliver
from services.integrations.schemas import Delivery, TestWebhook


@post("/webhooks/test", guards=[internal_token_guard], status_code=200)
async def test_webhook(request: Request[Any, Any, Any], data: JSONBody[TestWebhook]) -> Delivery:
    """Deliver a signed test event to a URL and report how the receiver answered."""
    payload = {"type": "test", "sent_at": int(time.time()), "message": "Beacon webhook test"}
    result = await deliver(request.app.state.webhook_client, data.url, data.secret, payload)
    return Delivery(**result)
