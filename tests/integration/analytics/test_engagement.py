"""Engagement events (scroll depth, engaged time) in the Stats API: Plausible's scroll_depth and time_on_page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.core.db import make_async_engine, make_engine, sessionmaker_for
from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.settings import Settings
from services.analytics import planner, rollups
from services.analytics.query import parse_query
from tests.support.analytics import raw_and_served

SITE = "engage.example"
# Pageviews (visits with their source): (session, day, (hour, minute), path, source).
PAGEVIEWS = [
    (12, 1, (0, 0), "/blog", "Google"), (13, 1, (0, 10), "/blog", ""),
    (21, 2, (9, 0), "/post", "Google"), (21, 2, (9, 5), "/other", "Google"),
    (22, 2, (9, 0), "/post", ""), (23, 2, (9, 0), "/post", ""),
    (31, 2, (10, 0), "/half", ""), (32, 2, (10, 0), "/half", ""),
    # Before the first engagement event: legacy time on page, /blog 120 s to /x, one transition.
    (51, 0, (10, 0), "/blog", ""), (51, 0, (10, 2), "/x", ""),
]
# Engagement events: (session, day, (hour, minute), path, scroll depth, engaged milliseconds).
ENGAGEMENTS = [
    # Plausible's own case (query_time_on_page_test): /blog (120 + 20 + 60) s over 2 visits = 100 s.
    (12, 1, (0, 10), "/blog", None, 120_000), (12, 1, (0, 11), "/blog", None, 20_000),
    (13, 1, (0, 10), "/blog", None, 60_000),
    # Scroll depth: /post visit 21 20 %, visit 22 max(17, 60) = 60 %, visit 23 unknown -> (20 + 60) / 2 = 40;
    # /other visit 21 100 %; /half (2 + 3) / 2 = 2.5 -> 2 (half to even, as ClickHouse rounds a float).
    (21, 2, (9, 4), "/post", 20, 10_000), (21, 2, (9, 9), "/other", 100, 30_000),
    (22, 2, (9, 1), "/post", 17, 4_000), (22, 2, (9, 3), "/post", 60, 2_000),
    (23, 2, (9, 2), "/post", None, 5_000),
    (31, 2, (10, 1), "/half", 2, 1_000), (32, 2, (10, 1), "/half", 3, 1_000),
]


def _at(day: int, hour: int, minute: int) -> datetime:
    """``day`` of March 2026 (0: 28 February), UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC) if day else datetime(2026, 2, 28, hour, minute,
                                                                                    tzinfo=UTC)


@pytest.fixture
def engaged(settings: Settings, db: None) -> int:
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        site = conn.execute(text("INSERT INTO sites (domain, timezone, created_at) VALUES "
                                 "(:d, 'UTC', '2026-01-01') RETURNING id"), {"d": SITE}).scalar_one()
        for session, day, (hour, minute), path, source in PAGEVIEWS:
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, "
                "referrer_source) VALUES (:site, :ts, 'pageview', :session, :session, :host, :path, :source)"),
                {"site": site, "ts": _at(day, hour, minute), "session": session, "host": SITE, "path": path,
                 "source": source})
        for session, day, (hour, minute), path, depth, engaged_ms in ENGAGEMENTS:
            conn.execute(text(
                "INSERT INTO engagements (site_id, timestamp, visitor_id, session_id, hostname, pathname, "
                "scroll_depth, engagement_time) VALUES (:site, :ts, :session, :session, :host, :path, :depth, :ms)"),
                {"site": site, "ts": _at(day, hour, minute), "session": session, "host": SITE, "path": path,
                 "depth": depth, "ms": engaged_ms})
    db_engine.dispose()
    return int(site)


def query(settings: Settings, serve: Callable[[str], int], **body: Any) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{serve('analytics')}/query", json={"site_id": SITE, **body},
                      headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=20)


def results(response: httpx.Response) -> list[tuple[Any, ...]]:
    assert 200 == response.status_code, response.text
    return [(*row["dimensions"], *row["metrics"]) for row in response.json()["results"]]


