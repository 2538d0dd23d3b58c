"""Who is asking: the signed-in user from the server-side session, and the client's address.

The providers below hand it to handlers (Litestar's dependency injection): a controller lists
``USER_DEPENDENCIES`` and its handlers take ``signed_in: User | None`` (anyone), ``user: User`` (401 unless
signed in) or ``admin: User`` (403 unless an instance administrator) as parameters.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide

from app.core.errors import Forbidden, Unauthorized
from app.core.models import User
from app.core.resources import Resources
from app.domain.deps import DEPENDENCIES


def session_user_id(request: ASGIConnection[Any, Any, Any, Any]) -> int | None:
    if not isinstance(request.scope.get("session"), dict):
        return None
    user_id = request.session.get("user_id")
    return user_id if isinstance(user_id, int) else None


async def current_user(request: Request[Any, Any, Any], resources: Resources) -> User | None:
    """The signed-in user; ``None`` (and the session ends) when the user's session epoch has moved on."""
    user_id = session_user_id(request)
    if user_id is None:
        return None
    async with resources.sessions() as session:
        user = await session.get(User, user_id)
    if user is None or user.session_epoch != request.session.get("epoch"):
        request.clear_session()
        return None
    return user


async def provide_signed_in(request: Request[Any, Any, Any], resources: NamedDependency[Resources]) -> User | None:
    """``signed_in``: the request's user, or ``None`` for an anonymous request (:func:`current_user`)."""
    return await current_user(request, resources)


def provide_user(signed_in: NamedDependency[User | None]) -> User:
    """``user``: the signed-in user; raises ``Unauthorized`` ("sign in first") for an anonymous request."""
    if signed_in is None:
        raise Unauthorized("sign in first")
    return signed_in


def provide_admin(user: NamedDependency[User]) -> User:
    """``admin``: the signed-in instance administrator; raises ``Forbidden`` for any other user."""
    if not user.is_admin:
        raise Forbidden("only instance administrators may see this")
    return user


USER_DEPENDENCIES = {**DEPENDENCIES,
                     "signed_in": Provide(provide_signed_in),
                     "user": Provide(provide_user, sync_to_thread=False),
                     "admin": Provide(provide_admin, sync_to_thread=False)}
"""The shared providers (:data:`app.domain.deps.DEPENDENCIES`) and the three above."""


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
