"""The analytics, compute and integrations services as real processes."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text

from app.core.db import make_engine
from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.settings import Settings


def seed(settings: Settings) -> int:
    """A site in Europe/Berlin with pageviews around local midnight."""
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        site_id = conn.execute(text("INSERT INTO sites (domain, timezone) "
                                    "VALUES ('berlin.example', 'Europe/Berlin') RETURNING id")).scalar_one()
        times = [
            datetime(2026, 3, 1, 22, 30, tzinfo=UTC),  # 23:30 local on 1 March
            datetime(2026, 3, 1, 23, 30, tzinfo=UTC),  # 00:30 local on 2 March
            datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
            datetime(2026, 3, 3, 12, 0, tzinfo=UTC),
        ]
        for ts in times:
            conn.execute(text("INSERT INTO events (site_id, timestamp, name, visitor_id, hostname, pathname) "
                              "VALUES (:s, :t, 'pageview', 1, 'berlin.example', '/')"), {"s": site_id, "t": ts})
        conn.execute(text("INSERT INTO events (site_id, timestamp, name, visitor_id, hostname, pathname) "
                          "VALUES (:s, :t, 'signup', 1, 'berlin.example', '/')"),
                     {"s": site_id, "t": times[2]})
    engine.dispose()
    return int(site_id)


def call(settings: Settings, port: int, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", params=params,
                     headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=10)


def test_pageviews_by_local_day(settings: Settings, serve: Callable[[str], int], db: None) -> None:
    """Counts follow the site's time zone: 1 on 1 March, 2 on 2 March, 1 on 3 March; events excluded."""
    site_id = seed(settings)
    port = serve("analytics")
    total = call(settings, port, f"/sites/{site_id}/pageviews", date_from="2026-03-01", date_to="2026-03-03")
    assert 200 == total.status_code
    assert 4 == total.json()["pageviews"]
    daily = call(settings, port, f"/sites/{site_id}/pageviews/daily", date_from="2026-02-28", date_to="2026-03-03")
    assert [0, 1, 2, 1] == [day["pageviews"] for day in daily.json()]


@pytest.mark.parametrize(("path", "params", "status"), [
    pytest.param("/sites/1/pageviews", {"date_from": "2026-03-05", "date_to": "2026-03-01"}, 400, id="reversed"),
    pytest.param("/sites/1/pageviews", {"date_from": "yesterday", "date_to": "2026-03-01"}, 400, id="not-a-date"),
    pytest.param("/sites/1/pageviews", {"date_to": "2026-03-01"}, 400, id="missing"),
    pytest.param("/sites/999999/pageviews", {"date_from": "2026-03-01", "date_to": "2026-03-01"}, 404, id="no-site"),
])
def test_bad_queries_are_4xx(settings: Settings, serve: Callable[[str], int], path: str,
                             params: dict[str, str], status: int) -> None:
    """Invalid queries are answered with a problem+json saying what is wrong."""
    response = call(settings, serve("analytics"), path, **params)
    assert status == response.status_code
    assert response.json()["detail"]


def test_internal_token_is_required(settings: Settings, serve: Callable[[str], int]) -> None:
    """Without the internal token the analytics service refuses; /health stays open."""
    port = serve("analytics")
    refused = httpx.get(f"http://127.0.0.1:{port}/sites/1/pageviews",
                        params={"date_from": "2026-03-01", "date_to": "2026-03-01"})
    assert 401 == refused.status_code
    assert 200 == httpx.get(f"http://127.0.0.1:{port}/health").status_code


def test_compute_summarises_the_daily_series(settings: Settings, serve: Callable[[str], int], db: None) -> None:
    """compute asks analytics for the series and summarises it."""
    site_id = seed(settings)
    serve("analytics")
    response = call(settings, serve("compute"), f"/sites/{site_id}/summary", date_from="2026-03-01",
                    date_to="2026-03-03")
    assert 200 == response.status_code
    body = response.json()
    assert (3, 4, 2, 1) == (body["days"], body["total"], body["maximum"], body["minimum"])


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Receiver.received.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_test_webhook_is_delivered_signed(settings: Settings, serve: Callable[[str], int], receiver: str) -> None:
    """A real HTTP receiver gets the payload with a valid HMAC-SHA256 signature."""
    secret = "s" * 20
    response = httpx.post(f"http://127.0.0.1:{serve('integrations')}/webhooks/test",
                          json={"url": receiver, "secret": secret},
                          headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=15)
    assert 200 == response.status_code
    assert (True, 204) == (response.json()["delivered"], response.json()["status_code"])
    headers, body = Receiver.received[0]
    fields = dict(part.split("=", 1) for part in headers["X-Beacon-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    assert expected == fields["v1"]


@pytest.mark.parametrize("payload", [
    pytest.param({"url": "ftp://example.com/x", "secret": "s" * 20}, id="scheme"),
    pytest.param({"url": "https://example.com/x", "secret": "short"}, id="short-secret"),
    pytest.param({"secret": "s" * 20}, id="no-url"),
])
def test_test_webhook_rejects_bad_input(settings: Settings, serve: Callable[[str], int],
                                        payload: dict[str, str]) -> None:
    """Invalid webhook requests are 400 with the field named."""
    response = httpx.post(f"http://127.0.0.1:{serve('integrations')}/webhooks/test", json=payload,
                          headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=15)
    assert 400 == response.status_code
    assert response.json()["detail"]


def test_unreachable_receiver_is_reported(settings: Settings, serve: Callable[[str], int]) -> None:
    """A receiver that does not answer is reported as not delivered, not as a server error."""
    from app.devstack import free_port

    response = httpx.post(f"http://127.0.0.1:{serve('integrations')}/webhooks/test",
                          json={"url": f"http://127.0.0.1:{free_port()}/", "secret": "s" * 20},
                          headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=15)
    assert 200 == response.status_code
    assert (False, "ConnectError") == (response.json()["delivered"], response.json()["error"])


