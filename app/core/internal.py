"""Service-to-service authentication: every internal call carries the shared internal token."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from app.core.errors import Unauthorized

INTERNAL_TOKEN_HEADER = "X-Beacon-Internal-Token"


def internal_token_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: reject calls that do not carry this instance's internal token."""
    expected: str = connection.app.state.resources.settings.security.internal_token
    given = connection.headers.get(INTERNAL_TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("missing or wrong internal token")
