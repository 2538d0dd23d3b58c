"""Stats API v2 queries: date ranges as Plausible resolves them, and every validation error."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from app.core.errors import ClientError
from services.analytics import rollups
from services.analytics.logic import check_range
from services.analytics.query import (
    Condition,
    QueryError,
    parse_query,
    resolve_date_range,
    time_bucket,
    time_labels,
)

NOW = datetime(2026, 5, 8, 12, 30, tzinfo=UTC)  # a Friday


def q(**fields: Any) -> dict[str, Any]:
    return {"site_id": "example.com", "metrics": ["visitors"], "date_range": "7d", **fields}


@pytest.mark.parametrize(("value", "first", "last"), [
    pytest.param("7d", date(2026, 5, 1), date(2026, 5, 7), id="7d-ends-yesterday"),
    pytest.param("30d", date(2026, 4, 8), date(2026, 5, 7), id="30d"),
    pytest.param("month", date(2026, 5, 1), date(2026, 5, 31), id="month"),
    pytest.param("6mo", date(2025, 11, 1), date(2026, 4, 30), id="6mo-full-months"),
    pytest.param("12mo", date(2025, 5, 1), date(2026, 4, 30), id="12mo"),
    pytest.param("8d", date(2026, 4, 30), date(2026, 5, 7), id="any-days"),
    pytest.param("5000d", date(2012, 8, 29), date(2026, 5, 7), id="most-days"),
    pytest.param("3mo", date(2026, 2, 1), date(2026, 4, 30), id="any-months"),
    pytest.param("year", date(2026, 1, 1), date(2026, 12, 31), id="year"),
    pytest.param("all", date(2025, 3, 2), date(2026, 5, 8), id="all"),
    pytest.param(["2026-01-01", "2026-01-31"], date(2026, 1, 1), date(2026, 1, 31), id="custom"),
])
def test_date_ranges_resolve_like_plausible(value: object, first: date, last: date) -> None:
    """Shortcuts cover the same local days as Plausible's."""
    resolved = resolve_date_range(value, "UTC", NOW, stats_start=date(2025, 3, 2))
    assert (first, last) == (resolved.first_day, resolved.last_day)


def test_date_range_bounds_follow_the_site_time_zone() -> None:
    """In Europe/Tallinn (UTC+3 in May) the 7 days start and end at local midnight."""
    resolved = resolve_date_range("7d", "Europe/Tallinn", NOW)
    assert datetime(2026, 4, 30, 21, tzinfo=UTC) == resolved.start
    assert datetime(2026, 5, 7, 21, tzinfo=UTC) == resolved.end


def test_day_is_truncated_at_now_and_24h_is_rolling() -> None:
    """Today ends now; 24h is the last 24 hours."""
    today = resolve_date_range("day", "UTC", NOW)
    assert (datetime(2026, 5, 8, tzinfo=UTC), NOW) == (today.start, today.end)
    rolling = resolve_date_range("24h", "UTC", NOW)
    assert (datetime(2026, 5, 7, 12, 30, tzinfo=UTC), NOW) == (rolling.start, rolling.end)


def test_previous_period_has_the_same_length() -> None:
    """The comparison period of 7d is the 7 days before it."""
    previous = resolve_date_range("7d", "UTC", NOW).previous()
    assert (date(2026, 4, 24), date(2026, 4, 30)) == (previous.first_day, previous.last_day)


def test_a_valid_query_is_normalised() -> None:
    """Dimensions, filters, ordering, include and pagination are kept."""
    query = parse_query(q(metrics=["visitors", "bounce_rate"], dimensions=["visit:source"],
                          filters=[["is", "visit:country", ["DE", "FR"]],
                                   ["or", [["contains", "event:page", ["/blog"], {"case_sensitive": False}],
                                           ["not", ["matches", "event:page", ["^/docs/\\d+$"]]]]]],
                          order_by=[["bounce_rate", "asc"]], include={"total_rows": True},
                          pagination={"limit": 5, "offset": 10}), timezone="UTC", now=NOW)
    assert ("visitors", "bounce_rate") == query.metrics
    assert (("bounce_rate", "asc"),) == query.order_by
    assert (5, 10, True) == (query.limit, query.offset, query.total_rows)
    assert {"visit:country", "event:page"} == query.filtered_dimensions()


