"""One error hierarchy for every Beacon process, and the mapper that turns it into HTTP answers.

API routes answer ``application/problem+json`` (RFC 9457); UI routes (``text/html`` requests) get a Beacon
error page. Anything unexpected becomes a 500 without a traceback in the response (it is logged).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.response import Redirect
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DataError

from app.core.error_pages import error_page
from app.core.logging import current_request_id

logger = logging.getLogger("beacon.errors")


class ConfigError(Exception):
    """Configuration is missing or invalid; the process cannot start."""


class AppError(Exception):
    """Base of every error Beacon raises on purpose."""

    status_code = 500
    title = "Internal server error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class ClientError(AppError):
    status_code = 400
    title = "Bad request"


class Unauthorized(ClientError):
    status_code = 401
    title = "Unauthorized"


class Forbidden(ClientError):
    status_code = 403
    title = "Forbidden"


class NotFound(ClientError):
    status_code = 404
    title = "Not found"


class Conflict(ClientError):
    status_code = 409
    title = "Conflict"


class PayloadTooLarge(ClientError):
    status_code = 413
    title = "Payload too large"


class TooManyRequests(ClientError):
    status_code = 429
    title = "Too many requests"


class ServiceUnavailable(AppError):
    status_code = 503
    title = "Service unavailable"


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response[Any]:
    """An ``application/problem+json`` response (RFC 9457), with the extension member ``request_id`` (the
    request's ``X-Request-ID``) when there is one, so a user can quote it and an operator find its log lines."""
    content: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    request_id = current_request_id()
    if request_id is not None:
        content["request_id"] = request_id
    return Response(
        content=content,
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def _wants_html(request: Request[Any, Any, Any]) -> bool:
    """Browsers get pages; API clients, internal callers and scripts asking for JSON get problem+json."""
    if request.url.path.startswith("/api/"):
        return False
    accept = request.headers.get("accept", "")
    if "text/html" in accept:
        return True
    # Outside /api/ the api process serves pages: a client that does not ask for JSON is treated as a browser.
    return getattr(request.app, "template_engine", None) is not None and "json" not in accept


_BODY_MESSAGES = {
    # Litestar's words for a body it could not read, as a client would put them.
    "'data'": "the request body is empty: send a JSON object",
    "Input data was truncated": "JSON is malformed: the body ends before the JSON does",
}


def _body_message(exc: HTTPException) -> str:
    """``exc``'s detail, in a client's words when it is Litestar's for a body it could not read."""
    return _BODY_MESSAGES.get(exc.detail, exc.detail) if exc.status_code == 400 else exc.detail


def _describe_validation(exc: ValidationException) -> str:
    extra = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for item in extra:
        if isinstance(item, dict):
            key = item.get("key")
            message = item.get("message", "invalid")
            if (clear := _BODY_MESSAGES.get(str(message))) is not None and key in (None, "data"):
                parts.append(clear)
                continue
            parts.append(f"{key}: {message}" if key else str(message))
    return "; ".join(parts) or exc.detail


def _plausible_path(request: Request[Any, Any, Any]) -> bool:
    """Under a Plausible-compatible API (``create_service_app(plausible_prefixes=...)``)."""
    prefixes: tuple[str, ...] = getattr(request.app.state, "plausible_prefixes", ())
    return bool(prefixes) and request.url.path.startswith(prefixes)


def _render(request: Request[Any, Any, Any], status: int, title: str, detail: str,
            headers: dict[str, str] | None = None) -> Response[Any]:
    if status < 500 and _plausible_path(request):
        # Errors raised before a Plausible controller's own handlers run (routing, the input guard) keep
        # Plausible's shape too, as the OpenAPI document declares.
        return Response({"error": detail}, status_code=status, headers=headers)
    if _wants_html(request):
        if status == 401 and request.method in ("GET", "HEAD"):
            # A browser opening a page it must sign in for goes to the sign-in form, and comes back after.
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return Redirect(f"/login?{urlencode({'next': target})}", status_code=302)
        return error_page(request, status, title, detail, headers)
    return problem(status, title, detail, headers)


def app_error_handler(request: Request[Any, Any, Any], exc: AppError) -> Response[Any]:
    return _render(request, exc.status_code, exc.title, exc.detail, exc.headers)


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code == HTTP_500_INTERNAL_SERVER_ERROR:
        return internal_error_handler(request, exc)
    detail = _describe_validation(exc) if isinstance(exc, ValidationException) else _body_message(exc)
    title = "Bad request" if exc.status_code == 400 else exc.detail
    return _render(request, exc.status_code, title, detail, dict(exc.headers or {}))


def unreadable_body(exc: Exception) -> str | None:
    """The client's words for a request body Litestar could not decode, or None when ``exc`` is not that.

    Litestar raises ``SerializationException`` for both a body it cannot decode and a response it cannot encode;
    only the first (a msgspec ``DecodeError`` beneath) is the client's. Handlers never meet it (Litestar turns it
    into a 400 while it reads their arguments), but Sentry's Litestar integration reads the body before the
    handler does and lets it through: with Sentry on, malformed JSON was a 500."""
    if isinstance(exc, SerializationException) and isinstance(exc.__cause__, msgspec.DecodeError):
        return _BODY_MESSAGES.get(exc.detail, exc.detail)
    return None


def serialization_error_handler(request: Request[Any, Any, Any], exc: SerializationException) -> Response[Any]:
    if (detail := unreadable_body(exc)) is not None:
        return _render(request, 400, "Bad request", detail)
    return internal_error_handler(request, exc)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return _render(request, HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error",
                   "Something went wrong on our side; it has been logged.")


def _data_error_detail(exc: DataError) -> str:
    diag = getattr(exc.orig, "diag", None)
    reason = getattr(diag, "message_primary", None) or "a value does not fit its field"
    return f"a value is out of range for its field: {reason}"


def data_error_handler(request: Request[Any, Any, Any], exc: DataError) -> Response[Any]:
    """A value PostgreSQL refused to store (too long, out of range): the edge missed it, still the client's."""
    logger.warning("input refused by PostgreSQL on %s %s: %s", request.method, request.url.path,
                   str(exc.orig).splitlines()[0] if exc.orig else exc)
    return _render(request, 400, "Bad request", _data_error_detail(exc))


def plausible_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    """Errors of the Plausible-compatible APIs (Sites, Stats) in Plausible's shape: ``{"error": "..."}``."""
    if isinstance(exc, AppError):
        return Response({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    if isinstance(exc, ValidationException):
        return Response({"error": _describe_validation(exc)}, status_code=400)
    if isinstance(exc, DataError):
        return Response({"error": _data_error_detail(exc)}, status_code=400)
    if isinstance(exc, HTTPException):
        return Response({"error": _body_message(exc)}, status_code=exc.status_code, headers=dict(exc.headers or {}))
    return internal_error_handler(request, exc)


PLAUSIBLE_EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    AppError: plausible_error_handler,
    HTTPException: plausible_error_handler,
    DataError: plausible_error_handler,
}
"""Pass to a controller of a Plausible-compatible API."""

EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    AppError: app_error_handler,
    HTTPException: http_exception_handler,
    DataError: data_error_handler,
    SerializationException: serialization_error_handler,
    HTTP_500_INTERNAL_SERVER_ERROR: internal_error_handler,
    Exception: internal_error_handler,
}
"""Pass to ``Litestar(exception_handlers=...)`` in every process."""

__all__ = [
    "EXCEPTION_HANDLERS",
    "AppError",
    "ClientError",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "problem",
]
