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
                "utm_campaign, country, browser, browser_version) VALUES (:s, :ts, 'pageview', :v, :v, :h, :p, :c, "
                ":country, :browser, :version)"),
                {"s": site, "ts": datetime(2026, 3, 10, hour, minute, tzinfo=UTC), "v": visitor, "h": SITE,
                 "p": path, "c": campaign, "country": country, "browser": "Safari" if visitor == 3 else "Firefox",
                 "version": "17.4" if visitor == 3 else "128.0"})
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
    # Plausible's parser leaves out an expression that is not property, == or !=, value: the rest still filters.
    pytest.param("event:page~pricing", 4, id="contains-is-no-v1-operator"),
    pytest.param("visit:country=DE", 4, id="single-equals-left-out"),
    pytest.param("visit:country==DE;event:page==/a==b", 2, id="two-comparisons-left-out"),
    pytest.param("visit:country==", 4, id="no-value-left-out"),
    # Every visit has region '' and city 0 (no city database, as Plausible without one): a place matches nothing.
    pytest.param("visit:city==2988507", 0, id="city-is"),
    pytest.param("visit:city!=2988507|2950159", 4, id="city-is-not"),
    pytest.param("visit:region==FR-75", 0, id="region-is"),
    pytest.param("visit:region!=FR-75", 4, id="region-is-not"),
    pytest.param("visit:region==FR*", 0, id="region-wildcard"),
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


def test_v1_timeseries_of_twelve_months_is_monthly(settings: Settings, serve: Callable[[str], int],
                                                   traffic: None) -> None:
    response = v1(settings, serve, "timeseries", metrics="visitors", period="12mo", date="2027-01-15")
    assert 200 == response.status_code, response.text
    rows = response.json()["results"]
    assert 12 == len(rows)
    assert {"date": "2026-03-01", "visitors": 4} == rows[2]


def test_v1_timeseries_interval_date_is_day(settings: Settings, serve: Callable[[str], int], traffic: None) -> None:
    """``interval=date`` (Plausible's legacy name) gives daily rows."""
    response = v1(settings, serve, "timeseries", metrics="visitors", period="custom", date="2026-03-09,2026-03-10",
                  interval="date")
    assert 200 == response.status_code, response.text
    assert [{"date": "2026-03-09", "visitors": 0}, {"date": "2026-03-10", "visitors": 4}] == response.json()["results"]


def test_v1_timeseries_empty_buckets_hold_each_metrics_default(settings: Settings, serve: Callable[[str], int],
                                                               traffic: None) -> None:
    """A bucket without visits: 0 for counts, 0.0 for rates, null for visit_duration (``Metrics.default_value``)."""
    response = v1(settings, serve, "timeseries", metrics="visitors,bounce_rate,views_per_visit,visit_duration",
                  period="custom", date="2026-03-09,2026-03-09")
    assert 200 == response.status_code, response.text
    assert [{"date": "2026-03-09", "visitors": 0, "bounce_rate": 0.0, "views_per_visit": 0.0,
             "visit_duration": None}] == response.json()["results"]


DOCS = "https://plausible.io/docs/stats-api"


