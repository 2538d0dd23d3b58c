"""The analytics tests' datasets: the Stats API tests' four visits on 2026-03-10 in Europe/Berlin, computed by
hand in tests/integration/analytics/test_stats_query.py's docstring, and the generated dataset's bounds."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text

from app.core.db import make_async_engine, make_engine, sessionmaker_for
from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.settings import Settings
from services.analytics import engine, planner
from services.analytics.engine import Result
from services.analytics.query import Query

# The generated dataset of the planner and rollup tests: DAYS days of visits in the time zone TZ.
TZ = "America/New_York"
DAYS = 40

A, B, C = 101, 102, 103
EVENTS = [
    # visitor, visit, day, (h, m) UTC, name, path, source, utm_medium, device, browser, country, interactive, props
    (A, 11, 10, (9, 0), "pageview", "/", "Google", "", "Desktop", "Chrome", "DE", True, {}),
    (A, 11, 10, (9, 5), "pageview", "/pricing", "Google", "", "Desktop", "Chrome", "DE", True, {}),
    (A, 11, 10, (9, 10), "Signup", "/pricing", "Google", "", "Desktop", "Chrome", "DE", True, {"plan": "pro"}),
    (B, 21, 10, (10, 0), "pageview", "/blog/a", "Twitter", "social", "Mobile", "Safari", "FR", True, {}),
    (A, 12, 10, (15, 0), "pageview", "/blog/b", "", "", "Desktop", "Chrome", "DE", True, {}),
    (A, 12, 10, (15, 1), "Outbound Link: Click", "/blog/b", "", "", "Desktop", "Chrome", "DE", False, {}),
    (C, 31, 10, (22, 50), "pageview", "/", "Google", "", "Tablet", "Firefox", "US", True, {}),
    (C, 31, 10, (23, 10), "pageview", "/docs", "Google", "", "Tablet", "Firefox", "US", True, {}),
]
DAY = ["2026-03-10", "2026-03-10"]


def load_dataset(settings: Settings) -> None:
    """The hand-computed dataset of the Stats API tests (see tests/integration/analytics/test_stats_query.py)."""
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        site = conn.execute(text("INSERT INTO sites (domain, timezone, created_at) VALUES "
                                 "('stats.example', 'Europe/Berlin', '2026-01-01') RETURNING id")).scalar_one()
        for visitor, session, day, (hour, minute), name, path, source, medium, device, browser, country, \
                interactive, props in EVENTS:
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, "
                "referrer, referrer_source, utm_medium, device, browser, country, interactive, props) VALUES "
                "(:site, :ts, :name, :visitor, :session, 'stats.example', :path, :referrer, :source, :medium, "
                ":device, :browser, :country, :interactive, CAST(:props AS jsonb))"),
                {"site": site, "ts": datetime(2026, 3, day, hour, minute, tzinfo=UTC), "name": name,
                 "visitor": visitor, "session": session, "path": path,
                 "referrer": f"https://www.{source.lower()}.com/" if source else "", "source": source,
                 "medium": medium, "device": device, "browser": browser, "country": country,
                 "interactive": interactive, "props": json.dumps(props)})
    engine.dispose()


def query(settings: Settings, serve: Callable[[str], int], **body: Any) -> httpx.Response:
    """POST a Stats API v2 query (``body`` over the stats.example site and :data:`DAY`) straight to the
    analytics service ``serve`` started, with the internal token."""
    payload = {"site_id": "stats.example", "date_range": DAY, **body}
    return httpx.post(f"http://127.0.0.1:{serve('analytics')}/query", json=payload,
                      headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=20)


def results(response: httpx.Response) -> list[tuple[Any, ...]]:
    """A 200 answer's rows as ``(*dimensions, *metrics)`` tuples."""
    assert 200 == response.status_code, response.text
    return [(*row["dimensions"], *row["metrics"]) for row in response.json()["results"]]


async def raw_and_served(settings: Settings, site: int, query: Query) -> tuple[Result, Result]:
    """The raw engine's answer to ``query`` (visits from windows over the events) and the planner's."""
    db = make_async_engine(settings.database)
    try:
        async with sessionmaker_for(db)() as session:
            return await engine.run(session, query, site), await planner.answer(session, query, site)
    finally:
        await db.dispose()
