"""Instance administration: realtime connection statistics."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get

from app.core.resources import Resources
from app.domain.accounts.deps import require_admin
from app.realtime.publish import RealtimeStats, WebSocketService


class AdminController(Controller):
    path = "/api/admin"
    tags = ["Admin"]

    @get("/realtime", summary="WebSocket connections: in total, per room, per channel and per process")
    async def realtime(self, request: Request[Any, Any, Any]) -> RealtimeStats:
        """Signed-in instance admins only (session cookie)."""
        await require_admin(request)
        resources: Resources = request.app.state.resources
        return await WebSocketService(resources.redis, resources.keys).stats()
