"""Stats API v2 queries answered by the analytics service over a fixed dataset computed by hand.

The site is in Europe/Berlin (UTC+1 in March). Four visits on 2026-03-10 local time:

- visit 11, visitor A (Google, Desktop, Chrome, DE): 09:00 pageview /, 09:05 pageview /pricing, 09:10 Signup;
- visit 21, visitor B (Twitter, Mobile, Safari, FR): 10:00 pageview /blog/a;
- visit 12, visitor A (direct, Desktop, Chrome, DE): 15:00 pageview /blog/b, 15:01 Outbound (non-interactive);
- visit 31, visitor C (Google, Tablet, Firefox, US): 22:50 pageview / (23:50 local), 23:10 pageview /docs
  (00:10 local, on the 11th).
All times UTC.

On 2026-03-10 local: visitors 3, visits 4, pageviews 5, events 7; bounces: visits 21 and 12 (visit 12's only
other event is non-interactive; visit 31 has two pageviews in all, so it is no bounce) = 50 %; durations
600, 0, 60, 1200 s -> 465 s; pageviews per visit 2, 1, 1, 2 -> 1.5.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.core.db import make_engine
from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.settings import Settings
from tests.support.analytics import query, results

ALL = ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"]


def test_aggregate_metrics_match_the_hand_computed_values(settings: Settings, serve: Callable[[str], int],
                                                          dataset: None) -> None:
    """Every aggregate metric over the local day."""
    assert [(3, 4, 5, 7, 50, 465, 1.5)] == results(query(settings, serve, metrics=ALL))


def test_breakdown_by_source_with_percentage(settings: Settings, serve: Callable[[str], int], dataset: None) -> None:
    """Visit sources, direct traffic labelled as Plausible does, ordered by visitors then name."""
    rows = results(query(settings, serve, metrics=["visitors", "percentage", "bounce_rate"],
                         dimensions=["visit:source"]))
    assert [("Google", 2, 66.7, 0), ("Direct / None", 1, 33.3, 100), ("Twitter", 1, 33.3, 100)] == rows


def test_breakdown_by_page_counts_pageviews_and_entry_bounces(settings: Settings, serve: Callable[[str], int],
                                                              dataset: None) -> None:
    """Pages report: pageviews per page; bounce rate of the visits entering on it."""
    rows = results(query(settings, serve, metrics=["visitors", "pageviews", "bounce_rate"],
                         dimensions=["event:page"]))
    assert [("/", 2, 2, 0), ("/blog/a", 1, 1, 100), ("/blog/b", 1, 1, 100), ("/pricing", 1, 1, 0)] == rows


def test_time_series_by_local_day(settings: Settings, serve: Callable[[str], int], dataset: None) -> None:
    """The event at 00:10 local on the 11th belongs to the 11th."""
    response = query(settings, serve, metrics=["visitors", "pageviews"], dimensions=["time:day"],
                     date_range=["2026-03-09", "2026-03-11"], include={"time_labels": True})
    assert [("2026-03-10", 3, 5), ("2026-03-11", 1, 1)] == results(response)
    assert ["2026-03-09", "2026-03-10", "2026-03-11"] == response.json()["meta"]["time_labels"]


@pytest.mark.parametrize(("filters", "expected"), [
    pytest.param([["is", "visit:source", ["Google"]]], (2, 3), id="is"),
    pytest.param([["is", "visit:source", ["Direct / None"]]], (1, 1), id="direct-label"),
    pytest.param([["is_not", "visit:device", ["Desktop"]]], (2, 2), id="is_not"),
    pytest.param([["contains", "event:page", ["blog"]]], (2, 2), id="contains"),
    pytest.param([["contains_not", "event:page", ["blog", "pricing"]]], (2, 2), id="contains_not"),
    pytest.param([["matches", "event:page", ["^/blog/[ab]$"]]], (2, 2), id="matches"),
    pytest.param([["matches_not", "event:page", ["^/blog"]]], (2, 3), id="matches_not"),
    pytest.param([["is", "event:page", ["/blog*"]]], (2, 2), id="wildcard"),
    pytest.param([["is", "visit:browser", ["chrome"], {"case_sensitive": False}]], (1, 3), id="case-insensitive"),
    pytest.param([["is", "visit:browser", ["chrome"]]], (0, 0), id="case-sensitive"),
    pytest.param([["is", "event:props:plan", ["pro"]]], (1, 0), id="prop"),
    pytest.param([["or", [["is", "visit:country", ["FR"]], ["is", "visit:country", ["US"]]]]], (2, 2), id="or"),
    pytest.param([["not", ["is", "visit:country", ["DE"]]]], (2, 2), id="not"),
    pytest.param([["and", [["is", "visit:country", ["DE"]], ["is", "event:name", ["pageview"]]]]], (1, 3),
                 id="and"),
])
def test_filters(settings: Settings, serve: Callable[[str], int], dataset: None,
                 filters: list[Any], expected: tuple[int, int]) -> None:
    """Each operator and combination: (visitors, pageviews) computed by hand from the table above."""
    assert [expected] == results(query(settings, serve, metrics=["visitors", "pageviews"], filters=filters))


PROPERTY_VALUES = ['say "hi"', "back\\slash", "ünïcode ✓", '{"plan": "pro"}', "50%_off", "Pro", "İstanbul"]


def test_a_property_filter_matches_any_text_exactly(settings: Settings, serve: Callable[[str], int],
                                                    dataset: None) -> None:
    """A property filter on values with quotes, backslashes, JSON, LIKE's wildcards and letters outside ASCII,
    under a key with a quote in it: ``is`` matches each value alone (the GIN index's ``props @>`` condition the
    engine asks must neither lose nor add a row), several values together, case-insensitively when asked (with
    a letter Python and PostgreSQL fold differently), and ``is_not`` keeps the rest. One visitor per value,
    stored as ingest stores them (JSON strings)."""
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        for number, value in enumerate(PROPERTY_VALUES):
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, props) "
                "SELECT id, '2026-03-10 12:00Z', 'Buy', :visitor, :visitor, 'stats.example', '/shop', "
                "CAST(:props AS jsonb) FROM sites WHERE domain = 'stats.example'"),
                {"visitor": 900 + number, "props": json.dumps({'deal "type"': value})})
    engine.dispose()

    def visitors(*clause: Any) -> int:
        rows = results(query(settings, serve, metrics=["visitors"], filters=[list(clause)]))
        return int(rows[0][0])

    prop = 'event:props:deal "type"'
    for value in PROPERTY_VALUES:
        assert 1 == visitors("is", prop, [value]), value
    assert 2 == visitors("is", prop, [PROPERTY_VALUES[0], PROPERTY_VALUES[2], "absent"])
    assert 0 == visitors("is", prop, ["pro"])
    assert 1 == visitors("is", prop, ["PRO"], {"case_sensitive": False})
    # Folded by PostgreSQL on both sides: Python's "İ".lower() is two characters, PostgreSQL's one.
    assert 1 == visitors("is", prop, ["İstanbul"], {"case_sensitive": False})
    assert 1 == visitors("contains", prop, ["İst"], {"case_sensitive": False})
    assert 3 + 6 == visitors("is_not", prop, ["İSTANBUL"], {"case_sensitive": False})
    assert 3 == visitors("is", prop, ["(none)"])  # the dataset's visitors A, B and C
    assert 3 == visitors("is", prop, ["(NONE)"], {"case_sensitive": False})
    assert 3 + 6 == visitors("is_not", prop, ["Pro"])


def test_pagination_and_total_rows(settings: Settings, serve: Callable[[str], int], dataset: None) -> None:
    """limit/offset page through the groups; total_rows counts them all."""
    response = query(settings, serve, metrics=["pageviews"], dimensions=["event:page"],
                     order_by=[["event:page", "asc"]], pagination={"limit": 2, "offset": 1},
                     include={"total_rows": True})
    assert [("/blog/a", 1), ("/blog/b", 1)] == results(response)
    assert 4 == response.json()["meta"]["total_rows"]


@pytest.mark.parametrize(("body", "status", "message"), [
    pytest.param({"metrics": ["visitors"], "site_id": "nope.example"}, 404, "no site", id="unknown-site"),
    pytest.param({"metrics": ["visits"], "filters": [["is", "event:page", [None]]]}, 400,
                 "#/filters/0: Invalid filter [\"is\", \"event:page\", [nil]]", id="null-clause"),
    pytest.param({"metrics": ["visitorz"]}, 400, "#/metrics/0: Invalid metric \"visitorz\"", id="bad-metric"),
])
def test_invalid_queries_are_400_with_the_reason(settings: Settings, serve: Callable[[str], int], dataset: None,
                                                 body: dict[str, Any], status: int, message: str) -> None:
    """Bad queries are answered with the reason, never a 500."""
    response = query(settings, serve, **body)
    assert status == response.status_code
    assert message in response.json()["detail"]


def v1(settings: Settings, serve: Callable[[str], int], endpoint: str, **params: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{serve('analytics')}/v1/{endpoint}",
                     params={"site_id": "stats.example", **params},
                     headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=20)


def test_v1_aggregate_with_comparison(settings: Settings, serve: Callable[[str], int], dataset: None) -> None:
    """v1 aggregate: values and change against the previous period (the day before had nothing)."""
    response = v1(settings, serve, "aggregate", period="day", date="2026-03-10",
                  metrics="visitors,pageviews,bounce_rate", compare="previous_period")
    assert 200 == response.status_code, response.text
    assert {"visitors": {"value": 3, "comparison_value": 0, "change": 100},
            "pageviews": {"value": 5, "comparison_value": 0, "change": 100},
            "bounce_rate": {"value": 50, "comparison_value": 0, "change": 50}} == response.json()["results"]


def test_v1_timeseries_fills_every_day(settings: Settings, serve: Callable[[str], int], dataset: None) -> None:
    """v1 timeseries lists every date of the period, zero where nothing happened."""
    response = v1(settings, serve, "timeseries", period="custom", date="2026-03-09,2026-03-11",
                  metrics="visitors")
    assert [{"date": "2026-03-09", "visitors": 0}, {"date": "2026-03-10", "visitors": 3},
            {"date": "2026-03-11", "visitors": 1}] == response.json()["results"]


def test_v1_breakdown_with_filter(settings: Settings, serve: Callable[[str], int], dataset: None) -> None:
    """v1 breakdown by browser among Desktop and Tablet visits, keyed by the property's short name."""
    response = v1(settings, serve, "breakdown", period="day", date="2026-03-10", property="visit:browser",
                  filters="visit:device==Desktop|Tablet", metrics="visitors,pageviews")
    assert [{"browser": "Chrome", "visitors": 1, "pageviews": 3},
            {"browser": "Firefox", "visitors": 1, "pageviews": 1}] == response.json()["results"]


