"""Who is asking: the signed-in user from the server-side session, and the client's address."""

from __future__ import annotations

import ipaddress
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection

from app.core.errors import Forbidden, Unauthorized
from app.core.models import User
from app.core.resources import Resources


def session_user_id(request: ASGIConnection[Any, Any, Any, Any]) -> int | None:
    if not isinstance(request.scope.get("session"), dict):
        return None
    user_id = request.session.get("user_id")
    return user_id if isinstance(user_id, int) else None


async def current_user(request: Request[Any, Any, Any]) -> User | None:
    """The signed-in user; ``None`` (and the session ends) when the user's session epoch has moved on."""
    user_id = session_user_id(request)
    if user_id is None:
        return None
    resources: Resources = request.app.state.resources
    async with resources.sessions() as session:
        user = await session.get(User, user_id)
    if user is None or user.session_epoch != request.session.get("epoch"):
        request.clear_session()
        return None
    return user


async def require_user(request: Request[Any, Any, Any]) -> User:
    user = await current_user(request)
    if user is None:
        raise Unauthorized("sign in first")
    return user


async def require_admin(request: Request[Any, Any, Any]) -> User:
    user = await require_user(request)
    if not user.is_admin:
        raise Forbidden("only instance administrators may see this")
    return user


def client_address(request: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The browser's address: Nginx (the one trusted hop, on loopback) sets X-Forwarded-For to it."""
    peer = request.client.host if request.client else "unknown"
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[-1].strip()
    try:
        if forwarded and ipaddress.ip_address(peer).is_loopback:
            return str(ipaddress.ip_address(forwarded))
    except ValueError:
        pass
    return peer
