"""``POST /api/event``: Plausible's Events API.

The hot path is a Litestar ASGI route handler: it still runs inside Litestar (routing, CORS middleware,
the error mapping to problem+json) but skips the per-request Request/signature/Response machinery, which
the profile showed to cost more than the event's own parsing and enrichment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from litestar import Litestar, asgi, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import MethodNotAllowedException
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send
from sqlalchemy.exc import DBAPIError, OperationalError

from app.core.errors import ClientError, PayloadTooLarge, ServiceUnavailable, TooManyRequests
from app.core.internal import internal_token_guard
from app.core.metrics import INGEST_ACCEPTED, INGEST_DROPPED, INGEST_UNAVAILABLE
from app.core.resources import Resources
from services.ingest import enrich, logic
from services.ingest.state import IngestState
from services.ingest.writer import RateLimited, Rejected, Row, Unavailable

logger = logging.getLogger("beacon.ingest")

MAX_BODY = 64 * 1024
ACCEPTED_HEADERS = ((b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"2"))


def accepted_start() -> HTTPResponseStartEvent:
    """A new 202 start message for each answer: middlewares (request id, CORS) add their headers to the message
    they are given, so a message shared between requests would grow by a header per request until Nginx
    refused the answer ("upstream sent too big header")."""
    return {"type": "http.response.start", "status": 202, "headers": list(ACCEPTED_HEADERS)}


ACCEPTED_BODY: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"ok", "more_body": False}


async def read_body(receive: Receive, limit: int = MAX_BODY) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if not isinstance(chunk, bytes):
            continue
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds {limit // 1024} KiB")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _drop(state: IngestState, reason: str) -> None:
    """Count an event answered without being stored (``/internal/dropped`` and Prometheus)."""
    state.dropped[reason] += 1
    INGEST_DROPPED.labels(reason).inc()


def _unavailable(state: IngestState) -> ServiceUnavailable:
    INGEST_UNAVAILABLE.inc()
    return ServiceUnavailable("events cannot be stored right now",
                              headers={"Retry-After": str(state.settings.retry_after)})


@asgi("/api/event", copy_scope=False)
async def receive_event(scope: Scope, receive: Receive, send: Send) -> None:
    """Store one event per known site in ``domain``; answer 202 only once it is committed."""
    if scope.get("method") != "POST":
        raise MethodNotAllowedException(headers={"Allow": "POST"})
    await accept(scope["app"], scope, await read_body(receive))
    await send(accepted_start())
    await send(ACCEPTED_BODY)


async def _sites_and_salts(state: IngestState, resources: Resources,
                          domains: list[str]) -> tuple[list[logic.Site], logic.Salts]:
    """The sites named by ``domains`` and the current salts, from caches refreshed from PostgreSQL. While it is
    unreachable (a failover) the request waits up to ``hold_seconds`` for it, as the batch writer does, then
    answers 503 (:func:`_unavailable`)."""
    deadline = time.monotonic() + state.settings.hold_seconds
    while True:
        try:
            return (await state.sites.lookup(resources.sessions, domains),
                    await state.salts.get(resources.sessions))
        except (OperationalError, DBAPIError, OSError) as exc:
            if time.monotonic() >= deadline:
                logger.warning("event not stored: database unavailable", extra={"error": str(exc).splitlines()[0]})
                raise _unavailable(state) from None
            await asyncio.sleep(0.5)


async def accept(app: Litestar, scope: Scope, body: bytes) -> None:
    """Validate, enrich and commit one request's events (none for bots, unknown or excluded sites)."""
    resources: Resources = app.state.resources
    state: IngestState = app.state.ingest
    try:
        event = logic.parse_event(body)
    except ClientError:
        INGEST_DROPPED.labels("invalid").inc()
        raise
    user_agent = header(scope, b"user-agent") or ""
    agent = enrich.client(user_agent)
    if agent.bot:  # as Plausible does: accepted, not counted
        _drop(state, "bot")
        return
    if event.referrer and state.spam.is_spam(event.referrer):
        _drop(state, "spam")
        return
    client = scope.get("client")
    ip, edge_ip = logic.client_addresses(
        header(scope, b"x-forwarded-for"), header(scope, b"x-original-forwarded-for"),
        client[0] if client else None, honour_client_header=state.settings.honour_forwarded_for)
    sites, salts = await _sites_and_salts(state, resources, event.domains)
    if not sites:
        _drop(state, "unknown_site")
        return
    sites = [site for site in sites if not site.excludes(ip, event.pathname)]
    if not sites:
        _drop(state, "excluded")
        return
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
            scroll_depth=event.scroll_depth, engagement_time=event.engagement_time,
        ))
    try:
        await state.writer.submit(rows, state.limiter.check_for(edge_ip, [site.id for site in sites]))
    except Unavailable:
        raise _unavailable(state) from None
    except Rejected as exc:
        INGEST_DROPPED.labels("invalid").inc()
        raise ClientError(f"invalid event: {exc}") from None
    except RateLimited as exc:
        INGEST_DROPPED.labels("rate_limited").inc()
        raise TooManyRequests(exc.reason, headers={"Retry-After": str(exc.retry_after)}) from None
    INGEST_ACCEPTED.inc(len(rows))


def provide_ingest_state(state: State) -> IngestState:
    ingest: IngestState = state.ingest
    return ingest


@get("/internal/dropped", guards=[internal_token_guard], dependencies={"ingest": Provide(provide_ingest_state,
                                                                                      sync_to_thread=False)})
async def dropped_events(ingest: NamedDependency[IngestState]) -> dict[str, int]:
    """Events this process answered 202 and did not store, by reason (``bot``, ``spam``, ``unknown_site``,
    ``excluded``), since it started; internal token required."""
    return dict(ingest.dropped)
