"""Who is asking: the signed-in user from the server-side session."""

from __future__ import annotations

from typing import Any

from litestar import Request

from app.core.errors import Unauthorized
from app.core.models import User
from app.core.resources import Resources


async def current_user(request: Request[Any, Any, Any]) -> User | None:
    user_id = request.session.get("user_id") if request.scope.get("session") is not None else None
    if not isinstance(user_id, int):
        return None
    resources: Resources = request.app.state.resources
    async with resources.sessions() as session:
        return await session.get(User, user_id)


async def require_user(request: Request[Any, Any, Any]) -> User:
    user = await current_user(request)
    if user is None:
        raise Unauthorized("sign in first")
    return user
