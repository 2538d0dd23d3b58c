"""Instance administration: the admin page (health, realtime statistics) and realtime statistics as JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, get
from litestar.response import Template
from sqlalchemy import func, select

from app.core.models import ApiKey, Site, User
from app.core.openapi import SESSION, problem_responses
from app.core.resources import Resources
from app.domain.accounts.deps import require_admin
from app.domain.system.services import instance_health
from app.realtime.publish import RealtimeStats, WebSocketService


class AdminController(Controller):
    path = "/api/admin"
    tags = ["Admin"]
    security = [{SESSION: []}]

    @get("/realtime", summary="WebSocket connections: in total, per room, per channel and per process",
         responses=problem_responses(401, 403, 503))
    async def realtime(self, request: Request[Any, Any, Any]) -> RealtimeStats:
        """Signed-in instance admins only (session cookie)."""
        await require_admin(request)
        resources: Resources = request.app.state.resources
        return await WebSocketService(resources.redis, resources.keys).stats()


class AdminPageController(Controller):
    include_in_schema = False

    @get("/admin")
    async def admin_page(self, request: Request[Any, Any, Any]) -> Template:
        """Instance health from the same checks as ``/api/health``, realtime statistics, and counts."""
        user = await require_admin(request)
        resources: Resources = request.app.state.resources
        health = await instance_health(resources)
        realtime: RealtimeStats | None = None
        realtime_error = None
        try:
            realtime = await WebSocketService(resources.redis, resources.keys).stats()
        except Exception as exc:  # Redis down: the health list says so; the rest of the page still shows
            realtime_error = f"Realtime statistics are unavailable: {type(exc).__name__}"
        async with resources.sessions() as session:
            counts = {
                "users": (await session.execute(select(func.count()).select_from(User))).scalar_one(),
                "sites": (await session.execute(select(func.count()).select_from(Site))).scalar_one(),
                "api_keys": (await session.execute(select(func.count()).select_from(ApiKey)
                                               .where(ApiKey.revoked_at.is_(None)))).scalar_one(),
            }
        failed = sorted(name for name, result in health.items() if result != "ok")
        return Template("admin.html", context={
            "user": user, "nav": "admin", "health": health, "healthy": not failed, "failed": failed,
            "realtime": realtime, "realtime_error": realtime_error, "counts": counts,
            "checked_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")})
