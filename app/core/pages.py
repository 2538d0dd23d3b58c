"""Server-rendered Beacon error pages (never a traceback, always a Beacon page)."""

from __future__ import annotations

import html
from typing import Any

from litestar import Response

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{status} {title} · Beacon</title><link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/css/beacon.css"></head>
<body><main class="narrow"><h1>{title}</h1><p>{detail}</p><p><a href="/">Back to Beacon</a></p></main></body></html>
"""


def error_page(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response[Any]:
    body = _PAGE.format(status=status, title=html.escape(title), detail=html.escape(detail))
    return Response(body, status_code=status, media_type="text/html", headers=headers)
