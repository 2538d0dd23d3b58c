"""Error pages: every error a browser can meet is a Beacon page with a way back, never a traceback.

The api renders ``error.html`` in the layout; processes without templates fall back to a self-contained page.
This module imports nothing above it, so :mod:`app.core.errors` can render it without an import cycle.
"""

from __future__ import annotations

import html
import logging
from typing import Any, cast

from litestar import Request, Response
from litestar.plugins.jinja import JinjaTemplateEngine

from app.core.logging import current_request_id
from app.core.sessions import SESSION_COOKIE

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
            "session" not in scope and SESSION_COOKIE in request.cookies)
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
