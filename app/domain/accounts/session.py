"""Browser sessions: server-side in Redis for signed-in users only, CSRF tokens bound to them.

What is stored, and when:

- A session exists in Redis only for a signed-in user (``user_id``, the user's ``epoch`` and the time it was
  ``created``). A visitor who is not signed in costs no Redis memory: nothing is written for them, whatever
  cookies they send. Their flash messages travel in a short-lived signed cookie instead.
- The id in the cookie is only ever one the server generated: a cookie naming no stored session means "no
  session", and a new id (``secrets.token_hex(32)``) is issued only when a session starts or is rotated
  (sign-in, password change, sign-out), so an id planted before sign-in is never the one signed in.
- A session slides (``session_max_age`` after the last request) but never outlives ``session_lifetime`` after
  sign-in, and ends early when the user's ``session_epoch`` in PostgreSQL moves on (password change, "sign out
  everywhere"), which :func:`app.domain.accounts.deps.current_user` checks.
- CSRF: a form's token is an HMAC of a random nonce and what the request is bound to: the session's id when
  signed in, otherwise a random value in the ``beacon_csrf`` cookie (a signed double-submit cookie, OWASP's
  recommendation for stateless CSRF protection). A token fetched without a session never verifies against a
  victim's session, and one session's token never verifies against another's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, cast

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.enums import RequestEncodingType, ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.middleware import ASGIMiddleware
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.types import ASGIApp, Message, Receive, Scope, ScopeSession, Send
from litestar.utils.scope.state import ScopeState

from app.core.errors import ClientError
from app.core.sessions import new_session, session_is_valid, valid_session_id
from app.core.tokens import sign_token, verify_token

CSRF_COOKIE = "beacon_csrf"
FLASH_COOKIE = "beacon_flash"
CSRF_FIELD = "_csrf_token"
CSRF_HEADER = "x-csrftoken"
MAX_COOKIE_HEADER = 8192
"""Bytes of ``Cookie`` header the api accepts; Nginx's ``large_client_header_buffers`` allows the same."""
FLASH_TTL = 300
"""Seconds a flash message for a visitor without a session survives in its cookie."""

_CSRF_NONCE = re.compile(r"[0-9a-f]{32}")
_CSRF_TOKEN = re.compile(r"[0-9a-f]{96}")
_LOADED_ID = "beacon.session_id"
_ROTATE = "beacon.rotate_session"
_NEW_ID = "beacon.new_session_id"
_CSRF_NEW_COOKIE = "beacon.csrf_cookie"
_CSRF_SECRET = "beacon.csrf_secret"


class CookieTooLarge(ClientError):
    status_code = 431
    title = "Request header fields too large"


def start_session(request: Request[Any, Any, Any], user_id: int, epoch: int) -> None:
    """Sign ``user_id`` in: a fresh session under a new id; whatever session the request had is deleted."""
    request.set_session(new_session(user_id, epoch))
    rotate_session(request)


def rotate_session(request: Request[Any, Any, Any]) -> None:
    """Give this request's session a new id when the response is sent (sign-in, password change, sign-out).

    The page rendered by this request already carries CSRF tokens for the new id.
    """
    scope = cast("dict[str, Any]", request.scope)
    scope[_ROTATE] = True
    scope[_NEW_ID] = secrets.token_hex(32)
    state = ScopeState.from_scope(request.scope)
    secret = scope.get(_CSRF_SECRET)
    if isinstance(secret, str) and isinstance(state.csrf_token, str):
        binding = _csrf_binding(request)
        if binding is not None:
            state.csrf_token = csrf_token(secret, binding)


