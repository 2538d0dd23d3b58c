"""Short signed tokens (HMAC-SHA256 over a JSON payload, with an expiry), e.g. for WebSocket access, and the
hash under which random tokens and keys are stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

WS_TOKEN_PURPOSE = "ws"
"""The purpose of the tokens the api signs for the realtime server (a browser's WebSocket rooms)."""


def token_hash(token: str) -> bytes:
    """Tokens and keys are long random strings: SHA-256 is enough to store them without the secret."""
    return hashlib.sha256(token.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(secret: str, purpose: str, payload: dict[str, Any], ttl: float) -> str:
    """A token carrying ``payload`` for ``purpose``, valid for ``ttl`` seconds."""
    body = _b64(json.dumps({**payload, "exp": int(time.time() + ttl)}, separators=(",", ":")).encode())
    mac = hmac.new(secret.encode(), f"{purpose}.{body}".encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify_token(secret: str, purpose: str, token: str) -> dict[str, Any] | None:
    """The payload of a valid, unexpired token for ``purpose``; ``None`` otherwise."""
    body, _, mac = token.partition(".")
    if not body or not mac:
        return None
    expected = hmac.new(secret.encode(), f"{purpose}.{body}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        payload = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    if not isinstance(payload, dict) or payload.get("exp", 0) < time.time():
        return None
    return payload
