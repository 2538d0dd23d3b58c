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
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    PathItem,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)

from app.core.sessions import SESSION_COOKIE

BEARER = "bearerAuth"
"""Security scheme of the key-authenticated APIs: ``Authorization: Bearer <api key>``."""
SESSION = "sessionCookie"
"""Security scheme of routes for signed-in browsers: the ``beacon_session`` cookie."""

SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    BEARER: SecurityScheme(type="http", scheme="bearer",
                           description="An API key made on the account page or with `beacon apikey create`."),
    SESSION: SecurityScheme(type="apiKey", name=SESSION_COOKIE, security_scheme_in="cookie",
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
    """Error responses with Plausible's ``{"error": "..."}`` body; an operation that takes an API key (it may
    answer 401) may also answer 429, once the key has used its hourly requests."""
    codes = (*codes, 429) if 401 in codes and 429 not in codes else codes
    return {code: ResponseSpec(data_container=PlausibleError, description=_MEANINGS[code],
                               generate_examples=False) for code in sorted(codes)}


def problem_responses(*codes: int) -> dict[int, ResponseSpec]:
    """Error responses with a problem+json body."""
    return {code: ResponseSpec(data_container=Problem, description=_MEANINGS[code], generate_examples=False,
                               media_type="application/problem+json") for code in codes}


def _problem_schema() -> Schema:
    text = Schema(type=OpenAPIType.STRING)
    return Schema(type=OpenAPIType.OBJECT, required=["type", "title", "status", "detail"],
                  properties={"type": text, "title": text, "status": Schema(type=OpenAPIType.INTEGER), "detail": text})


def events_api_path() -> PathItem:
    """``POST /api/event`` as the ingest service answers it behind the same host (Plausible's Events API).

    The api process does not serve it; it is in the document because it is part of Beacon's public API.
    """
    text = Schema(type=OpenAPIType.STRING)
    scalar = Schema(one_of=[text, Schema(type=OpenAPIType.NUMBER), Schema(type=OpenAPIType.BOOLEAN)])
    event = Schema(
        type=OpenAPIType.OBJECT, required=["name", "url", "domain"],
        properties={
            "name": Schema(type=OpenAPIType.STRING, description="pageview or a custom event name"),
            "url": Schema(type=OpenAPIType.STRING, description="The page's URL"),
            "domain": Schema(type=OpenAPIType.STRING, description="The site's domain; several comma-separated"),
            "referrer": text,
            "props": Schema(type=OpenAPIType.OBJECT, additional_properties=scalar,
                            description="Custom properties (scalars)"),
            "revenue": Schema(type=OpenAPIType.OBJECT, properties={"currency": text, "amount": scalar}),
            "interactive": Schema(type=OpenAPIType.BOOLEAN),
        },
    )
    problem = OpenAPIMediaType(schema=_problem_schema())
    responses: dict[str, OpenAPIResponse | Reference] = {str(code): OpenAPIResponse(description=_MEANINGS[code],
                                            content={"application/problem+json": problem})
                 for code in (400, 413, 429, 503)}
    responses["202"] = OpenAPIResponse(description="Stored (or dropped: a bot, an unknown or excluded site)",
                                       content={"text/plain": OpenAPIMediaType(schema=text)})
    return PathItem(post=Operation(
        tags=["Events API"], operation_id="RecordEvent", summary="Record a pageview or custom event",
        description="Plausible's Events API, answered by the ingest service. Trackers send the body as "
                    "text/plain; the visitor's User-Agent and X-Forwarded-For identify the visitor.",
        request_body=RequestBody(content={"application/json": OpenAPIMediaType(schema=event)}, required=True),
        responses=responses, security=[],
    ))


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
           "components", "events_api_path", "plausible_responses", "problem_responses"]
