"""``POST /api/event``: Plausible's Events API."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, post
from sqlalchemy.exc import DBAPIError, OperationalError

from app.core.errors import ServiceUnavailable, TooManyRequests
from app.core.resources import Resources
from services.ingest import enrich, logic
from services.ingest.state import IngestState
from services.ingest.writer import RateLimited, Row, Unavailable

logger = logging.getLogger("beacon.ingest")

ACCEPTED = Response("ok", status_code=202, media_type="text/plain")


def _unavailable(state: IngestState) -> ServiceUnavailable:
    return ServiceUnavailable("events cannot be stored right now",
                              headers={"Retry-After": str(state.settings.retry_after)})


@post("/api/event", status_code=202)
async def receive_event(request: Request[Any, Any, Any]) -> Response[str]:
    """Store one event per known site in ``domain``; answer 202 only once it is committed."""
    resources: Resources = request.app.state.resources
    state: IngestState = request.app.state.ingest
    event = logic.parse_event(await request.body())
    user_agent = request.headers.get("user-agent", "")
    agent = enrich.client(user_agent)
    if agent.bot:  # as Plausible does: accepted, not counted
        return ACCEPTED
    ip = logic.client_ip(request.headers.get("x-forwarded-for"), request.client.host if request.client else None)
    try:
        sites = await state.sites.lookup(resources.sessions, event.domains)
        sites = [site for site in sites if not site.excludes(ip, event.pathname)]
        if not sites:
            return ACCEPTED
        salts = await state.salts.get(resources.sessions)
    except (OperationalError, DBAPIError, OSError) as exc:
        logger.warning("event not stored: database unavailable", extra={"error": str(exc).splitlines()[0]})
        raise _unavailable(state) from None
    now = datetime.now(UTC)
    source = enrich.source(event.referrer, event.hostname, event.query)
    country = state.countries.country(ip)
    rows = []
    for site in sites:
        visitor = logic.visitor_id(salts.current, site.domain, ip, user_agent)
        previous = logic.visitor_id(salts.previous, site.domain, ip, user_agent) if salts.previous else visitor
        rows.append(Row(
            site_id=site.id, timestamp=now, name=event.name, visitor_id=visitor, previous_visitor_id=previous,
            hostname=event.hostname, pathname=event.pathname, referrer=source.referrer,
            referrer_source=source.referrer_source, channel=source.channel, utm_source=source.utm_source,
            utm_medium=source.utm_medium, utm_campaign=source.utm_campaign, utm_term=source.utm_term,
            utm_content=source.utm_content, browser=agent.browser, browser_version=agent.browser_version,
            os=agent.os, os_version=agent.os_version, device=agent.device, country=country,
            interactive=event.interactive, revenue_amount=event.revenue_amount,
            revenue_currency=event.revenue_currency, props=event.props, domain=site.domain,
        ))
    try:
        await state.writer.submit(rows, state.limiter.check_for(ip, [site.id for site in sites]))
    except Unavailable:
        raise _unavailable(state) from None
    except RateLimited as exc:
        raise TooManyRequests(exc.reason, headers={"Retry-After": str(exc.retry_after)}) from None
    return ACCEPTED
