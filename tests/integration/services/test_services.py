"""The analytics, compute and integrations services as real processes."""

from __future__ import annotations

from collections.abc import Callable
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


def test_integrations_answers_only_with_the_internal_token(settings: Settings, serve: Callable[[str], int]) -> None:
    """The integrations service refuses callers without the internal token (its webhook tests live in
    tests/integration/integrations)."""
    port = serve("integrations")
    anonymous = httpx.get(f"http://127.0.0.1:{port}/sites/1/webhooks", timeout=15)
    trusted = httpx.get(f"http://127.0.0.1:{port}/sites/999999/webhooks", timeout=15,
                        headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token})
    assert (401, 404) == (anonymous.status_code, trusted.status_code)