def test_city_takes_geonames_ids() -> None:
    """Plausible's schema allows integer clauses, and its parser takes them for visit:city (GeoNames ids)."""
    query = parse_query(q(filters=[["is", "visit:city", [2988507, 2950159]]]), timezone="UTC", now=NOW)
    assert [("visit:city", ("2988507", "2950159"))] == [(c.dimension, c.clauses) for c in query.filters
                                                       if isinstance(c, Condition)]


@pytest.mark.parametrize(("body", "message"), [
    pytest.param([], "#: Type mismatch. Expected Object but got Array.", id="not-object"),
    pytest.param(q(site_id=None), "#/site_id: Type mismatch. Expected String but got Null.", id="null-site"),
    pytest.param({"metrics": ["visitors"], "date_range": "day"}, "#: Required property site_id was not present.",
                 id="no-site"),
    pytest.param({"site_id": "a"}, "#: Required properties metrics, date_range were not present.",
                 id="no-metrics-no-range"),
    pytest.param(q(metrics=[]), "#/metrics: Expected a minimum of 1 items but got 0.", id="no-metrics"),
    pytest.param(q(metrics="visitors"), "#/metrics: Type mismatch. Expected Array but got String.", id="metrics-type"),
    pytest.param(q(metrics=["visitorz"]), "#/metrics/0: Invalid metric \"visitorz\"", id="unknown-metric"),
    pytest.param(q(metrics=["visitors", "visitors"]), "#/metrics: Expected items to be unique but they were not.",
                 id="duplicate-metric"),
    pytest.param({"site_id": "a", "metrics": ["visitors"]}, "#: Required property date_range was not present.",
                 id="no-range"),
    pytest.param(q(date_range=7), "#/date_range: Invalid date range 7", id="range-type"),
    pytest.param(q(date_range="8x"), "#/date_range: Invalid date range \"8x\"", id="bad-shortcut"),
    pytest.param(q(date_range="5001d"), "Invalid date range \"5001d\"", id="too-many-days"),
    pytest.param(q(date_range="0d"), "Invalid date range \"0d\"", id="no-days"),
    pytest.param(q(date_range="101mo"), "Invalid date range \"101mo\"", id="too-many-months"),
    pytest.param(q(date_range=["2026-02-01", "2026-01-01"]), "end date is before", id="reversed"),
    pytest.param(q(date_range=["2026-13-01", "2026-12-01"]), "Invalid date_range '[\"2026-13-01\", \"2026-12-01\"]'.",
                 id="bad-date"),
    pytest.param(q(date_range=["2024-01-01T00:00:00+25:00", "2024-01-02T00:00:00+00:00"]),
                 "Invalid date_range '[\"2024-01-01T00:00:00+25:00\", \"2024-01-02T00:00:00+00:00\"]'.",
                 id="offset-beyond-a-day"),
    pytest.param(q(date_range=["2026-01-01T10:00:00", "2026-01-01T11:00:00"]),
                 "Invalid date_range '[\"2026-01-01T10:00:00\", \"2026-01-01T11:00:00\"]'.", id="naive"),
    pytest.param(q(dimensions=["visit:planet"]), "#/dimensions/0: Invalid dimension \"visit:planet\"",
                 id="bad-dimension"),
    pytest.param(q(dimensions=["time:day", "time:week"]), "at most one time", id="two-time"),
    pytest.param(q(filters=[["equals", "event:page", ["/"]]]),
                 "#/filters/0: Invalid filter [\"equals\", \"event:page\", [\"/\"]]", id="bad-op"),
    pytest.param(q(dimensions=["event:name", "event:name"]),
                 "#/dimensions: Expected items to be unique but they were not.", id="duplicate-dimension"),
    pytest.param(q(dimensions=[3]), "#/dimensions/0: Invalid dimension 3", id="dimension-type"),
    pytest.param(q(filters=[["is", "event:page", []]]), "non-empty list", id="empty-clauses"),
    pytest.param(q(filters=[["is", "event:page", [1]]]), "#/filters/0: Invalid filter [\"is\", \"event:page\", [1]]",
                 id="clause-type"),
    pytest.param(q(filters=[["is", "event:page", [None]]]),
                 "#/filters/0: Invalid filter [\"is\", \"event:page\", [nil]]", id="clause-null"),
    pytest.param(q(filters=[["is", "event:page", [True]]]),
                 "#/filters/0: Invalid filter [\"is\", \"event:page\", [true]]", id="clause-boolean"),
    pytest.param(q(filters=[["is", "visit:city", [2988507, "Paris"]]]),
                 "#/filters/0: Invalid filter [\"is\", \"visit:city\", [2988507, \"Paris\"]]", id="city-mixed"),
    pytest.param(q(filters=[["is", "event:page", [f"/{i}" for i in range(101)]]]),
                 "filters: a filter on event:page has at most 100 clauses, got 101", id="too-many-clauses"),
    pytest.param(q(filters=[["is", "event:page", ["/" + "a" * 2000]]]),
                 "filters: a clause of event:page has at most 2000 characters", id="clause-too-long"),
    pytest.param(q(filters=[["is", "time:day", ["2026-01-01"]]]),
                 "#/filters/0: Invalid filter [\"is\", \"time:day\", [\"2026-01-01\"]]", id="time-filter"),
    pytest.param(q(filters=[["matches", "event:page", ["(unclosed"]]]), "invalid regular expression", id="regex"),
    pytest.param(q(filters=[["is_not", "event:goal", ["Signup"]]]),
                 "#/filters/0: Invalid filter [\"is_not\", \"event:goal\", [\"Signup\"]]", id="goal-op"),
    pytest.param(q(filters=[["is", "event:page", ["/"], {"exact": True}]]),
                 "#/filters/0: Invalid filter [\"is\", \"event:page\", [\"/\"], %{\"exact\" => true}]",
                 id="bad-modifier"),
    pytest.param(q(filters=[["has_done", "event:name", ["x"]]]),
                 "#/filters/0: Invalid filter [\"has_done\", \"event:name\", [\"x\"]]", id="behavioral"),
    # A schema failure inside a logical filter is reported on the top-level filter, as Plausible does.
    pytest.param(q(filters=[["is", "visit:country", ["DE"]], ["or", [["is", "event:page", ["/"]], ["is", "x", []]]]]),
                 "#/filters/1: Invalid filter [\"or\", [[\"is\", \"event:page\", [\"/\"]], [\"is\", \"x\", []]]]",
                 id="nested-invalid"),
    pytest.param(q(filters=[["has_done", ["is", "visit:source", ["x"]]]]), "only be used with event dimension",
                 id="behavioral-visit"),
    pytest.param(q(filters=[["and", []]]), "#/filters/0: Invalid filter [\"and\", []]", id="empty-and"),
    pytest.param(q(metrics=["bounce_rate"], dimensions=["event:name"]), "cannot be queried along with event",
                 id="session-event"),
    pytest.param(q(metrics=["percentage"]), "requires at least one dimension", id="percentage"),
    pytest.param(q(metrics=["conversion_rate"]), "can only be queried with event:goal filters or dimensions",
                 id="conversion"),
    pytest.param(q(metrics=["time_on_page"]),
                 "Metric `time_on_page` can only be queried with event:page filters or dimensions.", id="time-on-page"),
    pytest.param(q(metrics=["bounce_rate"], dimensions=["event:hostname"]),
                 "Session metric(s) `bounce_rate` cannot be queried along with event dimension(s) `event:hostname`",
                 id="session-hostname"),
    pytest.param(q(order_by=[["pageviews", "desc"]]),
                 "Invalid order_by entry '{:pageviews, :desc}'. Entry is not a queried metric or dimension.",
                 id="order-unknown"),
    pytest.param(q(order_by=[["visit:source", "asc"]]),
                 "Invalid order_by entry '{\"visit:source\", :asc}'. Entry is not a queried metric or dimension.",
                 id="order-unknown-dimension"),
    pytest.param(q(order_by=[["visitors", "up"]]), "invalid entry", id="order-direction"),
    pytest.param(q(include={"time_labels": True}), "Invalid include.time_labels: requires a time dimension.",
                 id="labels-no-time"),
    pytest.param(q(include={"everything": True}), "#/include/everything: Schema does not allow additional properties.",
                 id="include-key"),
    pytest.param(q(include={"imports": "yes"}), "#/include/imports: Type mismatch. Expected Boolean but got String.",
                 id="include-type"),
    pytest.param(q(pagination={"limit": 0}), "pagination.limit", id="limit-zero"),
    pytest.param(q(pagination={"limit": 10, "offset": -1}), "pagination.offset", id="offset"),
    pytest.param(q(dimensions=["time:hour"], date_range="12mo"), "time:hour spans at most", id="hour-range"),
    pytest.param(q(colour="blue"), "#/colour: Schema does not allow additional properties.", id="unknown-key"),
])
def test_invalid_queries_say_what_is_wrong(body: Any, message: str) -> None:
    """Each invalid query raises QueryError with a message naming the problem."""
    with pytest.raises(QueryError) as error:
        parse_query(body, timezone="UTC", now=NOW)
    assert message in error.value.detail