@pytest.mark.parametrize(("endpoint", "params", "error"), [
    pytest.param("aggregate", {"period": "3d"}, "Error parsing `period` parameter: invalid period `3d`. Please find "
                 f"accepted values in our docs: {DOCS}#time-periods", id="period"),
    pytest.param("aggregate", {"period": "custom", "date": None}, "The `date` parameter is required when using a "
                 f"custom period. See {DOCS}#time-periods", id="custom-without-date"),
    pytest.param("aggregate", {"period": "custom", "date": "2026-03-01"}, "Invalid format for `date` parameter. When "
                 "using a custom period, please include two ISO-8601 formatted dates joined by a comma. See "
                 f"{DOCS}#time-periods", id="custom-with-one-date"),
    pytest.param("aggregate", {"period": "custom", "date": "2026-03-01,2026-02-30"}, "Invalid format for `date` "
                 "parameter. When using a custom period, please include two ISO-8601 formatted dates joined by a "
                 f"comma. See {DOCS}#time-periods", id="custom-with-an-impossible-date"),
    pytest.param("aggregate", {"date": "10/03/2026"}, "Error parsing `date` parameter: invalid_format. Please specify "
                 "a valid date in ISO-8601 format.", id="date-format"),
    pytest.param("aggregate", {"date": "2026-02-30"}, "Error parsing `date` parameter: invalid_date. Please specify "
                 "a valid date in ISO-8601 format.", id="impossible-date"),
    pytest.param("aggregate", {"metrics": "visitors,visitors"}, "Metrics cannot be queried multiple times.",
                 id="repeated-metric"),
    pytest.param("aggregate", {"metrics": "visitors,uniques"}, "The metric `uniques` is not recognized. Find valid "
                 f"metrics from the documentation: {DOCS}#metrics", id="unknown-metric"),
    pytest.param("aggregate", {"filters": "visit:colour==red"}, "Invalid filter property 'visit:colour'. Please "
                 f"provide a valid filter property: {DOCS}#properties", id="unknown-filter-property"),
    pytest.param("timeseries", {"interval": "year"}, "Error parsing `interval` parameter: invalid interval `year`. "
                 "Valid intervals are `day`, `month`", id="interval"),
    pytest.param("timeseries", {"interval": "hour"}, "Error parsing `interval` parameter: invalid interval `hour`. "
                 "Valid intervals are `day`, `month`", id="interval-hour"),
    pytest.param("timeseries", {"interval": "week"}, "Error parsing `interval` parameter: invalid interval `week`. "
                 "Valid intervals are `day`, `month`", id="interval-week"),
    pytest.param("aggregate", {"period": "year"}, "Error parsing `period` parameter: invalid period `year`. Please "
                 f"find accepted values in our docs: {DOCS}#time-periods", id="period-year"),
    pytest.param("breakdown", {"property": "event:hostname"}, "Property 'event:hostname' is currently not supported "
                 f"for breakdowns.  Please provide a valid property for the breakdown endpoint: {DOCS}#properties",
                 id="hostname-breakdown"),
    pytest.param("aggregate", {"filters": "event:goal==Signup"}, "The goal `Signup` is not configured for this site. "
                 "Find out how to configure goals here: https://plausible.io/docs/stats-api#filtering-by-goals",
                 id="goal-not-configured"),
    pytest.param("breakdown", {"property": "visit:source", "filters": "event:goal==Visit /nope"},
                 "The pageview goal for the pathname `/nope` is not configured for this site. Find out how to "
                 "configure goals here: https://plausible.io/docs/stats-api#filtering-by-goals",
                 id="page-goal-not-configured"),
    pytest.param("breakdown", {}, "The `property` parameter is required. Please provide at least one property to "
                 "show a breakdown by.", id="no-property"),
    pytest.param("breakdown", {"property": "time:day"}, "Invalid property 'time:day'. Please provide a valid "
                 f"property for the breakdown endpoint: {DOCS}#properties", id="time-property"),
    pytest.param("breakdown", {"property": "visit:colour"}, "Invalid property 'visit:colour'. Please provide a valid "
                 f"property for the breakdown endpoint: {DOCS}#properties", id="unknown-property"),
    pytest.param("breakdown", {"property": "visit:source", "limit": "1001"},
                 "Please provide limit as a number between 1 and 1000.", id="limit-too-large"),
    pytest.param("breakdown", {"property": "visit:source", "limit": "10x"},
                 "Please provide limit as a number between 1 and 1000.", id="limit-not-a-number"),
    pytest.param("breakdown", {"property": "visit:source", "page": "0"}, "Please provide page as a positive number.",
                 id="page-zero"),
    pytest.param("aggregate", {"metrics": "conversion_rate"}, "Metric `conversion_rate` can only be queried in a "
                 "goal breakdown or with a goal filter", id="conversion-rate-without-goal"),
    pytest.param("aggregate", {"metrics": "time_on_page"}, "Metric `time_on_page` can only be queried in a page "
                 "breakdown or with a page filter.", id="time-on-page-without-page"),
    pytest.param("aggregate", {"metrics": "time_on_page", "filters": "event:name==Signup;event:page==/"},
                 "Metric `time_on_page` cannot be queried when filtering by `event:name`", id="time-on-page-by-name"),
    pytest.param("breakdown", {"property": "visit:source", "metrics": "time_on_page"}, "Metric `time_on_page` is "
                 "not supported in breakdown queries (except `event:page` breakdown)", id="time-on-page-breakdown"),
    pytest.param("aggregate", {"metrics": "views_per_visit", "filters": "event:page==/"}, "Metric `views_per_visit` "
                 "cannot be queried with a filter on `event:page`.", id="views-per-visit-page-filter"),
    pytest.param("breakdown", {"property": "visit:source", "metrics": "views_per_visit"}, "Metric `views_per_visit` "
                 "is not supported in breakdown queries.", id="views-per-visit-breakdown"),
    pytest.param("breakdown", {"property": "event:name", "metrics": "visitors,bounce_rate"}, "Session metric "
                 "`bounce_rate` cannot be queried for breakdown by `event:name`.", id="session-metric-by-event"),
    pytest.param("timeseries", {"metrics": "visit_duration", "filters": "visit:country==DE;event:props:plan==pro"},
                 "Session metric `visit_duration` cannot be queried when using a filter on `event:props:plan`.",
                 id="session-metric-event-filter"),
])
def test_v1_errors_are_plausibles(settings: Settings, serve: Callable[[str], int], traffic: None, endpoint: str,
                                  params: dict[str, str | None], error: str) -> None:
    """Each refusal answers 400 with Plausible's own message (its ExternalStatsController's wording)."""
    query = {"site_id": SITE, "period": "day", "date": "2026-03-10", **params}
    response = httpx.get(f"http://127.0.0.1:{serve('analytics')}/v1/{endpoint}",
                         params={k: v for k, v in query.items() if v is not None},
                         headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=20)
    assert 400 == response.status_code, response.text
    assert error == response.json()["detail"]