@pytest.mark.parametrize(("endpoint", "params", "message"), [
    pytest.param("aggregate", {"period": "fortnight"}, "invalid period `fortnight`", id="period"),
    pytest.param("aggregate", {"period": "custom"}, "The `date` parameter is required", id="custom-no-date"),
    pytest.param("aggregate", {"compare": "last_year"}, "previous_period", id="compare"),
    pytest.param("breakdown", {}, "The `property` parameter is required", id="no-property"),
    pytest.param("breakdown", {"property": "visit:source", "limit": "many"}, "provide limit", id="limit"),
    pytest.param("timeseries", {"interval": "minute"}, "invalid interval `minute`", id="interval"),
])
def test_v1_bad_parameters_are_400(settings: Settings, serve: Callable[[str], int], dataset: None,
                                   endpoint: str, params: dict[str, str], message: str) -> None:
    """Bad v1 parameters get a 400 naming the parameter (in Plausible's words: test_v1_fidelity.py)."""
    response = v1(settings, serve, endpoint, **params)
    assert 400 == response.status_code
    assert message in response.json()["detail"]


def test_v1_realtime_visitors(settings: Settings, serve: Callable[[str], int], dataset: None) -> None:
    """Visitors with an event in the last five minutes: two events of one visitor count once; older ones not."""
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        for visitor, minutes in ((7, 1), (7, 2), (8, 9)):
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
                "SELECT id, now() - make_interval(mins => :m), 'pageview', :v, :v, domain, '/' FROM sites "
                "WHERE domain = 'stats.example'"), {"m": minutes, "v": visitor})
    engine.dispose()
    response = v1(settings, serve, "realtime-visitors")
    assert 200 == response.status_code
    assert 1 == response.json()


