"""Stats API v2 details as Plausible answers them (docs/plausible-api-checklist.md, the v2 rows).

Over the hand-computed dataset of tests/support/analytics.py (2026-03-10, Europe/Berlin): visit 11 of A (/,
/pricing, Signup), visit 21 of B (/blog/a), visit 12 of A (/blog/b, a non-interactive Outbound click), visit 31
of C (/ at 23:50 local, /docs at 00:10 local the next day, outside the day). Goals: "Signup" (event Signup),
"Pricing" (pageviews of /pricing). Where Plausible's documentation is silent the values follow its code:
``Plausible.Stats.QueryBuilder`` (validation and messages) and ``Plausible.Stats.SQL.WhereBuilder`` (behavioural
filters: the visits with an event in the date range matching the inner filter).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from app.core.db import make_async_engine, make_engine, sessionmaker_for
from app.core.settings import Settings
from services.analytics import engine, planner
from services.analytics.query import parse_query
from tests.support.analytics import DAY, query, results


@pytest.fixture
def goals(settings: Settings, dataset: None) -> None:
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        for name, event, page in (("Signup", "Signup", None), ("Pricing", None, "/pricing")):
            conn.execute(text("INSERT INTO goals (site_id, display_name, event_name, page_path) SELECT id, :name, "
                              ":event, :page FROM sites WHERE domain = 'stats.example'"),
                         {"name": name, "event": event, "page": page})
    engine.dispose()


COUNTS = ["visitors", "visits", "pageviews", "events"]


@pytest.mark.parametrize(("filters", "expected"), [
    # Visit 11 did Signup: its 3 events, 2 of them pageviews.
    pytest.param([["has_done", ["is", "event:name", ["Signup"]]]], (1, 1, 2, 3), id="has-done-name"),
    # Visits 21, 12 and 31 did not: A (visit 12), B and C; their events of the day.
    pytest.param([["has_not_done", ["is", "event:name", ["Signup"]]]], (3, 3, 3, 4), id="has-not-done-name"),
    pytest.param([["has_done", ["is", "event:goal", ["Pricing"]]]], (1, 1, 2, 3), id="has-done-goal"),
    # Visit 31's /docs falls on the next local day: outside the date range, so nobody did it.
    pytest.param([["has_done", ["is", "event:page", ["/docs"]]]], (0, 0, 0, 0), id="only-within-the-range"),
    pytest.param([["has_not_done", ["is", "event:page", ["/docs"]]]], (3, 4, 5, 7), id="not-done-within-the-range"),
    pytest.param([["has_done", ["or", [["contains", "event:page", ["blog"]], ["is", "event:name", ["Signup"]]]]]],
                 (2, 3, 4, 6), id="has-done-or"),
    # A's visit 11 entered from Google and did Signup; has_done keeps all of that visit's events.
    pytest.param([["is", "visit:source", ["Google"]], ["has_done", ["is", "event:name", ["Signup"]]]],
                 (1, 1, 2, 3), id="with-a-visit-filter"),
    pytest.param([["not", ["has_done", ["is", "event:name", ["Signup"]]]]], (3, 3, 3, 4), id="negated"),
])
def test_behavioral_filters(settings: Settings, serve: Callable[[str], int], goals: None,
                            filters: list[Any], expected: tuple[int, ...]) -> None:
    """(visitors, visits, pageviews, events) of the visits that did (or did not do) something in the range."""
    assert [expected] == results(query(settings, serve, metrics=COUNTS, filters=filters))


def test_event_metrics_by_entry_page(settings: Settings, serve: Callable[[str], int], goals: None) -> None:
    """Pageviews by entry page (and page): answered, where Plausible refuses them without event:page."""
    rows = results(query(settings, serve, metrics=["pageviews"], dimensions=["visit:entry_page", "event:page"],
                         filters=[["is", "visit:entry_page", ["/"]]]))
    assert [("/", "/", 2), ("/", "/pricing", 1)] == rows


def test_screen_is_the_device(settings: Settings, serve: Callable[[str], int], goals: None) -> None:
    """``visit:screen``, Plausible's older name of the device, filters and groups as ``visit:device``."""
    assert [(1, 3)] == results(query(settings, serve, metrics=["visitors", "pageviews"],
                                     filters=[["is", "visit:screen", ["Desktop"]]]))
    rows = results(query(settings, serve, metrics=["visitors"], dimensions=["visit:screen"]))
    assert [("Desktop", 1), ("Mobile", 1), ("Tablet", 1)] == rows


def test_behavioral_filter_in_a_breakdown(settings: Settings, serve: Callable[[str], int], goals: None) -> None:
    """Sources of the visits that viewed a blog page: visit 21 (Twitter) and visit 12 (direct)."""
    rows = results(query(settings, serve, metrics=["visitors", "bounce_rate"], dimensions=["visit:source"],
                         filters=[["has_done", ["contains", "event:page", ["/blog/"]]]]))
    assert [("Direct / None", 1, 100), ("Twitter", 1, 100)] == rows


def test_behavioral_filter_is_echoed_in_the_query(settings: Settings, serve: Callable[[str], int],
                                                  goals: None) -> None:
    """The response's ``query`` holds the filter as given."""
    filters = [["has_not_done", ["is", "event:goal", ["Signup"]]]]
    response = query(settings, serve, metrics=["visitors"], filters=filters)
    assert 200 == response.status_code, response.text
    assert filters == response.json()["query"]["filters"]


@pytest.mark.parametrize(("body", "date_range", "include"), [
    pytest.param({}, ["2026-03-10T00:00:00+01:00", "2026-03-10T23:59:59+01:00"], {}, id="days"),
    pytest.param({"date_range": ["2026-03-10T09:00:00+01:00", "2026-03-10T12:30:00+01:00"],
                  "include": {"total_rows": True, "time_labels": False}},
                 ["2026-03-10T09:00:00+01:00", "2026-03-10T12:30:00+01:00"], {"total_rows": True}, id="date-times"),
])
def test_query_echo(settings: Settings, serve: Callable[[str], int], goals: None, body: dict[str, Any],
                    date_range: list[str], include: dict[str, bool]) -> None:
    """``query.date_range`` ends on the range's last second and ``query.include`` holds the options that are on,
    as Plausible's QueryResult echoes them."""
    response = query(settings, serve, metrics=["visitors"], **body)
    assert 200 == response.status_code, response.text
    assert (date_range, include) == (response.json()["query"]["date_range"], response.json()["query"]["include"])


def test_conversion_rate_with_a_goal_and_a_behavioral_filter(settings: Settings, serve: Callable[[str], int],
                                                             goals: None) -> None:
    """Signup among the visits that viewed /pricing: A converted; the divisor keeps the behavioural filter (the
    visits that viewed /pricing: A's visit 11), so 100 %."""
    rows = results(query(settings, serve, metrics=["visitors", "conversion_rate"],
                         filters=[["is", "event:goal", ["Signup"]],
                                  ["has_done", ["is", "event:page", ["/pricing"]]]]))
    assert [(1, 100.0)] == rows


@pytest.mark.parametrize(("filters", "expected"), [
    # A's Signup happened on /pricing; the page's visitors with any event there: A alone, so 100 %.
    pytest.param([["is", "event:goal", ["Signup"]]], [("/pricing", 1, 1, 100.0)], id="custom-event-goal"),
    # The page goal keeps pageviews of /pricing.
    pytest.param([["is", "event:goal", ["Pricing"]]], [("/pricing", 1, 1, 100.0)], id="page-goal"),
    # A's non-interactive click on /blog/b; B's pageview of /blog/a does not count.
    pytest.param([["contains", "event:name", ["Outbound"]]], [("/blog/b", 1, 1, 100.0)], id="event-name"),
    # A negated name filter keeps the pages' pageviews, as without filters: C's /docs is the next local day.
    pytest.param([["is_not", "event:name", ["Signup"]]],
                 [("/", 2, 2, None), ("/blog/a", 1, 1, None), ("/blog/b", 1, 1, None), ("/pricing", 1, 1, None)],
                 id="negated-name"),
])
def test_pages_of_the_events_a_goal_keeps(settings: Settings, serve: Callable[[str], int], goals: None,
                                          filters: list[Any], expected: list[tuple[Any, ...]]) -> None:
    """By ``event:page`` under a goal (or event name) filter: the pages where the kept events happened, with
    their visitors and events; the group conversion rate's divisor is the page's visitors with any event there
    (Plausible's pages test "calculates conversion_rate when filtering for goal")."""
    goal = any(f[1] == "event:goal" for f in filters)
    metrics = ["visitors", "events", *(["group_conversion_rate"] if goal else [])]
    rows = results(query(settings, serve, metrics=metrics, dimensions=["event:page"], filters=filters,
                         order_by=[["visitors", "desc"], ["event:page", "asc"]]))
    assert [row if goal else row[:3] for row in expected] == rows


@pytest.mark.parametrize(("body", "message"), [
    pytest.param({"filters": [["has_done", ["has_not_done", ["is", "event:name", ["Signup"]]]]]},
                 "Invalid filters. Behavioral filters (has_done, has_not_done) cannot be nested.", id="nested"),
    pytest.param({"filters": [["has_done", ["is", "visit:source", ["Google"]]]]},
                 "Invalid filters. Behavioral filters (has_done, has_not_done) can only be used with event "
                 "dimension filters.", id="visit-dimension"),
    pytest.param({"filters": [["has_done", ["and", [["is", "event:page", ["/"]], ["is", "visit:country", ["DE"]]]]]]},
                 "can only be used with event dimension filters", id="visit-dimension-nested"),
    pytest.param({"filters": [["has_done", ["is", "event:name", ["Signup"]], ["is", "event:name", ["x"]]]]},
                 "#/filters/0: Invalid filter [\"has_done\", [\"is\", \"event:name\", [\"Signup\"]], "
                 "[\"is\", \"event:name\", [\"x\"]]]", id="two-filters"),
    pytest.param({"metrics": ["conversion_rate"], "filters": [["has_done", ["is", "event:goal", ["Signup"]]]]},
                 "Metric `conversion_rate` can only be queried with event:goal filters or dimensions.",
                 id="conversion-rate-needs-a-goal-outside"),
    pytest.param({"filters": [["and", [["is", "event:goal", ["Signup"]], ["is", "visit:country", ["DE"]]]]]},
                 "Invalid filters. Dimension `event:goal` can only be filtered at the top level.", id="goal-nested"),
    pytest.param({"filters": [["not", ["is", "event:goal", ["Signup"]]]]},
                 "Invalid filters. Dimension `event:goal` can only be filtered at the top level.", id="goal-negated"),
    pytest.param({"filters": [["or", [["is", "event:hostname", ["a.example"]], ["is", "event:page", ["/"]]]]]},
                 "Invalid filters. Dimension `event:hostname` can only be filtered at the top level.",
                 id="hostname-nested"),
    pytest.param({"metrics": ["events", "visit_duration"], "dimensions": ["visit:exit_page", "event:name"]},
                 "Session metric(s) `visit_duration` cannot be queried along with event dimension(s) `event:name`",
                 id="session-metric-by-event-name"),
    pytest.param({"filters": [["is", "visit:country", ["DEU"]]]},
                 "Invalid visit:country filter, visit:country needs to be a valid 2-letter country code.",
                 id="country-code"),
    pytest.param({"metrics": ["conversion_rate"],
                  "filters": [["is", "event:goal", ["Signup"]], ["not", ["is", "event:props:plan", ["pro"]]]]},
                 "Invalid filters. When `conversion_rate` or `group_conversion_rate` metrics are used, custom "
                 "property filters can only be used on top level.", id="conversion-rate-nested-prop"),
])
def test_invalid_filters_in_plausibles_words(settings: Settings, serve: Callable[[str], int], goals: None,
                                             body: dict[str, Any], message: str) -> None:
    """Filters Plausible refuses are 400 with its message."""
    response = query(settings, serve, **{"metrics": ["visitors"], **body})
    assert 400 == response.status_code, response.text
    assert message in response.json()["detail"]


@pytest.mark.parametrize(("filters", "status"), [
    pytest.param([["is", "event:goal", ["Signup", "Newsletter"]]], 400, id="is"),
    pytest.param([["has_done", ["is", "event:goal", ["Newsletter"]]]], 400, id="in-a-behavioral-filter"),
    pytest.param([["contains", "event:goal", ["Newsletter"]]], 200, id="contains-may-match-nothing"),
    pytest.param([["is", "event:goal", ["newsletter"], {"case_sensitive": False}]], 200, id="case-insensitive"),
])
def test_goal_filter_must_name_a_configured_goal(settings: Settings, serve: Callable[[str], int], goals: None,
                                                 filters: list[Any], status: int) -> None:
    """Plausible's ``validate_filtered_goals_exist``: an ``is`` goal filter names goals of the site."""
    response = query(settings, serve, metrics=["visitors"], filters=filters)
    assert status == response.status_code, response.text
    if status == 400:
        assert ("Invalid filters. The goal `Newsletter` is not configured for this site. Find out how to configure "
                "goals here: https://plausible.io/docs/stats-api#filtering-by-goals") == response.json()["detail"]