@pytest.mark.parametrize(("params", "visitors"), [
    pytest.param({"period": "custom", "date": "2026-03-10, 2026-03-11"}, 4, id="custom-dates-trimmed"),
    pytest.param({"property": "visit:country", "limit": "+2", "page": "1"}, 2, id="limit-with-a-sign"),
    pytest.param({"property": "event:page", "metrics": "visitors,time_on_page"}, 3, id="time-on-page-by-page"),
])
def test_v1_accepts_what_plausible_accepts(settings: Settings, serve: Callable[[str], int], traffic: None,
                                          params: dict[str, str], visitors: int) -> None:
    endpoint = "breakdown" if "property" in params else "aggregate"
    response = v1(settings, serve, endpoint, **{"metrics": "visitors", **params})
    assert 200 == response.status_code, response.text
    results = response.json()["results"]
    assert visitors == (len(results) if endpoint == "breakdown" else results["visitors"]["value"])


@pytest.mark.parametrize(("prop", "rows"), [
    pytest.param("visit:utm_campaign", [{"utm_campaign": "spring", "visitors": 1},
                                        {"utm_campaign": "spring-sale", "visitors": 1},
                                        {"utm_campaign": "summer", "visitors": 1}], id="no-empty-campaign"),
    pytest.param("visit:country", [{"country": "DE", "visitors": 2}, {"country": "FR", "visitors": 1},
                                   {"country": "US", "visitors": 1}], id="ties-by-value"),
    pytest.param("visit:browser_version", [{"browser": "Firefox", "browser_version": "128.0", "visitors": 3},
                                           {"browser": "Safari", "browser_version": "17.4", "visitors": 1}],
                 id="version-with-its-browser"),
    # Plausible's legacy breakdown leaves out region '' and city 0: every visit here, so no row.
    pytest.param("visit:region", [], id="no-unknown-region"),
    pytest.param("visit:city", [], id="no-unknown-city"),
])
def test_v1_breakdown_rows(settings: Settings, serve: Callable[[str], int], traffic: None, prop: str,
                           rows: list[dict[str, object]]) -> None:
    """As Plausible's legacy breakdown: visits without the property (no campaign, no entry page, unknown
    country …) are no row, and rows are ordered by the first metric, then by the value."""
    response = v1(settings, serve, "breakdown", property=prop)
    assert 200 == response.status_code, response.text
    assert rows == response.json()["results"]