# --- goals, conversion rates and time on page -----------------------------------------------------------
#
# Goals of the site: "Signup" (custom event Signup), "Visit /blog*" (pageviews of /blog/a and /blog/b),
# "Pricing" (pageviews of /pricing). On 2026-03-10: Signup by A (visit 11, Google, Desktop); Visit /blog* by
# B (/blog/a) and A (/blog/b); Pricing by A. All visitors: 3 (A, B, C).

GOALS = [("Signup", "Signup", None), ("Visit /blog*", None, "/blog*"), ("Pricing", None, "/pricing")]


@pytest.fixture
def goals(settings: Settings, dataset: None) -> None:
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        for name, event, page in GOALS:
            conn.execute(text("INSERT INTO goals (site_id, display_name, event_name, page_path) SELECT id, :name, "
                              ":event, :page FROM sites WHERE domain = 'stats.example'"),
                         {"name": name, "event": event, "page": page})
    engine.dispose()


def test_goal_breakdown_with_conversion_rates(settings: Settings, serve: Callable[[str], int], goals: None) -> None:
    """event:goal groups the events completing each goal; conversion rate = its visitors / all 3 visitors."""
    rows = results(query(settings, serve, metrics=["visitors", "events", "conversion_rate", "group_conversion_rate"],
                         dimensions=["event:goal"]))
    assert [("Visit /blog*", 2, 2, 66.7, 66.7), ("Pricing", 1, 1, 33.3, 33.3), ("Signup", 1, 1, 33.3, 33.3)] == rows


@pytest.mark.parametrize(("filters", "expected"), [
    pytest.param([["is", "event:goal", ["Signup"]]], (1, 1, 33.3), id="is"),
    pytest.param([["is", "event:goal", ["signup"], {"case_sensitive": False}]], (1, 1, 33.3), id="folded"),
    pytest.param([["contains", "event:goal", ["signup"]]], (0, 0, 0.0), id="case-sensitive"),
    pytest.param([["contains", "event:goal", ["blog"]]], (2, 2, 66.7), id="contains"),
    pytest.param([["is", "event:goal", ["Signup", "Pricing"]]], (1, 2, 33.3), id="either"),
    # The divisor keeps the other filters (1 Desktop visitor) and drops the top-level property filters.
    pytest.param([["is", "event:goal", ["Signup"]], ["is", "visit:device", ["Desktop"]]], (1, 1, 100.0),
                 id="device"),
    pytest.param([["is", "event:goal", ["Signup"]], ["is", "event:props:plan", ["pro"]]], (1, 1, 33.3), id="prop"),
])
def test_goal_filters_and_conversion_rate(settings: Settings, serve: Callable[[str], int], goals: None,
                                          filters: list[Any], expected: tuple[Any, ...]) -> None:
    """(visitors, events, conversion_rate) of the events completing the filtered goals."""
    assert [expected] == results(query(settings, serve, metrics=["visitors", "events", "conversion_rate"],
                                       filters=filters))


def test_group_conversion_rate_by_source(settings: Settings, serve: Callable[[str], int], goals: None) -> None:
    """Signup by Google visitors: 1 of Google's 2 visitors (50 %), 1 of all 3 (33.3 %)."""
    rows = results(query(settings, serve, metrics=["visitors", "group_conversion_rate", "conversion_rate"],
                         dimensions=["visit:source"], filters=[["is", "event:goal", ["Signup"]]]))
    assert [("Google", 1, 50.0, 33.3)] == rows


def test_goal_dimension_with_a_goal_filter_lists_only_those_goals(settings: Settings, serve: Callable[[str], int],
                                                                   goals: None) -> None:
    rows = results(query(settings, serve, metrics=["visitors"], dimensions=["event:goal"],
                         filters=[["is", "event:goal", ["Signup", "Pricing"]]]))
    assert [("Pricing", 1), ("Signup", 1)] == rows


def test_v1_goal_breakdown_and_conversion_rate(settings: Settings, serve: Callable[[str], int], goals: None) -> None:
    """v1: breakdown by event:goal keyed "goal"; aggregate conversion rate with a goal filter."""
    response = v1(settings, serve, "breakdown", period="day", date="2026-03-10", property="event:goal",
                  metrics="visitors,events,conversion_rate")
    assert 200 == response.status_code, response.text
    assert [{"goal": "Visit /blog*", "visitors": 2, "events": 2, "conversion_rate": 66.7},
            {"goal": "Pricing", "visitors": 1, "events": 1, "conversion_rate": 33.3},
            {"goal": "Signup", "visitors": 1, "events": 1, "conversion_rate": 33.3}] == response.json()["results"]
    response = v1(settings, serve, "aggregate", period="day", date="2026-03-10", filters="event:goal==Signup",
                  metrics="visitors,conversion_rate", compare="previous_period")
    assert {"visitors": {"value": 1, "comparison_value": 0, "change": 100},
            "conversion_rate": {"value": 33.3, "comparison_value": 0, "change": 33.3}} == response.json()["results"]


@pytest.mark.parametrize(("body", "message"), [
    pytest.param({"metrics": ["group_conversion_rate"]},
                 "Metric `group_conversion_rate` can only be queried with event:goal filters or dimensions.",
                 id="no-goal"),
    pytest.param({"metrics": ["visitors"], "filters": [["is_not", "event:goal", ["Signup"]]]},
                 "#/filters/0: Invalid filter [\"is_not\", \"event:goal\", [\"Signup\"]]", id="goal-operator"),
    pytest.param({"metrics": ["bounce_rate"], "dimensions": ["event:goal"]},
                 "Session metric(s) `bounce_rate` cannot be queried along with event dimension(s) `event:goal`",
                 id="session-metric"),
    pytest.param({"metrics": ["time_on_page"], "dimensions": ["visit:source"]},
                 "Metric `time_on_page` can only be queried with event:page filters or dimensions.",
                 id="time-on-page-without-a-page"),
])
def test_invalid_goal_and_time_on_page_queries(settings: Settings, serve: Callable[[str], int], goals: None,
                                               body: dict[str, Any], message: str) -> None:
    response = query(settings, serve, **body)
    assert 400 == response.status_code
    assert message in response.json()["detail"]


# Time on page, on 2026-03-12 (UTC+1), two more visits:
# visit 41, visitor D: 10:00 /a, 10:01 /b, 10:03 /a, 10:04 /a (reload), 10:06 /b, 10:07 Click on /b;
# visit 42, visitor E: 11:00 /a, 11:05 /c.
# Durations to the visit's next event, grouped by (page, next page, visit): (/a,/b,41) 60+120 = 180, a
# transition; (/b,/a,41) 120, a transition; (/a,/a,41) 60 and (/b,/b,41) 60, no transition; (/a,/c,42) 300, a
# transition; the last events of each visit count nothing. /a: (180+60+300)/2 = 270; /b: (120+60)/1 = 180; /c:
# no transition, null. All pages: (540+180)/3 = 240.
TIMED = [(41, (10, 0), "pageview", "/a"), (41, (10, 1), "pageview", "/b"), (41, (10, 3), "pageview", "/a"),
         (41, (10, 4), "pageview", "/a"), (41, (10, 6), "pageview", "/b"), (41, (10, 7), "Click", "/b"),
         (42, (11, 0), "pageview", "/a"), (42, (11, 5), "pageview", "/c")]


@pytest.fixture
def timed(settings: Settings, dataset: None) -> None:
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        for session, (hour, minute), name, path in TIMED:
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
                "SELECT id, :ts, :name, :session + 100, :session, domain, :path FROM sites "
                "WHERE domain = 'stats.example'"),
                {"ts": datetime(2026, 3, 12, hour, minute, tzinfo=UTC), "name": name, "session": session,
                 "path": path})
    engine.dispose()


def test_time_on_page_by_page(settings: Settings, serve: Callable[[str], int], timed: None) -> None:
    rows = results(query(settings, serve, metrics=["pageviews", "time_on_page"], dimensions=["event:page"],
                         date_range=["2026-03-12", "2026-03-12"]))
    assert [("/a", 4, 270), ("/b", 2, 180), ("/c", 1, None)] == rows


@pytest.mark.parametrize(("filters", "expected"), [
    pytest.param([["is", "event:page", ["/a"]]], 270, id="one-page"),
    pytest.param([["contains", "event:page", ["/"]]], 240, id="all-pages"),
    pytest.param([["is", "event:page", ["/c"]]], None, id="no-transition"),
])
def test_time_on_page_aggregate(settings: Settings, serve: Callable[[str], int], timed: None,
                                filters: list[Any], expected: int | None) -> None:
    rows = results(query(settings, serve, metrics=["time_on_page"], filters=filters,
                         date_range=["2026-03-12", "2026-03-12"]))
    assert [(expected,)] == rows


def test_time_on_page_crosses_midnight_within_the_range(settings: Settings, serve: Callable[[str], int],
                                                        dataset: None) -> None:
    """Visit 31: / at 23:50 local, /docs at 00:10 the next day: 1,200 s counted when both days are in range;
    visit 11: / then /pricing after 300 s. /: (300 + 1200) / 2 = 750."""
    rows = results(query(settings, serve, metrics=["time_on_page"], dimensions=["event:page"],
                         date_range=["2026-03-10", "2026-03-11"], filters=[["is", "event:page", ["/"]]]))
    assert [("/", 750)] == rows