@pytest.mark.parametrize("body", [
    pytest.param({"metrics": ["visitors", "bounce_rate", "visit_duration"], "dimensions": ["visit:source"],
                  "filters": [["has_not_done", ["is", "event:goal", ["Signup"]]]]}, id="session-metrics"),
    pytest.param({"metrics": ["visitors", "pageviews"], "dimensions": ["event:page"],
                  "filters": [["has_done", ["is", "event:name", ["Signup"]]]]}, id="pages"),
    pytest.param({"metrics": ["visitors", "events"], "dimensions": ["event:goal"],
                  "filters": [["has_done", ["is", "event:page", ["/"]]], ["is", "visit:country", ["DE"]]]},
                 id="goals-by-visit-filter"),
])
async def test_behavioral_filters_served_equal_raw(settings: Settings, goals: None, body: dict[str, Any]) -> None:
    """Whichever source the planner picks, a behavioural filter gives the raw engine's answer (visits computed from
    the events with window functions)."""
    db = make_async_engine(settings.database)
    try:
        async with sessionmaker_for(db)() as session:
            site_id = (await session.execute(text("SELECT id FROM sites WHERE domain = 'stats.example'"))).scalar_one()
            parsed = parse_query({"site_id": "stats.example", "date_range": DAY, **body}, timezone="Europe/Berlin",
                                 now=datetime(2026, 3, 20, tzinfo=UTC))
            raw = await engine.run(session, parsed, site_id)
            served = await planner.answer(session, parsed, site_id)
    finally:
        await db.dispose()
    assert raw.rows, body  # not a vacuous equality
    assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows)


@pytest.mark.parametrize(("date_range", "warned"), [
    pytest.param(["2026-03-10", "2026-03-12"], True, id="reaches-before-the-first-engagement"),
    pytest.param(["2026-03-12", "2026-03-12"], False, id="after-it"),
])
def test_legacy_time_on_page_warning(settings: Settings, serve: Callable[[str], int], goals: None,
                                     date_range: list[str], warned: bool) -> None:
    """Plausible's ``metric_warnings.time_on_page`` (``legacy_time_on_page_used``) when the range reaches before
    the site's first engagement event (here 2026-03-12 08:00 UTC, local day 2026-03-12)."""
    engine_ = make_engine(settings.database)
    with engine_.begin() as conn:
        conn.execute(text(
            "INSERT INTO engagements (site_id, timestamp, visitor_id, session_id, hostname, pathname, scroll_depth, "
            "engagement_time) SELECT id, :ts, 7, 7, domain, '/', 50, 3000 FROM sites WHERE domain = 'stats.example'"),
            {"ts": datetime(2026, 3, 12, 8, tzinfo=UTC)})
    engine_.dispose()
    response = query(settings, serve, metrics=["time_on_page"], filters=[["is", "event:page", ["/"]]],
                     date_range=date_range)
    assert 200 == response.status_code, response.text
    warning = {"time_on_page": {"code": "legacy_time_on_page_used", "message": "This period includes data "
                                "calculated with the legacy time on page method up to 2026-03-12"}}
    assert (warning if warned else None) == response.json()["meta"].get("metric_warnings")


@pytest.mark.parametrize("dimension", ["visit:region", "visit:region_name", "visit:city_name"])
def test_every_visit_has_the_empty_region_and_city_name(settings: Settings, serve: Callable[[str], int],
                                                        goals: None, dimension: str) -> None:
    """Plausible without a city database stores region '' (and no names) on every event: one group, "",
    holding the day's 3 visitors and 4 visits (Beacon looks up the country only)."""
    rows = results(query(settings, serve, metrics=["visitors", "visits"], dimensions=[dimension]))
    assert [("", 3, 4)] == rows


def test_every_visit_has_city_zero(settings: Settings, serve: Callable[[str], int], goals: None) -> None:
    """City 0 (no GeoNames id) on every event, grouped as Plausible's v2 groups it (no group is left out, the
    dashboard adds ``is_not visit:city [0]`` itself): by country, DE (A: visits 11, 12), FR (B), US (C)."""
    rows = results(query(settings, serve, metrics=["visitors", "visits"], dimensions=["visit:city"]))
    assert [(0, 3, 4)] == rows
    rows = results(query(settings, serve, metrics=["visitors", "visits"], dimensions=["visit:country", "visit:city"]))
    assert [("DE", 0, 1, 2), ("FR", 0, 1, 1), ("US", 0, 1, 1)] == rows
    rows = results(query(settings, serve, metrics=["visitors"], dimensions=["visit:city"],
                         filters=[["is_not", "visit:city", [0]]]))
    assert [] == rows


