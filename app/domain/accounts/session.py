"""Server-side sessions in Redis that get a new id when the user signs in.

Litestar's :class:`ServerSideSessionBackend` keeps the id from the request's cookie for as long as it
exists, even across ``clear_session()``: an id planted before sign-in would stay valid after it (session
fixation). Handlers call :func:`rotate_session`; the backend then deletes the old entry and issues a new id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.types import Message, ScopeSession

_ROTATE = "beacon.rotate_session"
_NEW_ID = "beacon.new_session_id"


def rotate_session(request: Request[Any, Any, Any]) -> None:
    """Give this request's session a new id when the response is sent (sign-in, password change)."""
    request.scope[_ROTATE] = True  # type: ignore[literal-required]


class RotatingSessionBackend(ServerSideSessionBackend):
    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        scope: dict[str, Any] = connection.scope  # type: ignore[assignment]
        if scope.get(_ROTATE):
            if _NEW_ID not in scope:
                scope[_NEW_ID] = self.generate_session_id()
            return str(scope[_NEW_ID])
        return super().get_session_id(connection)

    async def store_in_message(self, scope_session: ScopeSession, message: Message,
                               connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        old_id = connection.cookies.get(self.config.key)
        if connection.scope.get(_ROTATE) and old_id and old_id != "null":
            await self.delete(old_id, store=self.config.get_store_from_app(connection.scope["app"]))
        await super().store_in_message(scope_session, message, connection)


@dataclass
class RotatingSessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend
