"""What the dashboard shows, gathered from the analytics service."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from app.core.models import Site
from app.core.resources import Resources
from app.core.tokens import sign_token
from app.realtime.publish import site_channel

WS_TOKEN_TTL = 12 * 3600


def local_today(site: Site, now: datetime | None = None) -> date:
    return (now or datetime.now(ZoneInfo("UTC"))).astimezone(ZoneInfo(site.timezone)).date()


async def total_pageviews(resources: Resources, site: Site) -> int:
    """All pageviews since the site was added (one day of slack each side for time zones)."""
    today = local_today(site)
    first = min(site.created_at.date() - timedelta(days=1), today)
    answer = await resources.services.json(
        "analytics", "GET", f"/sites/{site.id}/pageviews",
        params={"date_from": first.isoformat(), "date_to": (today + timedelta(days=1)).isoformat()},
    )
    return int(answer["pageviews"])


def live_token(resources: Resources, site: Site, user_id: int | None = None) -> str:
    """Grants a WebSocket connection the site's live room (and the user's own messages)."""
    return sign_token(resources.settings.security.secret_key, "ws",
                      {"channels": [site_channel(site.id)], "user_id": user_id}, WS_TOKEN_TTL)