VPV_PAGE = "Metric `views_per_visit` cannot be queried with a filter on `event:page`."
VPV_DIMENSIONS = "Metric `views_per_visit` cannot be queried with `dimensions`."


@pytest.mark.parametrize(("body", "message"), [
    pytest.param(q(metrics=["views_per_visit"], filters=[["is", "event:page", ["/"]]]), VPV_PAGE, id="page-filter"),
    pytest.param(q(metrics=["visitors", "views_per_visit"],
                   filters=[["or", [["is", "visit:country", ["DE"]], ["contains", "event:page", ["blog"]]]]]),
                 VPV_PAGE, id="page-filter-nested"),
    pytest.param(q(metrics=["views_per_visit"], dimensions=["time:day"]), VPV_DIMENSIONS, id="time-dimension"),
    pytest.param(q(metrics=["views_per_visit"], dimensions=["visit:source"]), VPV_DIMENSIONS, id="visit-dimension"),
    pytest.param(q(metrics=["views_per_visit"], dimensions=["event:page"], filters=[["is", "event:page", ["/"]]]),
                 VPV_PAGE, id="page-filter-first"),
])
def test_the_public_api_refuses_views_per_visit_as_plausible_does(body: Any, message: str) -> None:
    """Through the public Stats API, Plausible's rules on ``views_per_visit``; the dashboard (not ``public``)
    still graphs it by day and by filter, as Plausible's dashboard does."""
    with pytest.raises(QueryError) as error:
        parse_query(body, timezone="UTC", now=NOW, public=True)
    assert message == error.value.detail
    assert parse_query(body, timezone="UTC", now=NOW).metrics == tuple(body["metrics"])


