"""Outgoing webhooks: signed deliveries to URLs site owners configure."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

SIGNATURE_HEADER = "X-Beacon-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>``: the timestamp stops replays."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, tolerance: int = 300, now: float | None = None) -> bool:
    """Check a signature header as a webhook receiver would."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


async def deliver(client: httpx.AsyncClient, url: str, secret: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST ``payload`` signed with ``secret``; report the receiver's status and the time taken."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Beacon-Webhooks/1",
        SIGNATURE_HEADER: sign(secret, int(time.time()), body),
    }
    started = time.perf_counter()
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return {"delivered": False, "status_code": None, "error": type(exc).__name__,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1)}
    return {"delivered": 200 <= response.status_code < 300, "status_code": response.status_code,
            "error": None, "duration_ms": round((time.perf_counter() - started) * 1000, 1)}
