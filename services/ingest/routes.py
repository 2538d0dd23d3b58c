"""``POST /api/event``: Plausible's Events API."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, post
from sqlalchemy.exc import DBAPIError, OperationalError

from app.core.errors import ServiceUnavailable
from app.core.resources import Resources
from app.realtime.publish import publish, site_channel
from services.ingest import logic

logger = logging.getLogger("beacon.ingest")

@post("/api/event", status_code=202)
async def receive_event(request: Request[Any, Any, Any]) -> Response[str]:
    """Store one event per known site in ``domain``; answer 202 only once it is committed."""
    resources: Resources = request.app.state.resources
    event = logic.parse_event(await request.body())
    user_agent = request.headers.get("user-agent", "")
    ip = logic.client_ip(request.headers.get("x-forwarded-for"), request.client.host if request.client else None)
    now = datetime.now(UTC)
    salt_cache: logic.SaltCache = request.app.state.salt_cache
    stored: list[tuple[int, str]] = []
    try:
        async with resources.sessions.begin() as session:
            sites = await logic.sites_by_domain(session, event.domains)
            if sites:
                salt = await salt_cache.current(session)
                for domain, site_id in sites.items():
                    visitor = logic.visitor_id(salt, domain, ip, user_agent)
                    await logic.store_event(session, event, site_id, visitor, now)
                    stored.append((site_id, domain))
    except (OperationalError, DBAPIError) as exc:
        logger.warning("event not stored: database unavailable", extra={"error": str(exc).splitlines()[0]})
        raise ServiceUnavailable("events cannot be stored right now", headers={"Retry-After": "5"}) from None
    for site_id, domain in stored:
        try:
            await publish(resources.redis, resources.keys, site_channel(site_id),
                          logic.live_message(domain, event, now))
        except Exception as exc:  # the event is stored; live delivery is best effort
            logger.warning("live publish failed", extra={"error": str(exc)})
    return Response("ok", status_code=202, media_type="text/plain")
