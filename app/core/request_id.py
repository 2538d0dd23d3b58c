"""``X-Request-ID``: taken from the request (Nginx sets it), made up when absent, kept in a contextvar for
the request's lifetime (every log line, service call and Dramatiq message carries it) and sent back."""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logging import new_request_id, request_id_var, valid_request_id

_HEADER = b"x-request-id"


def scope_request_id(scope: Scope) -> str | None:
    """The valid ``X-Request-ID`` header of an ASGI scope, if any."""
    for name, value in scope.get("headers", ()):
        if name == _HEADER:
            return valid_request_id(value.decode("latin-1"))
    return None


class RequestIdMiddleware:
    """Pure ASGI wrapper: sets :data:`app.core.logging.request_id_var` and answers ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = scope_request_id(scope) or new_request_id()
        header = (_HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A copy: the message may be shared (ingest sends one constant 202 start for every event),
                # and a header added to it would be sent again with every later response.
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
