"""A browser session's cookie and stored format, shared by the api (which issues sessions) and the realtime
server (which reads them to admit a signed-in browser's WebSocket).

A session is stored in Redis, JSON-encoded, under the id its cookie carries; see
:mod:`app.domain.accounts.session` for when one is written, rotated and ended.
"""

from __future__ import annotations

import re
import time
from typing import Any

SESSION_COOKIE = "beacon_session"
"""The cookie that carries a signed-in browser's session id."""

_SESSION_ID = re.compile(r"[0-9a-f]{64}")


def new_session(user_id: int, epoch: int, now: float | None = None) -> dict[str, Any]:
    """The data of a session that signs ``user_id`` in (as stored in Redis, JSON-encoded)."""
    return {"user_id": user_id, "epoch": epoch, "created": int(time.time() if now is None else now)}


def session_is_valid(data: object, lifetime: int, now: float | None = None) -> bool:
    """Whether stored session ``data`` has the shape :func:`new_session` gives and is younger than ``lifetime`` s."""
    if not isinstance(data, dict):
        return False
    user_id, epoch, created = data.get("user_id"), data.get("epoch"), data.get("created")
    if not isinstance(user_id, int) or not isinstance(epoch, int) or not isinstance(created, int | float):
        return False
    return 0 <= (time.time() if now is None else now) - created < lifetime


def valid_session_id(value: str | None) -> str | None:
    """``value`` when it has the shape of an id Beacon issues, else ``None`` (never looked up in Redis)."""
    return value if value is not None and _SESSION_ID.fullmatch(value) else None
