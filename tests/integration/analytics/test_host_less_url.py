"""A pageview whose url has no host (stored under Plausible's hostname ``(none)``) counts alike in every report.

Plausible accepts such a url and keeps its path as the page (``Ingestion.Request``: hostname ``(none)``), and so
does Beacon's ingest. The events go through the real ingest app, so they are stored as a tracker's are (visit
ids from Redis, visits folded into the visits table by PostgreSQL), and the served answers are compared with
the raw engine's (visits computed with window functions from the events).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from app.core.settings import Settings
from services.analytics.engine import Result
from services.analytics.query import parse_query
from tests.support.analytics import raw_and_served
from tests.support.ingest import UA, ingest_client, sql

SITE = "host.example"
# Five visitors (one address each); the last one's url is not a URL at all.
EVENTS = [
    ("198.51.100.1", "pageview", "https://host.example/"), ("198.51.100.1", "Signup", "https://host.example/"),
    ("198.51.100.2", "pageview", "https://host.example/a"), ("198.51.100.2", "Signup", "https://host.example/a"),
    ("198.51.100.3", "pageview", "https://host.example/b"), ("198.51.100.3", "pageview", "https://host.example/c"),
    ("198.51.100.4", "pageview", "https://host.example/"),
    ("198.51.100.5", "pageview", "nota url"),
]


@pytest.fixture
async def stored(settings: Settings, db: None, redis_client: redis.Redis) -> tuple[int, datetime]:
    """The site with a Signup goal and :data:`EVENTS` stored through ingest; the site's id and a moment after."""
    sql(settings, "INSERT INTO sites (domain, timezone) VALUES (:d, 'UTC')", {"d": SITE})
    site = int(str(sql(settings, "SELECT id FROM sites WHERE domain = :d", {"d": SITE})[0][0]))
    sql(settings, "INSERT INTO goals (site_id, display_name, event_name) VALUES (:s, 'Signup', 'Signup')", {"s": site})
    async with ingest_client(settings) as client:
        for ip, name, url in EVENTS:
            response = await client.post("/api/event", headers={"User-Agent": UA, "X-Forwarded-For": ip},
                                         content=json.dumps({"name": name, "url": url, "domain": SITE}))
            assert 202 == response.status_code, response.text
    assert [("(none)", "nota url")] == sql(settings, "SELECT DISTINCT hostname, pathname FROM events "
                                                     "WHERE hostname = '(none)'")
    last = sql(settings, "SELECT max(timestamp) FROM events")[0][0]
    assert isinstance(last, datetime)
    return site, last + timedelta(seconds=1)


async def day_raw_and_served(settings: Settings, site: int, now: datetime, body: dict[str, Any]
                             ) -> tuple[Result, Result]:
    """The raw engine's answer to the query ``body`` over the day of ``now`` and the planner's."""
    day = now.astimezone(UTC).date().isoformat()
    query = parse_query({"site_id": SITE, "date_range": [day, day], **body}, timezone="UTC", now=now)
    return await raw_and_served(settings, site, query)


@pytest.mark.parametrize("body", [
    pytest.param({"metrics": ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"]},
                 id="top-stats"),
    pytest.param({"metrics": ["visitors", "percentage"], "dimensions": ["event:hostname"]}, id="hostnames"),
    pytest.param({"metrics": ["visitors", "pageviews"], "dimensions": ["event:page"]}, id="pages"),
    pytest.param({"metrics": ["visitors", "visits", "bounce_rate"], "dimensions": ["visit:entry_page"]},
                 id="entry-pages"),
    pytest.param({"metrics": ["visitors", "visits"], "dimensions": ["visit:entry_page_hostname"]},
                 id="entry-hostnames"),
    pytest.param({"metrics": ["visitors", "visits"], "dimensions": ["visit:exit_page"]}, id="exit-pages"),
    pytest.param({"metrics": ["visitors", "events", "conversion_rate"], "dimensions": ["event:goal"]}, id="goals"),
    pytest.param({"metrics": ["visitors", "events", "conversion_rate"], "filters": [["is", "event:goal", ["Signup"]]]},
                 id="goal-top-stats"),
    pytest.param({"metrics": ["visitors", "visits", "bounce_rate"], "filters": [["is", "event:hostname", ["(none)"]]]},
                 id="hostname-filter"),
])
async def test_served_answer_is_the_raw_answer(settings: Settings, stored: tuple[int, datetime],
                                               body: dict[str, Any]) -> None:
    """Each report of the day, from the source the planner picks, is the raw engine's."""
    raw, served = await day_raw_and_served(settings, *stored, body)
    assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows)


async def test_top_stats_agree_with_the_hostname_and_goal_reports(settings: Settings,
                                                                  stored: tuple[int, datetime]) -> None:
    """Five visitors in the top stats, four on the host and one under ``(none)`` in the hostname report, and two
    of five converted (40 %) in the goals report and in the goal-filtered top stats."""
    reports = {}
    for name, body in {
        "top": {"metrics": ["visitors", "visits", "pageviews"]},
        "hostnames": {"metrics": ["visitors"], "dimensions": ["event:hostname"]},
        "goals": {"metrics": ["visitors", "conversion_rate"], "dimensions": ["event:goal"]},
        "goal-top": {"metrics": ["visitors", "conversion_rate"], "filters": [["is", "event:goal", ["Signup"]]]},
    }.items():
        _, served = await day_raw_and_served(settings, *stored, body)
        reports[name] = [(*row["dimensions"], *row["metrics"]) for row in served.rows]
    assert {"top": [(5, 5, 6)], "hostnames": [(SITE, 4), ("(none)", 1)], "goals": [("Signup", 2, 40.0)],
            "goal-top": [(2, 40.0)]} == reports