def test_engagements_are_not_events_or_pageviews(settings: Settings, serve: Callable[[str], int],
                                                 engaged: int) -> None:
    """Eleven engagement events beside eight pageviews on 1 and 2 March: events and pageviews count the pageviews."""
    rows = results(query(settings, serve, metrics=["visitors", "visits", "pageviews", "events"],
                         date_range=["2026-03-01", "2026-03-02"]))
    assert [(7, 7, 8, 8)] == rows


def test_scroll_depth_by_page(settings: Settings, serve: Callable[[str], int], engaged: int) -> None:
    rows = results(query(settings, serve, metrics=["visitors", "scroll_depth"], dimensions=["event:page"],
                         date_range=["2026-03-02", "2026-03-02"], order_by=[["scroll_depth", "desc"]]))
    assert [("/other", 1, 100), ("/post", 3, 40), ("/half", 2, 2)] == rows


@pytest.mark.parametrize(("filters", "expected"), [
    pytest.param([["is", "event:page", ["/post"]]], 40, id="one-page"),
    # Per visit the deepest scroll over the pages kept: visit 21 max(20, 100), visit 22 60 -> 80.
    pytest.param([["is", "event:page", ["/post", "/other"]]], 80, id="two-pages"),
    # A visit filter: visit 21 came from Google; /post's 20 % is all that is left.
    pytest.param([["is", "event:page", ["/post"]], ["is", "visit:source", ["Google"]]], 20, id="visit-filter"),
    pytest.param([["is", "event:page", ["/nowhere"]]], None, id="none"),
])
def test_scroll_depth_aggregate(settings: Settings, serve: Callable[[str], int], engaged: int,
                                filters: list[Any], expected: int | None) -> None:
    rows = results(query(settings, serve, metrics=["scroll_depth"], filters=filters,
                         date_range=["2026-03-02", "2026-03-02"]))
    assert [(expected,)] == rows


def test_scroll_depth_time_series(settings: Settings, serve: Callable[[str], int], engaged: int) -> None:
    rows = results(query(settings, serve, metrics=["pageviews", "scroll_depth"], dimensions=["time:day"],
                         filters=[["is", "event:page", ["/post"]]], date_range=["2026-03-01", "2026-03-02"]))
    assert [("2026-03-02", 3, 40)] == rows


def test_scroll_depth_needs_a_page_filter_or_dimension(settings: Settings, serve: Callable[[str], int],
                                                       engaged: int) -> None:
    """Plausible's message; a page filter under "not" does not count."""
    response = query(settings, serve, metrics=["scroll_depth"], date_range=["2026-03-02", "2026-03-02"],
                     filters=[["not", ["is", "event:page", ["/post"]]]])
    assert 400 == response.status_code
    assert "Metric `scroll_depth` can only be queried with event:page filters or dimensions." == \
        response.json()["detail"]


def test_time_on_page_from_engaged_time(settings: Settings, serve: Callable[[str], int], engaged: int) -> None:
    """/blog on 1 March: (120 + 20 + 60) s over 2 visits = 100 (Plausible's own test case); /post on 2 March
    (10 + 6 + 5) s over 3 visits = 7; /half 1 s each = 1; /other 30 s."""
    rows = results(query(settings, serve, metrics=["time_on_page"], dimensions=["event:page"],
                         date_range=["2026-03-01", "2026-03-02"], order_by=[["time_on_page", "desc"]]))
    assert [("/blog", 100), ("/other", 30), ("/post", 7), ("/half", 1)] == rows


def test_time_on_page_adds_the_legacy_days_before_the_first_engagement(
        settings: Settings, serve: Callable[[str], int], engaged: int) -> None:
    """28 Feb precedes the first engagement (1 March): its legacy 120 s and 1 transition join /blog's
    200 s over 2 visits: 320 / 3 = 107; aggregated the same with the page filter."""
    by_page = results(query(settings, serve, metrics=["time_on_page"], dimensions=["event:page"],
                            filters=[["is", "event:page", ["/blog"]]], date_range=["2026-02-28", "2026-03-01"]))
    total = results(query(settings, serve, metrics=["time_on_page"], filters=[["is", "event:page", ["/blog"]]],
                          date_range=["2026-02-28", "2026-03-01"]))
    assert ([("/blog", 107)], [(107,)]) == (by_page, total)


