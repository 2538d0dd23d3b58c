"""Server-rendered pages: error pages in the layout, form errors next to their fields, flash messages, sparklines.

Every error a browser can meet is a Beacon page with a way back (the api renders ``error.html`` in the
layout; processes without templates fall back to a self-contained page), never a traceback.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass, field
from typing import Any, cast

from litestar import Request, Response
from litestar.plugins.jinja import JinjaTemplateEngine

from app.core.assets import Assets
from app.core.errors import AppError
from app.core.logging import current_request_id
from app.core.timezones import site_timezones

logger = logging.getLogger("beacon.pages")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{status} {title} · Beacon</title><link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/css/beacon.css"></head>
<body><main class="narrow" id="main"><h1>{title}</h1><p>{detail}</p>{request_id}
<p><a href="/">Back to Beacon</a></p></main>
</body></html>
"""

TITLES = {
    400: "That did not work",
    401: "Please sign in",
    403: "You cannot open this",
    404: "Page not found",
    405: "Not allowed here",
    409: "That exists already",
    413: "Too much data",
    429: "Slow down a little",
    500: "Something went wrong",
    502: "Something went wrong",
    503: "Temporarily unavailable",
    504: "Temporarily unavailable",
}
"""Page headings by status: they say what happened in words, not in HTTP."""

_FRIENDLY_DETAIL = {
    "Not Found": "There is no page at this address. It may have moved, or the link may be mistyped.",
    "CSRF token verification failed": "The form had expired or came from another site. Reload the page and "
                                      "send it again.",
}


def error_page(request: Request[Any, Any, Any], status: int, title: str, detail: str,
               headers: dict[str, str] | None = None) -> Response[Any]:
    """The Beacon error page for ``status`` in the site's layout (``error.html``) when the app has templates."""
    detail = _FRIENDLY_DETAIL.get(detail, detail)
    if status == 405:
        detail = f"This address does not accept a {request.method} request. Go back and use the page's links."
    heading = TITLES.get(status, title)
    detail = detail[:1].upper() + detail[1:]
    engine = getattr(request.app, "template_engine", None)
    if isinstance(engine, JinjaTemplateEngine):
        # An unknown address is answered before the session middleware runs: the cookie is all there is.
        scope = cast("dict[str, Any]", request.scope)
        session = scope.get("session")
        signed_in = (isinstance(session, dict) and isinstance(session.get("user_id"), int)) or (
            "session" not in scope and "beacon_session" in request.cookies)
        try:
            body = engine.get_template("error.html").render(
                status=status, heading=heading, title=title, detail=detail, request=request, user=None,
                signed_in=signed_in, csrf_input="", request_id=current_request_id())
        except Exception:
            logger.exception("cannot render the error page for %s", status)
        else:
            return Response(body, status_code=status, media_type="text/html",
                            headers={"Cache-Control": "no-store", **(headers or {})})
    request_id = current_request_id()
    shown_id = f'<p class="request-id">Request id <code>{html.escape(request_id)}</code></p>' if request_id else ""
    body = _PAGE.format(status=status, title=html.escape(heading), detail=html.escape(detail), request_id=shown_id)
    return Response(body, status_code=status, media_type="text/html", headers=headers)


# --- forms ---------------------------------------------------------------------------------------------

_FIELD_MESSAGE = re.compile(r"^([a-z_]+): (.+)$", re.DOTALL)


@dataclass
class FormState:
    """What a form shows: the values to keep and the server's errors, by field name."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    """Field name → message shown next to the field."""
    summary: list[tuple[str | None, str]] = field(default_factory=list)
    """(field or ``None``, full message) for the summary above the form."""

    @classmethod
    def failed(cls, error: AppError, values: dict[str, Any]) -> FormState:
        """Beacon's errors name their field as ``field: message``; that message goes next to the field."""
        match = _FIELD_MESSAGE.match(error.detail)
        if match is None:
            return cls(values=values, summary=[(None, error.detail)])
        name, message = match.groups()
        return cls(values=values, errors={name: message[:1].upper() + message[1:]},
                   summary=[(name, error.detail)])

    def value(self, name: str, default: Any = "") -> Any:
        return self.values.get(name, default)


# --- flash messages ------------------------------------------------------------------------------------

_FLASH_KEY = "flash"


def flash(request: Request[Any, Any, Any], message: str, kind: str = "success") -> None:
    """A message for the next page this browser opens (after a redirect)."""
    session = request.scope.get("session")
    messages = list(session.get(_FLASH_KEY, [])) if isinstance(session, dict) else []
    if not isinstance(session, dict):  # no session yet, or one just cleared (sign-out)
        request.set_session({})
    request.session[_FLASH_KEY] = [*messages, [kind, message]][-5:]


def take_flashes(request: Request[Any, Any, Any] | None) -> list[tuple[str, str]]:
    """The pending messages, removed from the session as they are shown."""
    if request is None or not isinstance(request.scope.get("session"), dict) or _FLASH_KEY not in request.session:
        return []
    messages = request.session.pop(_FLASH_KEY, None) or []
    return [(str(kind), str(message)) for kind, message in messages]


# --- sparklines ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sparkline:
    """The geometry of a small inline SVG line chart (drawn by the template, no JavaScript)."""

    width: int
    height: int
    line: str
    """``points`` of the polyline."""
    area: str
    """``points`` of the filled polygon under the line."""
    last: tuple[float, float]


def sparkline(values: list[int], width: int = 120, height: int = 32, pad: float = 2.0) -> Sparkline:
    top = max(values) if values and max(values) > 0 else 1
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    points = [(round(pad + index * step, 1), round(height - pad - (value / top) * (height - 2 * pad), 1))
              for index, value in enumerate(values or [0])]
    line = " ".join(f"{x},{y}" for x, y in points)
    area = f"{points[0][0]},{height} {line} {points[-1][0]},{height}"
    return Sparkline(width, height, line, area, points[-1])


def configure_templates(engine: JinjaTemplateEngine) -> None:
    """Helpers every template may call."""
    engine.engine.globals["asset"] = Assets().url
    engine.engine.globals["flashes"] = take_flashes
    engine.engine.globals["sparkline"] = sparkline
    engine.engine.globals["blank_form"] = FormState()
    engine.engine.globals["timezones"] = sorted(site_timezones())