def test_v1_aggregate_compare_has_the_comparison_value(settings: Settings, serve: Callable[[str], int],
                                                       traffic: None) -> None:
    """compare=previous_period: value, comparison_value and change per metric, as Plausible's legacy aggregate;
    bounce_rate and visit_duration are whole numbers."""
    response = v1(settings, serve, "aggregate", metrics="visitors,bounce_rate,visit_duration",
                  compare="previous_period")
    assert 200 == response.status_code, response.text
    assert {"visitors": {"value": 4, "comparison_value": 0, "change": 100},
            "bounce_rate": {"value": 100, "comparison_value": 0, "change": 100},
            "visit_duration": {"value": 0, "comparison_value": 0, "change": 0}} == response.json()["results"]


@pytest.fixture
def pricing_goal(settings: Settings, traffic: None) -> None:
    """The page goal "Visit /pricing": visitor 2 (DE, 05:40) completes it."""
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        conn.execute(text("INSERT INTO goals (site_id, display_name, page_path) SELECT id, 'Visit /pricing', "
                          "'/pricing' FROM sites WHERE domain = :d"), {"d": SITE})
    db_engine.dispose()


def test_v1_timeseries_conversion_rate_is_per_bucket(settings: Settings, serve: Callable[[str], int],
                                                     pricing_goal: None) -> None:
    """Plausible's Legacy.Timeseries asks for the group conversion rate: at 05:00 one of the hour's two visitors
    converted (50 %, not 1 of the day's 4); an hour without visitors holds 0.0."""
    response = v1(settings, serve, "timeseries", metrics="visitors,conversion_rate",
                  filters="event:goal==Visit /pricing")
    assert 200 == response.status_code, response.text
    rows = {row["date"]: row for row in response.json()["results"]}
    assert {"date": "2026-03-10 05:00:00", "visitors": 1, "conversion_rate": 50.0} == rows["2026-03-10 05:00:00"]
    assert {"date": "2026-03-10 13:00:00", "visitors": 0, "conversion_rate": 0.0} == rows["2026-03-10 13:00:00"]


@pytest.mark.parametrize(("prop", "rows"), [
    # By a visit property: the group conversion rate (1 of DE's 2 visitors).
    pytest.param("visit:country", [{"country": "DE", "visitors": 1, "conversion_rate": 50.0}], id="by-country"),
    # By a custom property: the conversion rate over all 4 visitors, as Plausible keeps it there.
    pytest.param("event:props:plan", [{"plan": "(none)", "visitors": 1, "conversion_rate": 25.0}], id="by-prop"),
    pytest.param("event:goal", [{"goal": "Visit /pricing", "visitors": 1, "conversion_rate": 25.0}], id="by-goal"),
])
def test_v1_breakdown_conversion_rate(settings: Settings, serve: Callable[[str], int], pricing_goal: None,
                                      prop: str, rows: list[dict[str, object]]) -> None:
    """Plausible's Legacy.Breakdown: conversion_rate is the group conversion rate except by a goal or a custom
    property."""
    response = v1(settings, serve, "breakdown", property=prop, metrics="visitors,conversion_rate",
                  filters="event:goal==Visit /pricing")
    assert 200 == response.status_code, response.text
    assert rows == response.json()["results"]


def test_v1_breakdown_of_time_on_page_alone_ranks_by_visitors(settings: Settings, serve: Callable[[str], int],
                                                              traffic: None) -> None:
    """Plausible's Legacy.Breakdown ranks by visitors when time_on_page is the only metric: /zeta's two visitors
    put it before /a|b and /pricing (one each), though it sorts after them by name; visitors is not shown."""
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        for visitor in (5, 6):
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
                "SELECT id, :ts, 'pageview', :v, :v, domain, '/zeta' FROM sites WHERE domain = :d"),
                {"ts": datetime(2026, 3, 10, 6, visitor, tzinfo=UTC), "v": visitor, "d": SITE})
    db_engine.dispose()
    response = v1(settings, serve, "breakdown", property="event:page", metrics="time_on_page")
    assert 200 == response.status_code, response.text
    assert [{"page": page, "time_on_page": None} for page in ("/", "/zeta", "/a|b", "/pricing")] == \
        response.json()["results"]