@pytest.mark.parametrize("body", [
    pytest.param(q(metrics=["views_per_visit"]), id="alone"),
    pytest.param(q(metrics=["views_per_visit"], filters=[["is", "visit:country", ["DE"]]]), id="visit-filter"),
    # A page filter inside a behavioural filter does not count (Plausible's behavioral_filters: :ignore).
    pytest.param(q(metrics=["views_per_visit"], filters=[["has_done", ["is", "event:page", ["/"]]]]),
                 id="page-filter-in-has-done"),
])
def test_the_public_api_answers_views_per_visit_otherwise(body: Any) -> None:
    assert ("views_per_visit",) == parse_query(body, timezone="UTC", now=NOW, public=True).metrics


@pytest.mark.parametrize(("date_range", "bucket", "count"), [
    pytest.param("day", "hour", 13, id="day-hours-so-far"),
    pytest.param("30d", "day", 30, id="30d-days"),
    pytest.param(["2026-01-01", "2026-03-31"], "week", 14, id="quarter-weeks"),
    pytest.param("12mo", "month", 12, id="12mo-months"),
])
def test_time_dimension_picks_a_bucket_and_labels_every_one(date_range: object, bucket: str, count: int) -> None:
    """`time` picks hour, day, week or month from the range; labels cover the whole range."""
    query = parse_query(q(dimensions=["time"], date_range=date_range, include={"time_labels": True}),
                        timezone="UTC", now=NOW)
    assert bucket == time_bucket(query)
    assert count == len(time_labels(query))