def test_time_on_page_by_page_and_source(settings: Settings, serve: Callable[[str], int], engaged: int) -> None:
    """Plausible answers time_on_page by any dimension: the engaged time of each group's engagement events over
    its visits. /blog from Google (visit 12) (120 + 20) s = 140, direct (visit 13) 60; /post from Google
    (visit 21) 10, direct (visits 22 and 23) (4 + 2 + 5) s / 2 = 5.5 -> 6; /other 30; /half 2 s / 2 = 1."""
    rows = results(query(settings, serve, metrics=["visitors", "time_on_page"],
                         dimensions=["event:page", "visit:source"], date_range=["2026-03-01", "2026-03-02"],
                         order_by=[["time_on_page", "desc"]]))
    assert [("/blog", "Google", 1, 140), ("/blog", "Direct / None", 1, 60), ("/other", "Google", 1, 30),
            ("/post", "Google", 1, 10), ("/post", "Direct / None", 2, 6), ("/half", "Direct / None", 2, 1)] == rows


def test_time_on_page_by_source_with_a_page_filter_has_no_legacy_part(
        settings: Settings, serve: Callable[[str], int], engaged: int) -> None:
    """By a dimension other than event:page the legacy definition does not join (Plausible's
    ``can_merge_legacy_time_on_page?``): visit 51's 120 s on 28 February count nothing, so direct /blog is
    visit 13's 60 s alone though two visitors viewed it; no legacy warning."""
    response = query(settings, serve, metrics=["visitors", "time_on_page"], dimensions=["visit:source"],
                     filters=[["is", "event:page", ["/blog"]]], date_range=["2026-02-28", "2026-03-01"])
    assert [("Direct / None", 2, 60), ("Google", 1, 140)] == results(response)
    assert "metric_warnings" not in response.json()["meta"]


def test_time_on_page_by_day_is_null_before_the_first_engagement(
        settings: Settings, serve: Callable[[str], int], engaged: int) -> None:
    """Plausible's "reports legacy time-on-page as nulls per day": 28 February (legacy) is null by day, 1 March
    (120 + 20 + 60) s over 2 visits = 100."""
    rows = results(query(settings, serve, metrics=["pageviews", "time_on_page"], dimensions=["time:day"],
                         filters=[["is", "event:page", ["/blog"]]], date_range=["2026-02-28", "2026-03-01"]))
    assert [("2026-02-28", 1, None), ("2026-03-01", 2, 100)] == rows


def test_time_on_page_rounds_half_to_even(settings: Settings, serve: Callable[[str], int], engaged: int) -> None:
    """As ClickHouse rounds a float (Plausible's legacy breakdown test answers 264 for 264.5 s): on 2 March /tie
    (2 + 3) s over 2 visits = 2.5 -> 2; on 28 February (legacy) /t 5 s and 0 s to /u over 2 transitions -> 2."""
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        for session, at, path in [(61, datetime(2026, 3, 2, 11, tzinfo=UTC), "/tie"),
                                  (62, datetime(2026, 3, 2, 11, tzinfo=UTC), "/tie"),
                                  (52, datetime(2026, 2, 28, 11, tzinfo=UTC), "/t"),
                                  (52, datetime(2026, 2, 28, 11, 0, 5, tzinfo=UTC), "/u"),
                                  (53, datetime(2026, 2, 28, 12, tzinfo=UTC), "/t"),
                                  (53, datetime(2026, 2, 28, 12, tzinfo=UTC), "/u")]:
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
                "VALUES (:site, :ts, 'pageview', :session, :session, :host, :path)"),
                {"site": engaged, "ts": at, "session": session, "host": SITE, "path": path})
        for session, engaged_ms in [(61, 2000), (62, 3000)]:
            conn.execute(text(
                "INSERT INTO engagements (site_id, timestamp, visitor_id, session_id, hostname, pathname, "
                "engagement_time) VALUES (:site, :ts, :session, :session, :host, '/tie', :ms)"),
                {"site": engaged, "ts": datetime(2026, 3, 2, 11, 1, tzinfo=UTC), "session": session, "host": SITE,
                 "ms": engaged_ms})
    db_engine.dispose()
    new = results(query(settings, serve, metrics=["time_on_page"], dimensions=["event:page"],
                        filters=[["is", "event:page", ["/tie"]]], date_range=["2026-03-02", "2026-03-02"]))
    legacy = results(query(settings, serve, metrics=["time_on_page"], filters=[["is", "event:page", ["/t"]]],
                           date_range=["2026-02-28", "2026-02-28"]))
    assert ([("/tie", 2)], [(2,)]) == (new, legacy)


