"""A loopback server speaking Google's OAuth 2 token endpoint and the GA4 Data API's ``runReport``.

It implements ``POST /token`` (``grant_type=refresh_token``) and ``POST /v1beta/properties/{id}:runReport``
(``dateRanges``, ``dimensions``, ``metrics``, ``limit``/``offset``; answers ``dimensionHeaders``,
``metricHeaders``, ``rows`` of ``dimensionValues``/``metricValues`` and ``rowCount``), with faults injected per
test: quota (429), server errors (503), an expired token (401) and a property without access (403).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import stamina

from services.integrations.ga4 import REPORTS, Credentials

PROPERTY = "123456789"
CREDENTIALS = Credentials("client-1", "secret-1", "refresh-1")


@dataclass
class Google:
    """What the fake Google serves and saw."""

    rows: dict[str, list[list[str]]] = field(default_factory=dict)
    faults: list[int] = field(default_factory=list)
    """Statuses to answer runReport with before serving it (consumed in order)."""
    token_status: int = 200
    tokens_issued: int = 0
    valid_tokens: set[str] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _handler(google: Google) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/token":
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                if google.token_status != 200 or form != {"grant_type": "refresh_token", "client_id": "client-1",
                                                          "client_secret": "secret-1", "refresh_token": "refresh-1"}:
                    self._answer(400, {"error": "invalid_grant", "error_description": "Token has been expired or "
                                                                                     "revoked."})
                    return
                google.tokens_issued += 1
                token = f"token-{google.tokens_issued}"
                google.valid_tokens.add(token)
                self._answer(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer",
                                   "scope": "https://www.googleapis.com/auth/analytics.readonly"})
                return
            if self.path != f"/v1beta/properties/{PROPERTY}:runReport":
                self._answer(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})
                return
            body = json.loads(raw)
            google.requests.append(body)
            if google.faults:
                status = google.faults.pop(0)
                if status == 401:
                    google.valid_tokens.clear()
                else:
                    message = {429: "Exhausted property tokens per hour.", 403: "User does not have sufficient "
                               "permissions for this property."}.get(status, "Internal error encountered.")
                    self._answer(status, {"error": {"code": status, "message": message}})
                    return
            if self.headers.get("Authorization", "").removeprefix("Bearer ") not in google.valid_tokens:
                self._answer(401, {"error": {"code": 401, "message": "Request had invalid authentication "
                                                                     "credentials.", "status": "UNAUTHENTICATED"}})
                return
            dimensions = [d["name"] for d in body["dimensions"]]
            metrics = [m["name"] for m in body["metrics"]]
            table = next(r.table for r in REPORTS if list(r.dimensions) == dimensions)
            rows = google.rows.get(table, [])
            offset, limit = int(body.get("offset", 0)), int(body.get("limit", 10000))
            page = rows[offset:offset + limit]
            answer: dict[str, Any] = {
                "dimensionHeaders": [{"name": d} for d in dimensions],
                "metricHeaders": [{"name": m, "type": "TYPE_INTEGER"} for m in metrics],
                "rowCount": len(rows), "kind": "analyticsData#runReport",
            }
            if page:
                answer["rows"] = [{"dimensionValues": [{"value": v} for v in row[:len(dimensions)]],
                                   "metricValues": [{"value": v} for v in row[len(dimensions):]]} for row in page]
            self._answer(200, answer)

    return Handler


@contextmanager
def serve_google() -> Iterator[Google]:
    """The fake Google on a free loopback port, with stamina's waits between retries switched off."""
    state = Google()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stamina.set_testing(True, attempts=10, cap=True)  # no waiting between retries, the client's attempts kept
    yield state
    stamina.set_testing(False)
    server.shutdown()
    server.server_close()
