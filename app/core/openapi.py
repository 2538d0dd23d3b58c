"""What the OpenAPI document says beyond handlers' signatures: error bodies, security schemes, the docs page.

Error answers are declared with the body each one really has: Plausible's ``{"error": "..."}`` on the
Plausible-compatible APIs (Sites, Stats), RFC 9457 problem details elsewhere. The docs page (Swagger UI)
loads its script and style sheet from Beacon's own fingerprinted static files (``make assets`` vendors them
from the ``swagger-ui-dist`` npm package), so it renders under Beacon's Content-Security-Policy
(``script-src 'self'; style-src 'self'``), which forbids both CDNs and inline scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

import msgspec
from litestar.connection import Request as LitestarRequest
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

BEARER = "bearerAuth"
"""Security scheme of the key-authenticated APIs: ``Authorization: Bearer <api key>``."""
SESSION = "sessionCookie"
"""Security scheme of routes for signed-in browsers: the ``beacon_session`` cookie."""

SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    BEARER: SecurityScheme(type="http", scheme="bearer",
                           description="An API key made on the account page or with `beacon apikey create`."),
    SESSION: SecurityScheme(type="apiKey", name="beacon_session", security_scheme_in="cookie",
                            description="The session of a signed-in browser."),
}


class PlausibleError(msgspec.Struct):
    """An error of the Plausible-compatible APIs, in Plausible's shape."""

    error: str


class Problem(msgspec.Struct):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str


_MEANINGS = {
    400: "Invalid input; the message says which part and why",
    401: "Missing, unknown or revoked credentials",
    403: "The credentials lack the scope or role this needs",
    404: "No such resource, or one the caller may not see",
    409: "Conflicts with what exists",
    413: "The body is larger than allowed",
    429: "Too many requests; retry after Retry-After seconds",
    503: "A component Beacon needs is unavailable; retry later",
}


def plausible_responses(*codes: int) -> dict[int, ResponseSpec]:
    """Error responses with Plausible's ``{"error": "..."}`` body."""
    return {code: ResponseSpec(data_container=PlausibleError, description=_MEANINGS[code],
                               generate_examples=False) for code in codes}


def problem_responses(*codes: int) -> dict[int, ResponseSpec]:
    """Error responses with a problem+json body."""
    return {code: ResponseSpec(data_container=Problem, description=_MEANINGS[code], generate_examples=False,
                               media_type="application/problem+json") for code in codes}


def components() -> Components:
    return Components(security_schemes=dict(SECURITY_SCHEMES))


class SelfHostedSwaggerUI(OpenAPIRenderPlugin):
    """Swagger UI from Beacon's static files and a start script of its own: no CDN, no inline script.

    ``asset_url`` maps a source asset name to its URL (:meth:`app.core.assets.Assets.url`); it is asked at
    each render, so a new build of the assets is picked up without a restart.
    """

    SCRIPT, STYLE, INIT = "swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css", "js/swagger-init.js"

    def __init__(self, asset_url: Callable[[str], str], path: str = "/swagger") -> None:
        super().__init__(path=path)
        self.asset_url = asset_url

    def render(self, request: LitestarRequest[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = escape(str(openapi_schema.get("info", {}).get("title", "API")))
        spec = escape(self.get_openapi_json_route(request))
        script, style, init = (escape(self.asset_url(name)) for name in (self.SCRIPT, self.STYLE, self.INIT))
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{style}">
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec}"></div>
<script src="{script}"></script>
<script src="{init}"></script>
</body>
</html>
""".encode()


__all__ = ["BEARER", "SECURITY_SCHEMES", "SESSION", "PlausibleError", "Problem", "SelfHostedSwaggerUI",
           "components", "plausible_responses", "problem_responses"]
