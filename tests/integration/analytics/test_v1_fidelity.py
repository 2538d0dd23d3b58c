"""Stats API v1 details as Plausible answers them: the filter string in full, hourly rows for a day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text

from app.core.db import make_engine
from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.settings import Settings

SITE = "v1.example"
# (visitor, (hour, minute), path, utm_campaign, country) on 2026-03-10, UTC.
EVENTS = [
    (1, (5, 10), "/", "spring-sale", "DE"),
    (2, (5, 40), "/pricing", "spring", "DE"),
    (3, (13, 0), "/", "summer", "US"),
    (4, (23, 30), "/a|b", "", "FR"),
]


@pytest.fixture
def traffic(settings: Settings, db: None) -> None:
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        site = conn.execute(text("INSERT INTO sites (domain, timezone, created_at) VALUES (:d, 'UTC', '2026-01-01') "
                                 "RETURNING id"), {"d": SITE}).scalar_one()
        for visitor, (hour, minute), path, campaign, country in EVENTS:
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, "
                "utm_campaign, country) VALUES (:s, :ts, 'pageview', :v, :v, :h, :p, :c, :country)"),
                {"s": site, "ts": datetime(2026, 3, 10, hour, minute, tzinfo=UTC), "v": visitor, "h": SITE,
                 "p": path, "c": campaign, "country": country})
    db_engine.dispose()


def v1(settings: Settings, serve: Callable[[str], int], endpoint: str, **params: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{serve('analytics')}/v1/{endpoint}",
                     params={"site_id": SITE, "period": "day", "date": "2026-03-10", **params},
                     headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=20)


@pytest.mark.parametrize(("filters", "visitors"), [
    pytest.param("visit:utm_campaign==spring*", 2, id="wildcard-on-a-visit-property"),
    pytest.param("visit:utm_campaign!=spring*", 2, id="negated-wildcard"),
    pytest.param("visit:utm_campaign==spring*|summer", 3, id="wildcard-among-alternatives"),
    pytest.param("visit:utm_campaign==*ing", 1, id="wildcard-first"),
    pytest.param("event:page==/a\\|b", 1, id="escaped-pipe-is-literal"),
    pytest.param("event:page==/|/pricing", 3, id="alternatives"),
    pytest.param("visit:country==USA", 4, id="country-not-two-letters-is-left-out"),
    pytest.param(" visit:country == DE ; event:page != /pricing ", 1, id="spaces-trimmed"),
])
def test_v1_filter_string(settings: Settings, serve: Callable[[str], int], traffic: None, filters: str,
                          visitors: int) -> None:
    response = v1(settings, serve, "aggregate", metrics="visitors", filters=filters)
    assert 200 == response.status_code, response.text
    assert {"visitors": {"value": visitors}} == response.json()["results"]


def test_v1_timeseries_of_a_day_is_hourly(settings: Settings, serve: Callable[[str], int], traffic: None) -> None:
    """period=day without an interval: 24 rows labelled YYYY-MM-DD HH:00:00, as Plausible's default for a day."""
    response = v1(settings, serve, "timeseries", metrics="visitors")
    assert 200 == response.status_code, response.text
    rows = response.json()["results"]
    assert [f"2026-03-10 {hour:02}:00:00" for hour in range(24)] == [row["date"] for row in rows]
    assert {"2026-03-10 05:00:00": 2, "2026-03-10 13:00:00": 1, "2026-03-10 23:00:00": 1} == \
        {row["date"]: row["visitors"] for row in rows if row["visitors"]}


def test_v1_timeseries_of_a_year_is_monthly(settings: Settings, serve: Callable[[str], int], traffic: None) -> None:
    response = v1(settings, serve, "timeseries", metrics="visitors", period="year")
    assert 200 == response.status_code, response.text
    rows = response.json()["results"]
    assert 12 == len(rows)
    assert {"date": "2026-03-01", "visitors": 4} == rows[2]