def _current_session_id(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The id the session of this request is (or will be) stored under; ``None`` without a session."""
    scope = cast("dict[str, Any]", connection.scope)
    session = scope.get("session")
    if scope.get(_ROTATE):
        return str(scope[_NEW_ID]) if isinstance(session, dict) and isinstance(session.get("user_id"), int) else None
    loaded = scope.get(_LOADED_ID)
    return str(loaded) if loaded else None


class SessionBackend(ServerSideSessionBackend):
    """Litestar's server-side backend, minus sessions for nobody and client-chosen ids (see the module)."""

    config: SessionConfig

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        scope = cast("dict[str, Any]", connection.scope)
        if _NEW_ID not in scope:
            scope[_NEW_ID] = self.generate_session_id()
        return _current_session_id(connection) or str(scope[_NEW_ID])

    async def load_from_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
        session_id = valid_session_id(connection.cookies.get(self.config.key))
        if session_id is not None:
            store = self.config.get_store_from_app(connection.scope["app"])
            raw = await store.get(session_id)
            data = self.deserialize_data(raw) if raw is not None else None
            if session_is_valid(data, self.config.lifetime):
                connection.scope[_LOADED_ID] = session_id  # type: ignore[literal-required]
                return cast("dict[str, Any]", data)
            if raw is not None:
                await store.delete(session_id)
        flashes = verify_token(self.config.secret, "flash", connection.cookies.get(FLASH_COOKIE) or "")
        if flashes is not None and isinstance(flashes.get("flash"), list):
            return {"flash": flashes["flash"]}
        return {}

    async def store_in_message(self, scope_session: ScopeSession, message: Message,
                               connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        scope = cast("dict[str, Any]", connection.scope)
        store = self.config.get_store_from_app(scope["app"])
        headers = MutableScopeHeaders.from_message(message)
        cookie_params: dict[str, Any] = {"path": self.config.path, "domain": self.config.domain,
                                         "secure": self.config.secure, "httponly": True,
                                         "samesite": self.config.samesite}
        data = scope_session if isinstance(scope_session, dict) else {}
        loaded = scope.get(_LOADED_ID)
        now = time.time()
        remaining = 0
        if session_is_valid(data, self.config.lifetime, now):
            remaining = min(self.config.max_age, int(data["created"] + self.config.lifetime - now))
        if remaining > 0:
            session_id = self.get_session_id(connection)
            if loaded and loaded != session_id:
                await store.delete(loaded)
            await store.set(session_id, self.serialize_data(data, connection.scope), expires_in=remaining)
            headers.add("Set-Cookie", Cookie(key=self.config.key, value=session_id, max_age=remaining,
                                             **cookie_params).to_header(header=""))
            # What a signed-in user sees is theirs alone: no shared or browser cache may keep it.
            headers["Cache-Control"] = "no-store"
            if FLASH_COOKIE in connection.cookies:
                headers.add("Set-Cookie", _expired(FLASH_COOKIE, cookie_params))
            return
        if loaded:
            await store.delete(loaded)
        if self.config.key in connection.cookies:
            headers.add("Set-Cookie", _expired(self.config.key, cookie_params))
        flashes = data.get("flash")
        if isinstance(flashes, list) and flashes:
            value = sign_token(self.config.secret, "flash", {"flash": flashes[-5:]}, FLASH_TTL)
            headers.add("Set-Cookie", Cookie(key=FLASH_COOKIE, value=value, max_age=FLASH_TTL,
                                             **cookie_params).to_header(header=""))
        elif FLASH_COOKIE in connection.cookies:
            headers.add("Set-Cookie", _expired(FLASH_COOKIE, cookie_params))


def _expired(key: str, params: dict[str, Any]) -> str:
    return Cookie(key=key, value="", max_age=0, expires=0, **params).to_header(header="")


@dataclass
class SessionConfig(ServerSideSessionConfig):
    _backend_class = SessionBackend

    secret: str = field(default="", repr=False)
    """Key that signs flash cookies (the instance's secret key)."""
    lifetime: int = 30 * 24 * 3600
    """Absolute lifetime of a session in seconds, however active it is."""


# --- CSRF ----------------------------------------------------------------------------------------------

def csrf_token(secret: str, binding: str) -> str:
    """A fresh token for ``binding`` (``s:<session id>`` or ``a:<cookie nonce>``): 32 hex nonce + 64 hex HMAC."""
    nonce = secrets.token_hex(16)
    return nonce + _csrf_mac(secret, binding, nonce)


def csrf_token_matches(secret: str, binding: str, token: str) -> bool:
    if not _CSRF_TOKEN.fullmatch(token):
        return False
    return hmac.compare_digest(token[32:], _csrf_mac(secret, binding, token[:32]))


def _csrf_mac(secret: str, binding: str, nonce: str) -> str:
    return hmac.new(secret.encode(), f"beacon-csrf|{binding}|{nonce}".encode(), hashlib.sha256).hexdigest()


def _csrf_binding(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    session_id = _current_session_id(connection)
    if session_id is not None:
        return f"s:{session_id}"
    scope = cast("dict[str, Any]", connection.scope)
    nonce = scope.get(_CSRF_NEW_COOKIE) or connection.cookies.get(CSRF_COOKIE)
    return f"a:{nonce}" if nonce and _CSRF_NONCE.fullmatch(nonce) else None




class CsrfMiddleware(ASGIMiddleware):
    """Checks the CSRF token of every unsafe request and offers one to every page (see the module).

    Runs inside the session middleware, which it reads. Takes the token from the ``X-CSRFToken`` header or
    the ``_csrf_token`` form field; a failure is a 403. Paths under ``/api/`` (API keys, no cookies) are skipped.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, secret: str, secure: bool) -> None:
        self.secret = secret
        self.secure = secure

    @staticmethod
    def should_bypass_for_scope(scope: Scope) -> bool:
        return scope["path"].startswith("/api/")

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        request: Request[Any, Any, Any] = scope["litestar_app"].request_class(scope=scope, receive=receive)
        values = cast("dict[str, Any]", scope)
        values[_CSRF_SECRET] = self.secret
        state = ScopeState.from_scope(scope)
        if request.method in ("GET", "HEAD", "OPTIONS"):
            if _csrf_binding(request) is None:
                values[_CSRF_NEW_COOKIE] = secrets.token_hex(16)
            state.csrf_token = csrf_token(self.secret, cast("str", _csrf_binding(request)))
            await next_app(scope, receive, self._send_cookie(scope, send))
            return
        token = request.headers.get(CSRF_HEADER)
        if not token and request.content_type[0] in (RequestEncodingType.URL_ENCODED, RequestEncodingType.MULTI_PART):
            value = (await request.form()).get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
        binding = _csrf_binding(request)
        if not token or binding is None or not csrf_token_matches(self.secret, binding, token):
            raise PermissionDeniedException("CSRF token verification failed")
        # A page rendered in answer (a form with errors) gets a fresh token of the same binding.
        state.csrf_token = csrf_token(self.secret, binding)
        await next_app(scope, receive, send)

    def _send_cookie(self, scope: Scope, send: Send) -> Send:
        nonce = cast("dict[str, Any]", scope).get(_CSRF_NEW_COOKIE)
        if nonce is None:
            return send

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message).add("Set-Cookie", Cookie(
                    key=CSRF_COOKIE, value=nonce, path="/", secure=self.secure, httponly=True,
                    samesite="lax").to_header(header=""))
            await send(message)

        return wrapped


class CookieLimitMiddleware(ASGIMiddleware):
    """Refuses a request whose ``Cookie`` headers add up to more than :data:`MAX_COOKIE_HEADER` bytes (431)."""

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        size = sum(len(value) for name, value in scope["headers"] if name.lower() == b"cookie")
        if size > MAX_COOKIE_HEADER:
            raise CookieTooLarge(f"the Cookie header has {size} bytes; at most {MAX_COOKIE_HEADER} are accepted. "
                                 "Delete this site's cookies in the browser and reload.")
        await next_app(scope, receive, send)
