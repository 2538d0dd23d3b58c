"""Checks every request passes before anything parses it or hands it to a library or PostgreSQL.

Text that PostgreSQL cannot store (a NUL character, invalid UTF-8) and JSON nested deeper than any Beacon
API needs are refused with a 400 that says what is wrong. msgspec has no depth limit of its own (it raises
``RecursionError`` on deep input), so the depth of a JSON document is measured on its bytes first.

:class:`InputGuardMiddleware` applies them to every request of a process: the path, the query string and
JSON or form bodies. Bodies are read at most ``max_body`` bytes (413 beyond) and replayed to the handler.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date
from typing import Any
from urllib.parse import unquote_to_bytes

from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import InternalServerException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from app.core.errors import ClientError, NotFound, PayloadTooLarge

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a JSON body may have (a Stats API query needs about 8)."""

MIN_DATE = date(1970, 1, 1)
MAX_DATE = date(2999, 12, 31)
"""Every date a query names or resolves to lies in [MIN_DATE, MAX_DATE] (dates and date-times alike), so no
bound, time-zone shift or comparison period leaves the calendar Python and PostgreSQL share."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN_CLOSE = bytes.maketrans(b"[]{}", b"()()")
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_PERCENT_NUL = re.compile(rb"%00")


class InvalidInput(ClientError):
    """Input that no Beacon field can hold; the message names the part of the request."""


class NestedTooDeep(InvalidInput):
    """A JSON document nested deeper than allowed."""


class BodyInterrupted(InvalidInput):
    """The client went away before it had sent its whole body (an upload cancelled or cut off)."""


async def body_stream(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    """The request body's chunks as they arrive (``request.stream()``), where a client that goes away before
    the end raises :class:`BodyInterrupted` (400) instead of Litestar's 500 ("client disconnected
    prematurely", the only ``InternalServerException`` its stream raises): a cancelled upload is the
    client's doing, not an error of ours to log with a traceback."""
    try:
        async for chunk in request.stream():
            yield chunk
    except InternalServerException:
        raise BodyInterrupted("the request body ended before it was complete (the upload was interrupted)") from None


def check_json_bytes(body: bytes, where: str = "body", max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse a JSON document that is not UTF-8, holds a NUL character or nests deeper than ``max_depth``.

    The depth is counted on the bytes outside string literals, so no parser recursion happens; a document
    whose brackets do not balance is refused as invalid JSON. Cost: a few passes of C code over the bytes.

    Raises:
        NestedTooDeep: nested deeper than ``max_depth``.
        InvalidInput: not UTF-8, a NUL, unbalanced brackets; naming ``where`` and the reason.
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{where}: not valid UTF-8 (byte {exc.start})") from None
    if b"\x00" in body or (b"\\u0000" in body and _NUL_ESCAPE.search(body)):
        raise InvalidInput(f"{where}: NUL characters (\\u0000) are not allowed")
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return  # cannot nest deeper than it has brackets (the common case: a few C-level scans)
    brackets = _STRING.sub(b"", body).translate(_OPEN_CLOSE, _NOT_BRACKETS)
    # Each pass removes the innermost level of pairs: after max_depth passes a document within the limit
    # has none left, one nested deeper still has a pair, an unbalanced one only unmatched brackets.
    for _ in range(max_depth):
        if not brackets:
            return
        brackets = brackets.replace(b"()", b"")
    if b"()" in brackets:
        raise NestedTooDeep(f"{where}: JSON nested deeper than {max_depth} levels")
    if brackets:
        raise InvalidInput(f"{where}: not valid JSON (unbalanced brackets)")


def check_text(value: str, where: str, max_length: int | None = None) -> str:
    """``value`` if a text column can store it: no NUL, no lone surrogate, at most ``max_length`` characters.

    Raises:
        InvalidInput: naming ``where``.
    """
    if "\x00" in value:
        raise InvalidInput(f"{where}: NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{where}: not valid Unicode text") from None
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(f"{where}: at most {max_length} characters")
    return value


def check_date(day: date, where: str) -> date:
    """``day`` if it lies in [MIN_DATE, MAX_DATE].

    Raises:
        InvalidInput: naming ``where`` and the allowed range.
    """
    if not MIN_DATE <= day <= MAX_DATE:
        raise InvalidInput(f"{where}: dates from {MIN_DATE.isoformat()} to {MAX_DATE.isoformat()} only")
    return day


def check_urlencoded(raw: bytes, where: str) -> None:
    """Refuse a query string or form body whose decoded values hold NUL or are not UTF-8."""
    if b"\x00" in raw or _PERCENT_NUL.search(raw):
        raise InvalidInput(f"{where}: NUL characters are not allowed")
    try:
        unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{where}: not valid UTF-8 once decoded") from None


def _content_type(scope: Scope) -> bytes:
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower()
    return b""


class InputGuardMiddleware(ASGIMiddleware):
    """Applies the checks above to the path, query string and JSON/form body of every HTTP request.

    A WebSocket upgrade gets the path and query checks; bodies of other media types pass untouched
    (``multipart/form-data`` is checked as text: no Beacon form takes files). A refusal is raised as
    :class:`InvalidInput`; the process's error mapping answers it.
    """

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    def __init__(self, max_body: int = 1024 * 1024) -> None:
        self.max_body = max_body

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        messages = await self._check(scope, receive)
        if not messages:
            await next_app(scope, receive, send)
            return
        replay = iter(messages)

        async def replay_receive() -> ReceiveMessage:
            return next(replay, None) or await receive()

        await next_app(scope, replay_receive, send)

    async def _check(self, scope: Scope, receive: Receive) -> list[ReceiveMessage]:
        """The body's messages once read and checked ([] when the body was not read)."""
        raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
        check_urlencoded(raw_path.split(b"?", 1)[0], "path")
        check_urlencoded(scope.get("query_string", b""), "query string")
        if scope["type"] != ScopeType.HTTP or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return []
        kind = _content_type(scope)
        is_json = kind == b"application/json" or kind.endswith(b"+json")
        is_multipart = kind == b"multipart/form-data"  # no Beacon form takes files: all text
        if not is_json and not is_multipart and kind != b"application/x-www-form-urlencoded":
            return []
        messages: list[ReceiveMessage] = []
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise PayloadTooLarge(f"the body exceeds {self.max_body // 1024} KiB")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if is_json:
            check_json_bytes(body)
        elif is_multipart:
            check_text(body.decode("utf-8", "surrogateescape"), "form")
        else:
            check_urlencoded(body, "form")
        return messages


__all__ = [
    "MAX_DATE", "MAX_JSON_DEPTH", "MIN_DATE", "InputGuardMiddleware", "InvalidInput", "NestedTooDeep", "check_date",
    "check_json_bytes", "check_text", "check_urlencoded",
]


BIGINT_MAX = 2**63 - 1
"""PostgreSQL's largest ``bigint``: the largest id a row can have."""


def existing_id(value: int, field: str) -> int:
    """Ids come from URLs: one outside PostgreSQL's bigint range cannot exist (and must not reach SQL).

    Returns ``value``; raises :class:`NotFound` naming ``field`` otherwise.
    """
    if not 0 < value <= BIGINT_MAX:
        raise NotFound(f"{field}: no such {field.removesuffix('_id')}")
    return value
