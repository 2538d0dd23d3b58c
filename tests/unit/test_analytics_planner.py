"""The planner picks the cheapest exact source of each query, as Plausible's TableDecider does."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.analytics.planner import Source, bounce_apart, decide
from services.analytics.query import parse_query
from services.analytics.rollups import State

NOW = datetime(2026, 5, 8, 12, 30, tzinfo=UTC)
ROLLED = State(date(2026, 5, 6), date(2026, 5, 7))
COUNTRY = ["is", "visit:country", ["DE"]]
PAGE = ["is", "event:page", ["/"]]
GOAL = ["is", "event:goal", ["Signup"]]
SOURCE = ["is", "visit:source", ["Google"]]


def q(**fields: Any) -> dict[str, Any]:
    return {"site_id": "example.com", "metrics": ["visitors"], "date_range": "30d", **fields}


@pytest.mark.parametrize(("body", "state", "source"), [
    pytest.param(q(), ROLLED, Source.ROLLUPS, id="aggregate-rolled"),
    pytest.param(q(dimensions=["visit:source"]), ROLLED, Source.ROLLUPS, id="sources-rolled"),
    pytest.param(q(dimensions=["visit:source"]), None, Source.VISITS, id="sources-not-rolled"),
    pytest.param(q(metrics=["pageviews"], dimensions=["event:page"]), None, Source.EVENTS, id="pages-not-rolled"),
    pytest.param(q(date_range="day"), ROLLED, Source.VISITS, id="today-so-far"),
    pytest.param(q(metrics=["visitors", "bounce_rate"], filters=[COUNTRY]), ROLLED, Source.ROLLUPS,
                 id="aggregate-country"),
    pytest.param(q(metrics=["visitors", "pageviews"], dimensions=["time:day"], filters=[COUNTRY]), ROLLED,
                 Source.ROLLUPS, id="timeseries-country"),
    pytest.param(q(metrics=["visitors", "bounce_rate"], filters=[["is", "visit:country", ["DE", "FR"]]]), ROLLED,
                 Source.VISITS, id="aggregate-two-countries"),
    pytest.param(q(metrics=["visitors", "bounce_rate"], filters=[COUNTRY]), None, Source.VISITS,
                 id="aggregate-country-not-rolled"),
    pytest.param(q(dimensions=["visit:entry_page"], filters=[["contains", "visit:source", ["oo"]], COUNTRY]), ROLLED,
                 Source.VISITS, id="two-visit-filters"),
    pytest.param(q(filters=[["not", ["matches", "visit:browser", ["^Fire"]]]]), ROLLED, Source.VISITS,
                 id="not-matches"),
    pytest.param(q(metrics=["visitors", "pageviews"], dimensions=["event:page"], filters=[COUNTRY]), ROLLED,
                 Source.ROLLUPS, id="pages-country"),
    pytest.param(q(metrics=["visitors", "bounce_rate"], dimensions=["visit:source"], filters=[COUNTRY]), ROLLED,
                 Source.ROLLUPS, id="sources-country-pair"),
    pytest.param(q(dimensions=["time:day", "visit:country"], filters=[["is", "visit:browser", ["Firefox"]]]),
                 ROLLED, Source.ROLLUPS, id="countries-browser-pair-by-day"),
    pytest.param(q(dimensions=["visit:source"], filters=[COUNTRY]), None, Source.VISITS, id="pair-not-rolled"),
    pytest.param(q(metrics=["visitors", "percentage"], dimensions=["visit:source"], filters=[COUNTRY]), ROLLED,
                 Source.VISITS, id="pair-percentage"),
    pytest.param(q(dimensions=["visit:exit_page"], filters=[COUNTRY]), ROLLED, Source.VISITS, id="not-a-pair"),
    pytest.param(q(metrics=["visits", "bounce_rate"], dimensions=["visit:entry_page"], filters=[COUNTRY]), ROLLED,
                 Source.ROLLUPS, id="entry-pages-country-pair"),
    pytest.param(q(dimensions=["visit:device"], filters=[PAGE]), ROLLED, Source.ROLLUPS, id="devices-page"),
    pytest.param(q(metrics=["visitors", "bounce_rate"], filters=[COUNTRY, SOURCE]), ROLLED, Source.ROLLUPS,
                 id="two-paired-filters"),
    pytest.param(q(dimensions=["time:day", "visit:source"], filters=[COUNTRY, SOURCE]), ROLLED, Source.ROLLUPS,
                 id="two-paired-filters-by-one-of-them"),
    pytest.param(q(dimensions=["visit:device"], filters=[COUNTRY, SOURCE]), ROLLED, Source.ROLLUPS,
                 id="source-and-country-by-a-third"),
    pytest.param(q(dimensions=["visit:os"], filters=[COUNTRY, SOURCE]), ROLLED, Source.VISITS,
                 id="source-and-country-by-another"),
    pytest.param(q(dimensions=["visit:source"], filters=[COUNTRY, ["is", "visit:device", ["Mobile"]]]), ROLLED,
                 Source.VISITS, id="two-paired-filters-by-a-third"),
    pytest.param(q(filters=[COUNTRY, ["is", "visit:country", ["FR"]]]), ROLLED, Source.VISITS,
                 id="two-filters-one-dimension"),
    pytest.param(q(filters=[COUNTRY, SOURCE]), None, Source.VISITS, id="two-paired-filters-not-rolled"),
    pytest.param(q(dimensions=["visit:source"], filters=[PAGE]), ROLLED, Source.ROLLUPS, id="sources-page"),
    pytest.param(q(dimensions=["visit:source"], filters=[PAGE]), None, Source.JOIN, id="sources-page-not-rolled"),
    pytest.param(q(metrics=["visitors", "pageviews"], dimensions=["event:page"], filters=[PAGE]), ROLLED,
                 Source.ROLLUPS, id="pages-page"),
    # Under a page filter, the bounces of the visits entering on the page: whole, the join; apart, the rollups
    # (test_bounce_rate_under_a_page_filter_read_apart).
    pytest.param(q(metrics=["visitors", "bounce_rate"], filters=[PAGE]), ROLLED, Source.JOIN, id="bounce-page"),
    pytest.param(q(metrics=["visitors", "bounce_rate"], filters=[PAGE, ["is", "visit:entry_page", ["/"]]]),
                 ROLLED, Source.ROLLUPS, id="bounce-page-entered"),
    pytest.param(q(metrics=["visitors", "bounce_rate"], filters=[PAGE, ["is", "visit:entry_page", ["/a"]]]),
                 ROLLED, Source.JOIN, id="bounce-page-entered-elsewhere"),
    pytest.param(q(metrics=["visitors", "visits"], filters=[PAGE, ["is", "visit:entry_page", ["/a"]]]),
                 ROLLED, Source.ROLLUPS, id="page-and-entry-page"),
    pytest.param(q(metrics=["visitors", "bounce_rate"], dimensions=["visit:source"], filters=[PAGE]), ROLLED,
                 Source.JOIN, id="bounce-page-by-source"),
    pytest.param(q(metrics=["visitors", "bounce_rate"], filters=[PAGE]), None, Source.JOIN,
                 id="bounce-page-not-rolled"),
    pytest.param(q(metrics=["visitors"], filters=[PAGE]), ROLLED, Source.ROLLUPS, id="visitors-page"),
    pytest.param(q(metrics=["visitors"], filters=[PAGE]), None, Source.EVENTS, id="visitors-page-not-rolled"),
    pytest.param(q(metrics=["visitors", "conversion_rate"], filters=[GOAL]), ROLLED, Source.EVENTS, id="goal"),
    pytest.param(q(metrics=["visitors", "conversion_rate"], filters=[GOAL, COUNTRY]), ROLLED, Source.JOIN,
                 id="goal-country"),
    pytest.param(q(metrics=["visitors"], dimensions=["event:props:plan"]), ROLLED, Source.EVENTS, id="property"),
    pytest.param(q(metrics=["time_on_page"], dimensions=["event:page"]), ROLLED, Source.EVENTS, id="time-on-page"),
    pytest.param(q(metrics=["time_on_page"], dimensions=["event:page"], filters=[COUNTRY]), ROLLED, Source.JOIN,
                 id="time-on-page-country"),
])
def test_decide(body: dict[str, Any], state: State | None, source: Source) -> None:
    """Rollups when unfiltered (or filtered to one value of a rolled-up dimension) and rolled up; the visits
    table for other visit-only questions; events alone when no visit attribute is read; the join otherwise."""
    assert source == decide(parse_query(body, timezone="UTC", now=NOW), state).source


@pytest.mark.parametrize(("dimensions", "now", "rolled"), [
    pytest.param([], datetime(2026, 5, 8, 12, tzinfo=UTC), date(2026, 5, 7), id="one-bucket-today-after"),
    pytest.param(["time:day"], datetime(2026, 5, 8, 12, tzinfo=UTC), date(2026, 5, 6), id="by-day-today-after"),
    pytest.param(["time:week"], datetime(2026, 5, 8, 12, tzinfo=UTC), date(2026, 5, 7), id="week-from-monday"),
    # The final roll-up of 7 May has not run on 9 May: a span of 7 May may reach 9 May, a bucket of its own.
    pytest.param([], datetime(2026, 5, 9, 12, tzinfo=UTC), date(2026, 5, 7), id="one-bucket-day-after-next"),
    pytest.param(["time:day"], datetime(2026, 5, 9, 12, tzinfo=UTC), date(2026, 5, 6), id="by-day-day-after-next"),
])
def test_provisional_day_read_unless_a_bucket_begins_after_it(dimensions: list[str], now: datetime,
                                                             rolled: date) -> None:
    """A range from 4 May reaching into today reads 7 May's provisional rows unless a time bucket begins on one
    of the days its spans may still reach (8 and 9 May)."""
    body = q(dimensions=dimensions, date_range=["2026-05-04", now.date().isoformat()])
    assert rolled == ROLLED.rolled_for(parse_query(body, timezone="UTC", now=now))


def test_provisional_day_not_read_when_a_week_begins_the_day_after_next() -> None:
    """9 May (a Saturday) provisional, and on Monday 11 May its final roll-up has not run yet: by week from 4 May
    to 11 May, the week of 11 May could miss a span of 9 May reaching it, so 9 May is computed from the events;
    by month it is read."""
    state = State(date(2026, 5, 8), date(2026, 5, 9))
    now = datetime(2026, 5, 11, 12, tzinfo=UTC)
    for dimensions, rolled in ((["time:week"], date(2026, 5, 8)), (["time:month"], date(2026, 5, 9))):
        body = q(dimensions=dimensions, date_range=["2026-05-04", "2026-05-11"])
        assert rolled == state.rolled_for(parse_query(body, timezone="UTC", now=now)), dimensions


@pytest.mark.parametrize("filters", [[PAGE], [COUNTRY, PAGE]], ids=["page", "page-and-country"])
def test_bounce_rate_under_a_page_filter_read_apart(filters: list[Any]) -> None:
    """The bounce rate under one page (Plausible's: of the visits entering on it) is the same query with the page as
    the entry page too, which the rollups hold for one page alone; the other metrics keep the filters as they are.
    With another filter besides, no rollup holds the three: the join answers the query in one statement."""
    query = parse_query(q(metrics=["visitors", "bounce_rate", "visit_duration"], filters=filters), timezone="UTC",
                        now=NOW)
    split = bounce_apart(query)
    if len(filters) == 2:
        assert split is None
        return
    assert split is not None
    inner, entered = split
    assert inner.metrics == ("visitors", "visit_duration") and inner.filters == query.filters
    assert entered.metrics == ("bounce_rate",)
    assert [(f.operator, f.dimension, f.clauses) for f in entered.filters] == [  # type: ignore[union-attr]
        ("is", "event:page", ("/",)), ("is", "visit:entry_page", ("/",))]
    assert decide(entered, ROLLED).source is Source.ROLLUPS
    assert bounce_apart(entered) is None  # already entered on the page


def test_bounce_rate_by_page_or_ordering_not_read_apart() -> None:
    """By page, the rows' bounce rates are already those of the visits entering on each page; ordered by the rate,
    the two answers could not be merged before the limit."""
    by_page = parse_query(q(metrics=["visitors", "bounce_rate"], dimensions=["event:page"], filters=[PAGE]),
                          timezone="UTC", now=NOW)
    ordered = parse_query(q(metrics=["visitors", "bounce_rate"], dimensions=["time:day"], filters=[PAGE],
                            order_by=[["bounce_rate", "desc"]]), timezone="UTC", now=NOW)
    assert bounce_apart(by_page) is None and bounce_apart(ordered) is None