@pytest.mark.parametrize("body", [
    pytest.param(q(metrics=["visitors"], dimensions=["event:goal"]), id="goal-dimension"),
    pytest.param(q(metrics=["visitors", "conversion_rate"], filters=[["is", "event:goal", ["Signup"]]]), id="goal"),
    pytest.param(q(metrics=["visitors", "group_conversion_rate"], dimensions=["visit:source"],
                   filters=[["is", "event:goal", ["Signup"]]]), id="group-conversion"),
    pytest.param(q(metrics=["pageviews", "time_on_page"], dimensions=["event:page"]), id="time-on-page"),
])
def test_goal_and_time_on_page_queries_are_answered_from_raw_events(body: Any) -> None:
    """The rollups store neither goals nor page transitions: the planner sends such queries to the engine."""
    query = parse_query(body, timezone="UTC", now=NOW)
    assert not rollups.applicable(query)


@pytest.mark.parametrize(("fields", "tz", "message"), [
    pytest.param({"date_range": ["9999-12-31", "9999-12-31"]}, "UTC", "1970-01-01 to 2999-12-31", id="year-9999"),
    pytest.param({"date_range": "month", "date": "9999-12-31"}, "UTC", "date: dates from", id="month-of-9999"),
    pytest.param({"date_range": ["0001-01-01", "0001-01-02"]}, "Pacific/Kiritimati", "1970-01-01",
                 id="year-1-east-of-utc"),
    pytest.param({"date_range": ["1525-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"]}, "UTC", "1970-01-01",
                 id="date-times-from-1525"),
    pytest.param({"date_range": ["1990-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"]}, "UTC",
                 "at most ten years", id="date-times-over-ten-years"),
    pytest.param({"pagination": {"offset": 2**63}}, "UTC", "pagination.offset", id="offset-2^63"),
    pytest.param({"filters": [["is", "event:page", ["/\ud800"]]]}, "UTC", "not valid Unicode", id="lone-surrogate"),
    pytest.param({"filters": [["is", "event:page", ["/\x00"]]]}, "UTC", "NUL", id="nul-clause"),
    pytest.param({"dimensions": ["event:props:\x00"]}, "UTC", "NUL", id="nul-dimension"),
])
def test_values_outside_every_domain_are_refused(fields: dict[str, Any], tz: str, message: str) -> None:
    """Dates, offsets and text no column or calendar holds: a QueryError naming the key."""
    with pytest.raises(QueryError, match=message):
        parse_query(q(**fields), timezone=tz, now=NOW)


@pytest.mark.parametrize(("first", "last"), [(date(1, 1, 1), date(1, 1, 2)), (date(9999, 12, 30), date(9999, 12, 31))])
def test_internal_ranges_stay_in_the_calendar(first: date, last: date) -> None:
    """The internal pageview endpoints refuse dates outside 1970 to 2999 with a 400, not an OverflowError."""
    with pytest.raises(ClientError, match="dates from"):
        check_range(first, last)
