"""Instance administration: the admin and monitoring pages, realtime statistics and the monitoring report as JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.response import Template
from sqlalchemy import func, select

from app.core.models import ApiKey, Site, User
from app.core.openapi import SESSION, problem_responses
from app.core.resources import Resources
from app.domain.accounts.deps import USER_DEPENDENCIES
from app.domain.admin.schemas import MonitoringReport
from app.domain.admin.services import human, human_bytes, human_seconds, monitoring_report, sparkline
from app.domain.system.services import instance_health
from app.realtime.publish import RealtimeStats, WebSocketService

Admin = NamedDependency[User]
Res = NamedDependency[Resources]


class AdminController(Controller):
    """Handlers take the signed-in instance admin (401 signed out, 403 otherwise) and the resources."""

    path = "/api/admin"
    tags = ["Admin"]
    security = [{SESSION: []}]
    dependencies = USER_DEPENDENCIES

    @get("/realtime", summary="WebSocket connections: in total, per room, per channel and per process",
         responses=problem_responses(401, 403, 503))
    async def realtime(self, admin: Admin, resources: Res) -> RealtimeStats:
        """Signed-in instance admins only (session cookie)."""
        return await WebSocketService(resources.redis, resources.keys).stats()

    @get("/monitoring", summary="Processes, PostgreSQL, Redis, queues, WebSockets, ingest and rollups, with the "
         "last hour's samples", responses=problem_responses(401, 403))
    async def monitoring(self, admin: Admin, resources: Res) -> MonitoringReport:
        """Signed-in instance admins only (session cookie). Each part has ``error`` set when its component is
        away (circusd, PostgreSQL, Redis, ingest's /metrics); the others are still filled. Sizes are bytes,
        durations seconds, CPU in percent of one core; definitions in docs/operations.md ("Monitoring")."""
        return await monitoring_report(resources)


class AdminPageController(Controller):
    """The admin pages: the signed-in instance admin and the resources come from ``USER_DEPENDENCIES``."""

    include_in_schema = False
    dependencies = USER_DEPENDENCIES

    @get("/admin/monitoring")
    async def monitoring_page(self, admin: Admin, resources: Res) -> Template:
        """The monitoring report as a page, with a small chart of the last hour per figure."""
        report = await monitoring_report(resources)
        return Template("admin_monitoring.html", context={
            "user": admin, "nav": "admin", "report": report, "sparkline": sparkline, "human": human,
            "human_bytes": human_bytes, "human_seconds": human_seconds,
            "generated_at": datetime.fromtimestamp(report.generated_at, UTC).strftime("%Y-%m-%d %H:%M:%S")})

    @get("/admin")
    async def admin_page(self, admin: Admin, resources: Res) -> Template:
        """Instance health from the same checks as ``/api/health``, realtime statistics, and counts."""
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
            "user": admin, "nav": "admin", "health": health, "healthy": not failed, "failed": failed,
            "realtime": realtime, "realtime_error": realtime_error, "counts": counts,
            "checked_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")})