@pytest.fixture
def goals(settings: Settings, engaged: int) -> int:
    """A page goal on /post and a custom-event goal completed once (visit 21 on /post, 2 March 09:06)."""
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        for name, event, page in [("Visit /post", None, "/post"), ("Signup", "Signup", None)]:
            conn.execute(text("INSERT INTO goals (site_id, display_name, event_name, page_path) "
                              "VALUES (:s, :name, :event, :page)"), {"s": engaged, "name": name, "event": event,
                                                                      "page": page})
        conn.execute(text(
            "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, "
            "referrer_source) VALUES (:site, :ts, 'Signup', 21, 21, :host, '/post', 'Google')"),
            {"site": engaged, "ts": _at(2, 9, 6), "host": SITE})
    db_engine.dispose()
    return engaged


def test_scroll_depth_and_time_on_page_by_goal_are_null(settings: Settings, serve: Callable[[str], int],
                                                        goals: int) -> None:
    """Plausible accepts scroll_depth and time_on_page by event:goal and reads them from the engagement events
    that complete the goal; a page goal wants a pageview and a custom-event goal its own name, so no engagement
    event completes either: null, beside the goals' visitors (Plausible's ``Goals.goal_join_data``)."""
    rows = results(query(settings, serve, metrics=["visitors", "scroll_depth", "time_on_page"],
                         dimensions=["event:goal"], filters=[["is", "event:page", ["/post"]]],
                         date_range=["2026-03-02", "2026-03-02"]))
    assert [("Visit /post", 3, None, None), ("Signup", 1, None, None)] == rows
    by_page = results(query(settings, serve, metrics=["visitors", "scroll_depth"],
                            dimensions=["event:goal", "event:page"], date_range=["2026-03-02", "2026-03-02"]))
    assert [("Visit /post", "/post", 3, None)] == by_page
    filtered = results(query(settings, serve, metrics=["visitors", "time_on_page", "scroll_depth"],
                             dimensions=["event:goal"], date_range=["2026-03-02", "2026-03-02"],
                             filters=[["is", "event:goal", ["Signup"]], ["is", "event:page", ["/post"]]]))
    assert [("Signup", 1, None, None)] == filtered


def test_scroll_depth_with_a_goal_filter_is_null(settings: Settings, serve: Callable[[str], int],
                                                 goals: int) -> None:
    """A goal filter keeps the events completing the goal, and no engagement event completes a page goal."""
    rows = results(query(settings, serve, metrics=["visitors", "scroll_depth"],
                         filters=[["is", "event:goal", ["Visit /post"]], ["is", "event:page", ["/post"]]],
                         date_range=["2026-03-02", "2026-03-02"]))
    assert [(3, None)] == rows


@pytest.mark.parametrize("body", [
    {"metrics": ["visitors", "scroll_depth", "time_on_page"], "dimensions": ["event:page"]},
    {"metrics": ["scroll_depth", "bounce_rate"], "dimensions": ["event:page"],
     "filters": [["is", "visit:source", ["Google"]]]},
    {"metrics": ["scroll_depth", "events"], "dimensions": ["time:day", "event:page"]},
    {"metrics": ["time_on_page", "pageviews"], "filters": [["contains", "event:page", ["/"]]]},
    {"metrics": ["scroll_depth"], "dimensions": ["visit:source"], "filters": [["is", "event:page", ["/post"]]]},
    {"metrics": ["visitors", "time_on_page"], "dimensions": ["event:page", "visit:source"]},
    {"metrics": ["time_on_page", "scroll_depth"], "dimensions": ["time:day"],
     "filters": [["is", "event:page", ["/post"]], ["is", "visit:source", ["Google"]]]},
])
async def test_every_planner_path_gives_the_raw_answer(settings: Settings, engaged: int,
                                                       body: dict[str, Any]) -> None:
    query_ = parse_query({"site_id": SITE, "date_range": ["2026-02-28", "2026-03-03"], **body}, timezone="UTC",
                         now=datetime(2026, 3, 10, tzinfo=UTC))
    raw, served = await raw_and_served(settings, engaged, query_)
    assert raw.rows and (raw.rows, raw.total_rows) == (served.rows, served.total_rows)


