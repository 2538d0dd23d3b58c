"""Webhook messages: the Standard Webhooks envelope, its Slack and Discord renderings, signatures, the outbox.

Every delivery carries the three Standard Webhooks headers (https://www.standardwebhooks.com/):
``webhook-id`` (the delivery's id, the same on every attempt), ``webhook-timestamp`` (Unix seconds of this
attempt) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``), made with the
``standardwebhooks`` package and the endpoint's ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from standardwebhooks import Webhook

USER_AGENT = "Beacon-Webhooks/1"

SUMMARIES = {
    "webhook.test": "Test delivery for {site}: the endpoint is set up correctly.",
    "goal.completed": "{site}: {total} goal conversion(s) — {goals}.",
    "traffic.spike": "{site}: traffic spike — {current_visitors} current visitors (threshold {threshold}).",
    "traffic.drop": "{site}: traffic drop — {visitors} visitors in the last hour, {baseline_visitors} in the "
                    "same hour last week.",
    "goal.threshold": "{site}: {count} conversions of {goal} today (threshold {threshold}).",
    "traffic.anomaly": "{site}: unusual traffic — {explanation} (anomaly score {score}).",
    "report.weekly": "{site}: weekly report — {visitors} visitors, {pageviews} pageviews.",
    "report.monthly": "{site}: monthly report — {visitors} visitors, {pageviews} pageviews.",
    "site.first_event": "{site} received its first event: the tracker is installed.",
}


def new_secret() -> str:
    """A signing secret as Standard Webhooks spells it: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def envelope(event_type: str, data: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The generic body ``{type, timestamp, data}`` (timestamp: ISO 8601 UTC of the fact)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return {"type": event_type, "timestamp": moment.isoformat().replace("+00:00", "Z"), "data": data}


def summary(payload: dict[str, Any]) -> str:
    """One readable line about a message, for chat formats and the delivery log."""
    data = dict(payload.get("data") or {})
    if payload.get("type") == "goal.completed":
        conversions = data.get("conversions") or []
        data["total"] = sum(int(item.get("count", 0)) for item in conversions)
        data["goals"] = ", ".join(f"{item.get('goal')} x{item.get('count')}" for item in conversions) or "none"
    if str(payload.get("type", "")).startswith("report."):
        data.update(data.get("metrics") or {})
    template = SUMMARIES.get(str(payload.get("type")), "{site}: " + str(payload.get("type")))
    try:
        return template.format_map(_Defaulting(data))
    except (ValueError, TypeError):
        return f"{data.get('site', '')}: {payload.get('type')}"


class _Defaulting(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def render(fmt: str, payload: dict[str, Any]) -> bytes:
    """The body sent to an endpoint of format ``generic``, ``slack`` or ``discord``."""
    if fmt == "generic":
        body: dict[str, Any] = payload
    else:
        data = payload.get("data") or {}
        line = summary(payload)
        link = str(data.get("dashboard_url", ""))
        if fmt == "slack":
            blocks: list[dict[str, Any]] = [
                {"type": "header", "text": {"type": "plain_text", "text": f"Beacon: {payload['type']}"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": line}},
            ]
            if link:
                blocks.append({"type": "context", "elements": [
                    {"type": "mrkdwn", "text": f"<{link}|Open the dashboard>"}]})
            body = {"text": line, "blocks": blocks}
        else:
            embed: dict[str, Any] = {"title": f"Beacon: {payload['type']}", "description": line,
                                     "timestamp": payload.get("timestamp"), "color": 0x4F46E5}
            if link:
                embed["url"] = link
            body = {"embeds": [embed], "allowed_mentions": {"parse": []}}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def sign_headers(secret: str, msg_id: str, body: bytes, now: datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    moment = now or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=moment, data=body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


# The outbox. Each statement runs in the caller's transaction, next to the fact that causes the message.
ENQUEUE_FOR_SITE = text("""
INSERT INTO webhook_deliveries (msg_id, endpoint_id, site_id, event_type, payload)
SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), id, site_id, CAST(:event_type AS varchar),
       CAST(:payload AS jsonb)
FROM webhook_endpoints
WHERE site_id = :site_id AND enabled AND CAST(:event_type AS varchar) = ANY (event_types)
RETURNING id""")
"""Params: site_id, event_type, payload (JSON text). One delivery per enabled, subscribed endpoint."""

ENQUEUE_FOR_ENDPOINTS = text("""
INSERT INTO webhook_deliveries (msg_id, endpoint_id, site_id, event_type, payload)
SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), id, site_id, CAST(:event_type AS varchar),
       CAST(:payload AS jsonb)
FROM webhook_endpoints
WHERE site_id = :site_id AND enabled AND id = ANY (CAST(:endpoint_ids AS bigint[]))
RETURNING id""")
"""Params: site_id, endpoint_ids, event_type, payload. For ``webhook.test`` and alert rules naming endpoints."""
