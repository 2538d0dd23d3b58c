"""Messages made from the analytics service's figures: coalesced ``goal.completed`` and ``site.first_event``.

The analytics service is the only reader of ``events``; these jobs ask it over the shared service client with
Stats API queries, and write the messages to the outbox in the transaction that advances the site's cursor,
so a window of conversions is sent exactly once (each delivery then at least once, with its ``webhook-id``).

Windows are whole seconds, ``[goals_until, now - LAG)``: the Stats API's date-time ranges end on an
inclusive second, so ``to`` is one second before the window's end.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from app.core.http import ServiceClient
from app.core.settings import Settings
from services.integrations.delivery import dumps
from services.integrations.webhooks import ENQUEUE_FOR_SITE, envelope

logger = logging.getLogger("beacon.integrations")

LAG = timedelta(seconds=2)
"""Events are stored within milliseconds of arriving; a window closes this long after its end."""

SUBSCRIBED_SITES = text("""
SELECT DISTINCT s.id, s.domain FROM sites s JOIN webhook_endpoints e ON e.site_id = s.id
WHERE e.enabled AND e.event_types && ARRAY['goal.completed', 'site.first_event']::varchar[]
ORDER BY s.id""")


async def ask_analytics(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """A Stats API v2 query to the analytics service (the caller is trusted: it is Beacon itself)."""
    client = ServiceClient(settings)
    try:
        return dict(await client.json("analytics", "POST", "/query", json=body))
    finally:
        await client.aclose()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def goal_conversions(settings: Settings, domain: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """``[{goal, count}]``: conversions per goal (display name) in ``[start, end)``, most first."""
    answer = asyncio.run(ask_analytics(settings, {
        "site_id": domain, "metrics": ["events"], "dimensions": ["event:goal"],
        "date_range": [_iso(start), _iso(end - timedelta(seconds=1))]}))
    found = [{"goal": row["dimensions"][0], "count": int(row["metrics"][0])} for row in answer.get("results", [])]
    return sorted((item for item in found if item["count"] > 0), key=lambda item: (-item["count"], item["goal"]))


def has_events(settings: Settings, domain: str) -> bool:
    answer = asyncio.run(ask_analytics(settings, {"site_id": domain, "metrics": ["events"], "date_range": "all"}))
    results = answer.get("results") or [{"metrics": [0]}]
    return int(results[0]["metrics"][0]) > 0


def coalesce_site(engine: Engine, settings: Settings, site_id: int, domain: str, now: datetime) -> int:
    """Turn the site's new conversions (and its first event) into messages; returns deliveries made."""
    end = (now - LAG).replace(microsecond=0)
    made = 0
    dashboard = f"{settings.server.base_url}/sites/{domain}"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO webhook_site_cursors (site_id, goals_until) VALUES (:s, :e) "
                          "ON CONFLICT (site_id) DO NOTHING"), {"s": site_id, "e": end})
        cursor = conn.execute(text("SELECT goals_until, first_event_sent_at FROM webhook_site_cursors "
                                   "WHERE site_id = :s FOR UPDATE"), {"s": site_id}).one()
        start: datetime = cursor[0]
        if end - start >= timedelta(seconds=1):
            conversions = goal_conversions(settings, domain, start, end)
            if conversions:
                payload = envelope("goal.completed", {
                    "site": domain, "dashboard_url": dashboard, "from": _iso(start), "to": _iso(end),
                    "conversions": conversions}, now)
                made += len(conn.execute(ENQUEUE_FOR_SITE, {"site_id": site_id, "event_type": "goal.completed",
                                                            "payload": dumps(payload)}).all())
            conn.execute(text("UPDATE webhook_site_cursors SET goals_until = :e WHERE site_id = :s"),
                         {"s": site_id, "e": end})
        if cursor[1] is None and has_events(settings, domain):
            payload = envelope("site.first_event", {"site": domain, "dashboard_url": dashboard}, now)
            made += len(conn.execute(ENQUEUE_FOR_SITE, {"site_id": site_id, "event_type": "site.first_event",
                                                        "payload": dumps(payload)}).all())
            conn.execute(text("UPDATE webhook_site_cursors SET first_event_sent_at = now() WHERE site_id = :s"),
                         {"s": site_id})
    return made


def coalesce(engine: Engine, settings: Settings, now: datetime | None = None) -> int:
    """Every subscribed site, one after the other; a site whose query fails is tried again next time."""
    moment = now or datetime.now(UTC)
    with engine.connect() as conn:
        sites = [(int(row[0]), str(row[1])) for row in conn.execute(SUBSCRIBED_SITES)]
    made = 0
    for site_id, domain in sites:
        try:
            made += coalesce_site(engine, settings, site_id, domain, moment)
        except Exception:
            logger.exception("goal messages failed", extra={"site_id": site_id})
    return made
