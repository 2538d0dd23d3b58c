"""total_revenue and average_revenue in the Stats API v2, in Plausible's shape."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.core.db import make_engine
from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.settings import Settings
from services.analytics.engine import money

SITE = "revenue.example"
# (visitor, name, amount, currency): Plausible's own numbers (its revenue tests), 2026-03-10, UTC.
EVENTS = [
    (1, "Payment", "13.29", "USD"), (2, "Payment", "19.90", "USD"), (3, "Payment", "10.31", "USD"),
    (4, "Payment", "20.00", "USD"), (5, "Payment", None, None), (6, "Signup", None, None),
    (7, "Donation", "5.00", "EUR"), (8, "Donation", "7.00", "GBP"),
]


@pytest.fixture
def purchases(settings: Settings, db: None) -> None:
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        site = conn.execute(text("INSERT INTO sites (domain, timezone, created_at) VALUES (:d, 'UTC', '2026-01-01') "
                                 "RETURNING id"), {"d": SITE}).scalar_one()
        for name in ("Payment", "Signup", "Donation"):
            conn.execute(text("INSERT INTO goals (site_id, event_name, display_name) VALUES (:s, :n, :n)"),
                         {"s": site, "n": name})
        for visitor, name, amount, currency in EVENTS:
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, "
                "revenue_amount, revenue_currency) VALUES (:s, :ts, :n, :v, :v, :h, '/', :a, :c)"),
                {"s": site, "ts": datetime(2026, 3, 10, 12, visitor, tzinfo=UTC), "n": name, "v": visitor,
                 "h": SITE, "a": Decimal(amount) if amount else None, "c": currency})
    db_engine.dispose()


def query(settings: Settings, serve: Callable[[str], int], **body: Any) -> httpx.Response:
    payload = {"site_id": SITE, "date_range": ["2026-03-10", "2026-03-10"], **body}
    return httpx.post(f"http://127.0.0.1:{serve('analytics')}/query", json=payload,
                      headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=20)


def test_revenue_of_a_goal(settings: Settings, serve: Callable[[str], int], purchases: None) -> None:
    """Four payments in USD (one without revenue counts as a conversion, not in the average)."""
    response = query(settings, serve, metrics=["visitors", "total_revenue", "average_revenue"],
                     filters=[["is", "event:goal", ["Payment"]]])
    assert 200 == response.status_code, response.text
    assert [{"dimensions": [], "metrics": [
        5,
        {"currency": "USD", "long": "$63.50", "short": "$63.5", "value": 63.5},
        {"currency": "USD", "long": "$15.88", "short": "$15.9", "value": 15.875},
    ]}] == response.json()["results"]
    assert "metric_warnings" not in response.json()["meta"]


def test_revenue_by_goal_is_null_where_currencies_mix(settings: Settings, serve: Callable[[str], int],
                                                      purchases: None) -> None:
    response = query(settings, serve, metrics=["visitors", "total_revenue"], dimensions=["event:goal"])
    assert 200 == response.status_code, response.text
    assert [["Payment", 5, {"currency": "USD", "long": "$63.50", "short": "$63.5", "value": 63.5}],
            ["Donation", 2, None], ["Signup", 1, None]] == \
        [[*row["dimensions"], *row["metrics"]] for row in response.json()["results"]]


def test_revenue_without_a_goal_is_null_with_plausibles_warning(settings: Settings, serve: Callable[[str], int],
                                                               purchases: None) -> None:
    response = query(settings, serve, metrics=["events", "total_revenue"])
    assert 200 == response.status_code, response.text
    assert [{"dimensions": [], "metrics": [8, None]}] == response.json()["results"]
    assert "no_revenue_goals_matching" == response.json()["meta"]["metric_warnings"]["total_revenue"]["code"]


@pytest.mark.parametrize(("value", "currency", "long", "short"), [
    pytest.param("1659.5", "USD", "$1,659.50", "$1.7K", id="thousands"),
    pytest.param("1000", "USD", "$1,000.00", "$1.0K", id="round-thousand"),
    pytest.param("0", "USD", "$0.00", "$0.0", id="zero"),
    pytest.param("13.29", "EUR", "€13.29", "€13.3", id="euro"),
])
def test_money_shape(value: str, currency: str, long: str, short: str) -> None:
    """Plausible's formats (its revenue tests: "$1,659.50" / "$1.7K", "$0.00" / "$0.0", "$13.29" / "$13.3")."""
    assert {"currency": currency, "long": long, "short": short, "value": float(value)} == \
        money(Decimal(value), currency)
