"""The GA4 Data API client against a real HTTP server on loopback speaking the documented shapes.

The server implements Google's OAuth 2 token endpoint (``grant_type=refresh_token``) and
``POST /v1beta/properties/{id}:runReport`` (``dateRanges``, ``dimensions``, ``metrics``, ``limit``/``offset``;
answers ``dimensionHeaders``, ``metricHeaders``, ``rows`` of ``dimensionValues``/``metricValues`` and
``rowCount``), with faults injected per test: quota (429), server errors (503), an expired token (401) and a
property without access (403).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import stamina

from services.integrations.ga4 import REPORTS, Client, Credentials, GA4Error, convert

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


@pytest.fixture
def google() -> Iterator[Google]:
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


def client(google: Google, **options: Any) -> Client:
    return Client(CREDENTIALS, PROPERTY, httpx.Client(timeout=5), data_api=google.url,
                  token_url=f"{google.url}/token", **options)


VISITORS = next(r for r in REPORTS if r.table == "imported_visitors")
SOURCES = next(r for r in REPORTS if r.table == "imported_sources")


def test_pages_through_a_report_and_converts_its_rows(google: Google) -> None:
    """Three rows in pages of two: two requests with offsets 0 and 2; rows become imported_visitors rows."""
    google.rows["imported_visitors"] = [["20260301", "10", "30", "4", "12", "600"],
                                        ["20260302", "5", "5", "5", "5", "0"],
                                        ["20260303", "1", "2", "0", "1", "42.6"]]
    ga = client(google)
    got = []
    offset = 0
    while True:
        rows, count = ga.run_report(VISITORS, date(2026, 3, 1), date(2026, 3, 3), offset, limit=2)
        got += rows
        offset += len(rows)
        if offset >= count:
            break
    assert ["0", "2"] == [r["offset"] for r in google.requests]
    assert {"name": "bounces", "expression": "sessions - engagedSessions"} in google.requests[0]["metrics"]
    assert [{"startDate": "2026-03-01", "endDate": "2026-03-03"}] == google.requests[0]["dateRanges"]
    assert [{"date": date(2026, 3, 3), "visitors": 1, "pageviews": 2, "bounces": 0, "visit_duration": 43,
             "visits": 1}] == [convert("imported_visitors", got[2])]
    assert 1 == google.tokens_issued


def test_sources_follow_plausibles_conversion(google: Google) -> None:
    """google -> Google, (direct) -> empty, (not set) values empty."""
    row = {"date": "20260301", "sessionSource": "(direct)", "sessionMedium": "(none)",
           "sessionCampaignName": "(not set)", "sessionManualAdContent": "(not set)",
           "sessionGoogleAdsKeyword": "(not set)", "pageReferrer": "", "screenPageViews": "3", "totalUsers": "2",
           "sessions": "2", "bounces": "1", "userEngagementDuration": "20"}
    direct = convert("imported_sources", row)
    assert direct is not None and ("", "", "") == (direct["source"], direct["utm_medium"], direct["utm_campaign"])
    google_row = convert("imported_sources", {**row, "sessionSource": "google", "sessionMedium": "organic"})
    assert google_row is not None and ("Google", "organic") == (google_row["source"], google_row["utm_medium"])


def test_quota_and_server_errors_are_retried(google: Google) -> None:
    """A 429 and a 503 before the answer: three requests, one answer."""
    google.rows["imported_visitors"] = [["20260301", "1", "1", "1", "1", "0"]]
    google.faults = [429, 503]
    rows, count = client(google).run_report(VISITORS, date(2026, 3, 1), date(2026, 3, 1), 0)
    assert (1, 1) == (len(rows), count)
    assert 3 == len(google.requests)


def test_quota_exhausted_is_reported_in_words(google: Google) -> None:
    """429 on every attempt: given up after the attempts, with Google's message."""
    google.faults = [429] * 3
    with pytest.raises(GA4Error, match=r"429 \(quota exceeded\): Exhausted property tokens per hour.*3 attempts"):
        client(google, attempts=3).run_report(VISITORS, date(2026, 3, 1), date(2026, 3, 1), 0)


def test_expired_token_is_refreshed_once(google: Google) -> None:
    """A 401 gets a new access token from the refresh token, and the request goes through."""
    google.rows["imported_sources"] = []
    google.faults = [401]
    rows, count = client(google).run_report(SOURCES, date(2026, 3, 1), date(2026, 3, 1), 0)
    assert ([], 0) == (rows, count)
    assert 2 == google.tokens_issued


def test_forbidden_property_is_reported_in_words(google: Google) -> None:
    """403: no retry, a message naming the property and the access it needs."""
    google.faults = [403]
    with pytest.raises(GA4Error, match="no access to GA4 property 123456789 \\(403\\): User does not have"):
        client(google).run_report(VISITORS, date(2026, 3, 1), date(2026, 3, 1), 0)
    assert 1 == len(google.requests)


def test_refused_credentials_are_reported_in_words(google: Google) -> None:
    """The token endpoint refuses the refresh token: its description is shown, nothing is fetched."""
    google.token_status = 400
    with pytest.raises(GA4Error, match="Google refused the credentials: Token has been expired or revoked"):
        client(google).run_report(VISITORS, date(2026, 3, 1), date(2026, 3, 1), 0)
    assert [] == google.requests


@pytest.mark.parametrize(("raw", "message"), [
    pytest.param("{", "creds.json: not JSON", id="not-json"),
    pytest.param('{"client_id": "a", "client_secret": "b"}', "field 'refresh_token' is missing", id="missing"),
    pytest.param("[]", "a JSON object", id="not-object"),
])
def test_bad_credentials_file(raw: str, message: str) -> None:
    """Credentials that cannot be used are refused naming the file and field."""
    with pytest.raises(GA4Error, match=message):
        Credentials.from_json(raw, "creds.json")


def test_bad_metric_value_is_refused() -> None:
    """A negative count is refused naming the metric."""
    with pytest.raises(GA4Error, match="metric totalUsers: negative value"):
        convert("imported_visitors", {"date": "20260301", "totalUsers": "-1", "screenPageViews": "1",
                                      "bounces": "0", "sessions": "1", "userEngagementDuration": "0"})