@pytest.mark.parametrize("filters", [
    pytest.param([], id="none"),
    pytest.param([["is", "visit:source", ["Google"]]], id="source"),
    pytest.param([["is", "event:page", ["/post"]]], id="page"),
])
async def test_pages_panel_depth_beside_rolled_up_pages(settings: Settings, engaged: int,
                                                        filters: list[Any]) -> None:
    """The dashboard's pages panel (visitors, pageviews, scroll depth by page) once the days are rolled up: the
    pages from the rollups, their depths from the engagement events alone, equal to the raw engine's rows."""
    now = datetime(2026, 3, 10, tzinfo=UTC)
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        while rollups.refresh(conn, engaged, now).days:
            pass
    db_engine.dispose()
    query_ = parse_query({"site_id": SITE, "date_range": ["2026-02-28", "2026-03-03"], "filters": filters,
                          "metrics": ["visitors", "pageviews", "scroll_depth"], "dimensions": ["event:page"]},
                         timezone="UTC", now=now)
    split = planner.scroll_depth_apart(query_)
    assert split is not None
    db = make_async_engine(settings.database)
    try:
        async with sessionmaker_for(db)() as session:
            state = await rollups.rolled_until(session, engaged, "UTC")
    finally:
        await db.dispose()
    assert planner.Source.ROLLUPS == planner.decide(split[0], state).source
    raw, served = await raw_and_served(settings, engaged, query_)
    assert any(row["metrics"][2] is not None for row in raw.rows), raw.rows  # depths to compare
    assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows)


async def test_pages_depth_apart_with_a_star_in_a_path(settings: Settings, engaged: int) -> None:
    """A listed page whose path holds '*' is a pattern to a page filter: the depths of the listed pages are
    still all found (``/b`` is listed second, ``/abc`` matches ``/a*`` but is not listed)."""
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        for session, path, depth in ((61, "/a*", 50), (62, "/a*", 50), (63, "/a*", 50), (64, "/b", 10),
                                     (65, "/b", 10), (66, "/abc", 90)):
            values = {"site": engaged, "ts": _at(3, 12, 0), "session": session, "host": SITE, "path": path}
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
                "VALUES (:site, :ts, 'pageview', :session, :session, :host, :path)"), values)
            conn.execute(text(
                "INSERT INTO engagements (site_id, timestamp, visitor_id, session_id, hostname, pathname, "
                "scroll_depth, engagement_time) VALUES (:site, :ts, :session, :session, :host, :path, :depth, 1000)"),
                values | {"depth": depth})
    db_engine.dispose()
    query_ = parse_query({"site_id": SITE, "date_range": ["2026-03-03", "2026-03-03"], "pagination": {"limit": 2},
                          "metrics": ["visitors", "pageviews", "scroll_depth"], "dimensions": ["event:page"]},
                         timezone="UTC", now=datetime(2026, 3, 10, tzinfo=UTC))
    assert planner.scroll_depth_apart(query_) is not None
    raw, served = await raw_and_served(settings, engaged, query_)
    assert [["/a*"], ["/b"]] == [row["dimensions"] for row in raw.rows]
    assert [50, 10] == [row["metrics"][2] for row in raw.rows]
    assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows)


def test_imports_meta_without_imports(settings: Settings, serve: Callable[[str], int], engaged: int) -> None:
    """Plausible's meta for include.imports on a site without imported data; no such keys when not asked."""
    asked = query(settings, serve, metrics=["visitors"], date_range="all", include={"imports": True})
    plain = query(settings, serve, metrics=["visitors"], date_range="all")
    assert 200 == asked.status_code == plain.status_code, asked.text
    assert {"imports_included": False, "imports_skip_reason": "no_imported_data"} == asked.json()["meta"]
    assert {} == plain.json()["meta"]