ALL_OF_THE_DAY = (3, 4, 5, 7)
NONE = (0, 0, 0, 0)


@pytest.mark.parametrize(("condition", "expected"), [
    pytest.param(["is", "visit:city", [2988507]], NONE, id="city-is-a-geonames-id"),
    pytest.param(["is", "visit:city", [2988507, 2950159]], NONE, id="city-is-one-of"),
    pytest.param(["is_not", "visit:city", [2988507]], ALL_OF_THE_DAY, id="city-is-not"),
    pytest.param(["is", "visit:city", [0]], ALL_OF_THE_DAY, id="city-is-zero"),
    pytest.param(["is", "visit:region", ["FR-75"]], NONE, id="region-is"),
    pytest.param(["is_not", "visit:region", ["FR-75"]], ALL_OF_THE_DAY, id="region-is-not"),
    pytest.param(["contains", "visit:region", ["FR"]], NONE, id="region-contains"),
    pytest.param(["contains_not", "visit:region", ["FR"]], ALL_OF_THE_DAY, id="region-contains-not"),
    pytest.param(["is", "visit:city_name", ["Paris"]], NONE, id="city-name-is"),
    pytest.param(["is_not", "visit:region_name", ["Île-de-France"]], ALL_OF_THE_DAY, id="region-name-is-not"),
    pytest.param(["matches", "visit:city", ["^29"]], NONE, id="city-matches"),
])
def test_region_and_city_filters(settings: Settings, serve: Callable[[str], int], goals: None,
                                 condition: list[Any], expected: tuple[int, ...]) -> None:
    """(visitors, visits, pageviews, events) of the day under a region or city filter: every visit has region ''
    and city 0, so a place matches nothing and its negation everything (3 visitors, 4 visits, 5 pageviews, 7
    events: visit 31's /docs is the next local day)."""
    assert [expected] == results(query(settings, serve, metrics=COUNTS, filters=[condition]))


def test_country_names_are_plausibles(settings: Settings, serve: Callable[[str], int], goals: None) -> None:
    """``visit:country_name``: the ISO 3166-1 common name, else the name (Plausible's ``location`` library);
    DE is A (visits 11, 12: 3 pageviews, 5 events), US is C (visit 31: one pageview within the day)."""
    rows = results(query(settings, serve, metrics=["visitors", "visits"], dimensions=["visit:country_name"]))
    assert [("France", 1, 1), ("Germany", 1, 2), ("United States", 1, 1)] == rows
    assert [(1, 2, 3, 5)] == results(query(settings, serve, metrics=COUNTS,
                                           filters=[["is", "visit:country_name", ["Germany"]]]))
    assert [(1, 1, 1, 1)] == results(query(settings, serve, metrics=COUNTS, filters=[
        ["contains", "visit:country_name", ["united"], {"case_sensitive": False}]]))


def test_city_group_beside_time_and_goals(settings: Settings, serve: Callable[[str], int], goals: None) -> None:
    """The one city group works with the rest of the query: by day (3 visitors, 4 visits) and as a goal's
    group, where A's Signup is 1 of the group's 3 visitors (33.3 %, one decimal as every conversion rate)."""
    rows = results(query(settings, serve, metrics=["visitors", "visits"], dimensions=["time:day", "visit:city"],
                         order_by=[["visit:city", "asc"]]))
    assert [("2026-03-10", 0, 3, 4)] == rows
    rows = results(query(settings, serve, metrics=["visitors", "group_conversion_rate"],
                         dimensions=["visit:region"], filters=[["is", "event:goal", ["Signup"]]]))
    assert [("", 1, 33.3)] == rows
    rows = results(query(settings, serve, metrics=["visitors", "group_conversion_rate"],
                         dimensions=["visit:city"], filters=[["is", "event:goal", ["Signup"]]]))
    assert [(0, 1, 33.3)] == rows
    # Session metrics of the one group are the whole day's (their per-group join compares the city 0 as text).
    session = ["visitors", "bounce_rate", "visit_duration"]
    whole = results(query(settings, serve, metrics=session))
    assert [(0, *whole[0])] == results(query(settings, serve, metrics=session, dimensions=["visit:city"]))
