"""The filtered queries' fast paths give the raw engine's answers: visit-dimension pairs from the rollups, goal
filters and the goal dimension from the events' own name and page, the conversion rate's divisor apart."""

from __future__ import annotations

import dataclasses
import importlib
from datetime import datetime, timedelta
from itertools import permutations
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.db import make_async_engine, make_engine, sessionmaker_for
from app.core.settings import Settings
from services.analytics import engine, planner, rollups
from services.analytics import visits as visits_table
from services.analytics.query import parse_query
from tests.support.analytics import TZ

VALUES = {"visit:country": "DE", "visit:source": "Google", "visit:device": "Mobile", "visit:browser": "Firefox",
          "visit:entry_page": "/"}


DAY_COUNTS = ("pageviews", "events")


def _day_counts_apart(bodies: list[dict[str, Any]], now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The bodies as the rollups hold them: one read from a pair stored without day counts
    (``rollups.DAYS_LEFT_OUT``) asks no pageviews or events; and those bodies as given, which the rollups leave
    to the other sources (compared with the raw engine too)."""
    held, elsewhere = [], []
    for body in bodies:
        query = parse_query({"site_id": "rollup.example", **body}, timezone=TZ, now=now)
        read = rollups.reads(query)
        if read is not None and read.dimension in rollups.DAYS_LEFT_OUT and set(DAY_COUNTS) & set(body["metrics"]):
            assert not rollups.applicable(query), body
            held.append({**body, "metrics": [m for m in body["metrics"] if m not in DAY_COUNTS]})
            elsewhere.append(body)
        else:
            held.append(body)
    return held, elsewhere


@pytest.fixture
def goals(settings: Settings, generated: tuple[int, datetime]) -> tuple[int, datetime]:
    """The generated site with two custom-event goals (one named unlike its event) and two page goals (one
    with a wildcard)."""
    db = make_engine(settings.database)
    with db.begin() as conn:
        for name, event, page in [("Signup", "Signup", None), ("Visit /pricing", None, "/pricing"),
                                  ("Visit /blog*", None, "/blog*"), ("Purchase done", "Purchase", None)]:
            conn.execute(text("INSERT INTO goals (site_id, display_name, event_name, page_path) "
                              "VALUES (:s, :name, :event, :page)"),
                         {"s": generated[0], "name": name, "event": event, "page": page})
    db.dispose()
    return generated


async def _compare(settings: Settings, site_id: int, now: datetime, bodies: list[dict[str, Any]],
                   source: planner.Source | None = None) -> int:
    """Compares each answer with the raw engine's; returns how many answers had some non-zero metric."""
    nonempty = 0
    db = make_async_engine(settings.database)
    try:
        async with sessionmaker_for(db)() as session:
            state = await rollups.rolled_until(session, site_id, TZ)
            for body in bodies:
                query = parse_query({"site_id": "rollup.example", **body}, timezone=TZ, now=now)
                if source is not None:
                    # A page filter's bounce rate is read apart (planner.bounce_apart): both parts from the source.
                    parts = planner.bounce_apart(query) or (query,)
                    assert {source} == {planner.decide(part, state).source for part in parts}, body
                raw = await engine.run(session, query, site_id)
                served = await planner.answer(session, query, site_id)
                assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows), body
                nonempty += any(any(row["metrics"]) for row in raw.rows)
    finally:
        await db.dispose()
    return nonempty


@pytest.mark.timeout(900)
async def test_pairs_are_rollups_equal_to_raw(settings: Settings, generated: tuple[int, datetime]) -> None:
    """One value of a paired visit dimension grouped by another (both orders of every pair, the entry page's pairs
    too), by itself and by time: served from the rollups, equal to the raw engine, over ranges ending yesterday,
    today and in the past."""
    site_id, now = generated
    today = now.astimezone(ZoneInfo(TZ)).date()
    custom = [(today - timedelta(days=25)).isoformat(), (today - timedelta(days=3)).isoformat()]
    bodies = [
        {"metrics": ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"],
         "dimensions": [*time, grouped], "filters": [["is", filtered, [VALUES[filtered]]]], "date_range": date_range}
        for filtered, grouped in [*permutations(rollups.PAIRED, 2),
                                  *((d, "visit:entry_page") for d in rollups.ENTRY_PAIRED),
                                  *(("visit:entry_page", d) for d in rollups.ENTRY_PAIRED)]
        for time in ([], ["time:day"])
        for date_range in (("30d", custom, "month") if not time else ("7d",))
    ]
    held, elsewhere = _day_counts_apart(bodies, now)
    assert elsewhere  # the entry page's pairs keep no day counts
    assert await _compare(settings, site_id, now, held, planner.Source.ROLLUPS) == len(held)
    assert await _compare(settings, site_id, now, elsewhere[::4]) == len(elsewhere[::4])


@pytest.mark.timeout(900)
async def test_two_paired_filters_are_rollups_equal_to_raw(settings: Settings,
                                                           generated: tuple[int, datetime]) -> None:
    """One value each of two paired visit dimensions (every pair, both filter orders), by nothing, by time and
    by either of the two: the pair's rows of the two values, equal to the raw engine, over ranges ending
    yesterday, today and in the past."""
    site_id, now = generated
    today = now.astimezone(ZoneInfo(TZ)).date()
    custom = [(today - timedelta(days=25)).isoformat(), (today - timedelta(days=3)).isoformat()]
    bodies = [
        {"metrics": ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"],
         "dimensions": [*time, *grouped], "date_range": date_range,
         "filters": [["is", first, [VALUES[first]]], ["is", second, [VALUES[second]]]]}
        for first, second in permutations(rollups.PAIRED, 2)
        for grouped in ([], [first], [second])
        for time in ([], ["time:day"])
        for date_range in (("30d", custom, "month") if not time else ("7d",))
    ]
    assert await _compare(settings, site_id, now, bodies, planner.Source.ROLLUPS) > len(bodies) // 2


@pytest.mark.timeout(900)
async def test_pages_of_a_source_and_a_country_are_rollups_equal_to_raw(settings: Settings,
                                                                      generated: tuple[int, datetime]) -> None:
    """A source and a country together (both filter orders; a pair of values no visit has) grouped by page, by
    itself and by time: the rows of ``rollups.PAGES_TWO_PAIRED``'s pages, equal to the raw engine over ranges
    ending yesterday, today and in the past; the dashboard's pages panel (ten rows, with the scroll depth read
    apart) too. Two other visit dimensions by page are left to the join, and equal as well."""
    site_id, now = generated
    today = now.astimezone(ZoneInfo(TZ)).date()
    custom = [(today - timedelta(days=25)).isoformat(), (today - timedelta(days=3)).isoformat()]
    two = [["is", "visit:country", ["DE"]], ["is", "visit:source", ["Google"]]]
    bodies = [
        {"metrics": ["visitors", "pageviews", "events"], "dimensions": [*time, "event:page"], "filters": filters,
         "date_range": date_range}
        for filters in (two, two[::-1], [["is", "visit:country", ["DE"]], ["is", "visit:source", ["Nowhere"]]])
        for time in ([], ["time:day"])
        for date_range in (("30d", custom, "month", "12mo") if not time else ("7d",))
    ]
    assert rollups.reads(parse_query({"site_id": "rollup.example", **bodies[0]}, timezone=TZ, now=now)) == \
        rollups.Read("visit:source|visit:country|event:page", "6:GoogleDE", 1)
    assert await _compare(settings, site_id, now, bodies, planner.Source.ROLLUPS) == len(bodies) * 2 // 3
    panel = {"metrics": ["visitors", "pageviews", "scroll_depth"], "dimensions": ["event:page"],
             "pagination": {"limit": 10}, "filters": two}
    others = {"metrics": ["visitors", "pageviews"], "dimensions": ["event:page"],
              "filters": [["is", "visit:country", ["DE"]], ["is", "visit:device", ["Mobile"]]]}
    assert await _compare(settings, site_id, now, [{**panel, "date_range": r} for r in ("30d", "month")]) == 2
    assert await _compare(settings, site_id, now, [{**others, "date_range": "30d"}], planner.Source.JOIN) == 1


@pytest.mark.timeout(900)
async def test_visits_of_a_source_and_a_country_are_rollups_equal_to_raw(settings: Settings,
                                                                       generated: tuple[int, datetime]) -> None:
    """A source and a country together (both filter orders; a pair of values no visit has) grouped by entry page,
    device or browser, by itself and by time, with visit metrics: the rows of ``rollups.TWO_VISIT_PAIRS``, equal to
    the raw engine over ranges ending yesterday, today and in the past; the dashboard's panels (the percentage read
    with its divisor, ``visit:source|visit:country``, in one statement) too. Pageviews, which these rows do not
    count, and another pair of visit filters are answered elsewhere, and equal as well."""
    site_id, now = generated
    today = now.astimezone(ZoneInfo(TZ)).date()
    custom = [(today - timedelta(days=25)).isoformat(), (today - timedelta(days=3)).isoformat()]
    two = [["is", "visit:country", ["DE"]], ["is", "visit:source", ["Google"]]]
    metrics = ["visitors", "visits", "bounce_rate", "visit_duration", "views_per_visit"]
    bodies = [
        {"metrics": metrics, "dimensions": [*time, grouped], "filters": filters, "date_range": date_range}
        for grouped in rollups.VISITS_TWO_PAIRED
        for filters in (two, two[::-1], [["is", "visit:country", ["DE"]], ["is", "visit:source", ["Nowhere"]]])
        for time in ([], ["time:day"])
        for date_range in (("30d", custom, "month", "12mo") if not time else ("7d",))
    ]
    assert rollups.reads(parse_query({"site_id": "rollup.example", **bodies[0]}, timezone=TZ, now=now)) == \
        rollups.Read("visit:source|visit:country|visit:entry_page", "6:GoogleDE", 1)
    assert await _compare(settings, site_id, now, bodies, planner.Source.ROLLUPS) == len(bodies) * 2 // 3
    panels = [{"metrics": ["visitors", "percentage"] if grouped != "visit:entry_page" else ["visitors", "visits"],
               "dimensions": [grouped], "pagination": {"limit": 10}, "filters": two, "date_range": date_range}
              for grouped in rollups.VISITS_TWO_PAIRED for date_range in ("30d", "month")]
    db = make_async_engine(settings.database)
    try:
        async with sessionmaker_for(db)() as session:
            state = await rollups.rolled_until(session, site_id, TZ)
    finally:
        await db.dispose()
    for panel in panels:
        query = parse_query({"site_id": "rollup.example", **panel}, timezone=TZ, now=now)
        split = planner.percentage_apart(query)
        assert split is None or rollups.percentage_read(query, split[1]) is not None, panel  # one statement
        assert planner.decide(split[0] if split else query, state).source is planner.Source.ROLLUPS, panel
    assert await _compare(settings, site_id, now, panels) == len(panels)
    elsewhere = [{"metrics": ["visitors", "pageviews"], "dimensions": ["visit:device"], "filters": two,
                  "date_range": "30d"},
                 {"metrics": ["visitors", "visits"], "dimensions": ["visit:entry_page"], "date_range": "30d",
                  "filters": [["is", "visit:country", ["DE"]], ["is", "visit:device", ["Mobile"]]]}]
    assert await _compare(settings, site_id, now, elsewhere, planner.Source.VISITS) == 2


@pytest.mark.timeout(900)
async def test_one_page_by_page_is_rollups_equal_to_raw(settings: Settings, generated: tuple[int, datetime]) -> None:
    """``event:page is X`` grouped by page (and time): the pages rollup restricted to the page, equal to the raw
    engine (which counts the page's pageviews only, as the rollup does)."""
    site_id, now = generated
    bodies = [{"metrics": ["visitors", "pageviews", "events"], "dimensions": [*time, "event:page"],
               "filters": [["is", "event:page", [page]]], "date_range": date_range}
              for page in ("/", "/pricing") for time in ([], ["time:day"]) for date_range in ("7d", "30d", "month")]
    assert await _compare(settings, site_id, now, bodies, planner.Source.ROLLUPS) == len(bodies)


@pytest.mark.timeout(900)
async def test_page_pairs_are_rollups_equal_to_raw(settings: Settings, generated: tuple[int, datetime]) -> None:
    """One page (the most visited, one only custom events reach, a rare one) by itself, by time and by each of
    the page-paired visit dimensions, with visit metrics; one value of each of those dimensions by page: served
    from the rollups, equal to the raw engine, over ranges ending yesterday, today and in the past."""
    site_id, now = generated
    today = now.astimezone(ZoneInfo(TZ)).date()
    custom = [(today - timedelta(days=25)).isoformat(), (today - timedelta(days=3)).isoformat()]
    metrics = ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"]
    bodies = [
        # Grouped by a visit dimension, the bounce rate of the visits entering on the page is not rolled up (it
        # would take the page, the entry page and the dimension): see test_page_filter_bounce_rate_is_entry_pages.
        {"metrics": [m for m in metrics if not grouped or m != "bounce_rate"], "dimensions": [*time, *grouped],
         "filters": [["is", "event:page", [page]]], "date_range": date_range}
        for page in ("/", "/checkout", "/blog/blo-0008")
        for grouped in ([], *([d] for d in rollups.PAGE_PAIRED))
        for time in ([], ["time:day"])
        for date_range in (("30d", custom, "month") if not time else ("7d",))
    ] + [
        {"metrics": ["visitors", "pageviews", "events"], "dimensions": [*time, "event:page"],
         "filters": [["is", filtered, [VALUES[filtered]]]], "date_range": date_range}
        for filtered in rollups.PAGES_PAIRED
        for time in ([], ["time:day"])
        for date_range in (("30d", custom, "month") if not time else ("7d",))
    ]
    held, elsewhere = _day_counts_apart(bodies, now)
    assert elsewhere  # a page's pairs keep no day counts
    assert await _compare(settings, site_id, now, held, planner.Source.ROLLUPS) == len(held)
    assert await _compare(settings, site_id, now, elsewhere[::6]) == len(elsewhere[::6])


PAGE_FILTERS: list[list[Any]] = [
    ["is", "event:page", ["/"]],
    ["is", "event:page", ["/pricing", "/"]],
    ["is_not", "event:page", ["/"]],
    ["contains", "event:page", ["blog"]],
    ["matches", "event:page", ["^/(pricing|checkout)$"]],
    ["is", "event:page", ["/blog*"]],
    ["is", "event:page", ["/PRICING"], {"case_sensitive": False}],
]


@pytest.mark.timeout(900)
async def test_page_filter_bounce_rate_is_entry_pages(settings: Settings, generated: tuple[int, datetime]) -> None:
    """Under a page filter the bounce rate is that of the visits entering on a page the filter keeps (Plausible's
    ``session_metric(:bounce_rate)``), whatever the operator, by nothing, time, a visit dimension or the entry
    page, alone and beside a visit filter: the planner's answers (one page's rate apart from the rollups, the rest
    from the join) equal the raw engine's."""
    site_id, now = generated
    today = now.astimezone(ZoneInfo(TZ)).date()
    custom = [(today - timedelta(days=25)).isoformat(), (today - timedelta(days=3)).isoformat()]
    panels: list[dict[str, Any]] = [
        {"metrics": ["visitors", "visits", "bounce_rate", "visit_duration", "views_per_visit"]},
        {"metrics": ["bounce_rate", "visitors"], "dimensions": ["time:day"]},
        {"metrics": ["visitors", "bounce_rate"], "dimensions": ["visit:source"], "order_by": [["visitors", "desc"]]},
        {"metrics": ["visits", "bounce_rate"], "dimensions": ["visit:entry_page"]},
    ]
    bodies = [{**panel, "filters": [page, *extra], "date_range": date_range}
              for page in PAGE_FILTERS for extra in ([], [["is", "visit:country", ["DE"]]]) for panel in panels
              for date_range in (("30d", "7d") if not extra else ("30d",))]
    assert await _compare(settings, site_id, now, bodies) >= len(bodies) * 3 // 4
    # One page's top stats and graph: both parts from the rollups, over ranges ending yesterday, today and before.
    rolled = [{**panel, "filters": [["is", "event:page", [page]]], "date_range": date_range}
              for panel in panels[:2] for page in ("/", "/checkout") for date_range in ("30d", "month", custom)]
    assert await _compare(settings, site_id, now, rolled, planner.Source.ROLLUPS) == len(rolled)


async def test_legacy_time_on_page_under_a_page_filter_is_its_pages(settings: Settings,
                                                                   generated: tuple[int, datetime]) -> None:
    """Legacy time on page under a page filter (the generated site has no engagement events) is that of the pages
    the filter keeps, each as the pages report computes it without a filter, reading every visit: their seconds
    and transitions summed. The filtered query reads only the visits with an event on such a page."""
    site_id, now = generated
    parts = ("time_on_page", "__time_on_page_total", "__time_on_page_visits")
    db = make_async_engine(settings.database)
    try:
        async with sessionmaker_for(db)() as session:
            for date_range in ("30d", "7d"):
                by_page = parse_query({"site_id": "rollup.example", "metrics": ["time_on_page"],
                                       "dimensions": ["event:page"], "date_range": date_range}, timezone=TZ, now=now)
                rows = (await engine.run(session, dataclasses.replace(by_page, metrics=parts), site_id)).rows
                pages = {row["dimensions"][0]: [float(v) for v in row["metrics"][1:]] for row in rows}
                for kept in (["/"], ["/pricing", "/checkout"], ["/blog/blo-0008"]):
                    filtered = dataclasses.replace(parse_query(
                        {"site_id": "rollup.example", "metrics": ["time_on_page"], "date_range": date_range,
                         "filters": [["is", "event:page", kept]]}, timezone=TZ, now=now), metrics=parts)
                    (row,) = (await engine.run(session, filtered, site_id)).rows
                    expected = [sum(pages.get(page, [0.0, 0.0])[i] for page in kept) for i in range(2)]
                    assert expected == [float(v) for v in row["metrics"][1:]], (date_range, kept)
                    assert expected[1] > 0 or kept == ["/checkout"], (date_range, kept)
    finally:
        await db.dispose()


async def test_pairs_are_built_and_forgotten(settings: Settings, generated: tuple[int, datetime]) -> None:
    """Every pair has spans after the roll-up, and day counts unless it is left out of them
    (``rollups.DAYS_LEFT_OUT``); forgetting the site's rollups (a reset, a time zone change) and deleting the
    site drop them with the rest."""
    site_id, _ = generated
    count = text("SELECT (SELECT count(*) FROM rollup_spans WHERE site_id = :s) + "
                 "(SELECT count(*) FROM rollup_days WHERE site_id = :s)")
    db = make_engine(settings.database)
    try:
        with db.connect() as conn:
            stored = {row[0] for row in conn.execute(text(
                "SELECT DISTINCT dimension FROM rollup_spans WHERE site_id = :s AND dimension LIKE '%|%'"),
                {"s": site_id})}
            assert stored == {*rollups.PAIRS, *rollups.PAGE_PAIRS, *rollups.NAME_PAIRS, *rollups.PROPS_PAIRS,
                              *rollups.TWO_VISIT_PAIRS, *rollups.PAIR_TOTALS}
            days = {row[0] for row in conn.execute(text(
                "SELECT DISTINCT dimension FROM rollup_days WHERE site_id = :s AND dimension LIKE '%|%'"),
                {"s": site_id})}
            assert days == stored - rollups.DAYS_LEFT_OUT - rollups.PAIR_TOTALS and days
            conn.rollback()
            with conn.begin() as deleting:
                conn.execute(text("DELETE FROM sites WHERE id = :s"), {"s": site_id})
                assert conn.execute(count, {"s": site_id}).scalar() == 0
                deleting.rollback()
            with conn.begin():
                assert conn.execute(count, {"s": site_id}).scalar()
                rollups.forget(conn, site_id)
                assert conn.execute(count, {"s": site_id}).scalar() == 0
    finally:
        db.dispose()


GOAL_FILTERS: list[list[Any]] = [
    ["is", "event:goal", ["Signup"]],
    ["is", "event:goal", ["Visit /pricing"]],
    ["is", "event:goal", ["Visit /blog*", "Signup"]],
    ["contains", "event:goal", ["visit"], {"case_sensitive": False}],
    ["is", "event:goal", ["signup"], {"case_sensitive": False}],
    ["is", "event:goal", ["No such goal"]],
]


@pytest.mark.timeout(900)
async def test_goal_filters_and_conversion_rates_equal_raw(settings: Settings,
                                                           goals: tuple[int, datetime]) -> None:
    """Goal filters (custom-event and page goals, wildcards, case-insensitive, no goal matching) alone and with a
    visit filter, grouped by visit attributes, pages, time and goals, with the conversion rate (its divisor from
    another source) and the group conversion rate: the planner's answers equal the raw engine's."""
    site_id, now = goals
    panels: list[dict[str, Any]] = [
        {"metrics": ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration", "conversion_rate"]},
        {"metrics": ["visitors", "events", "conversion_rate"], "dimensions": ["event:goal"]},
        {"metrics": ["visitors", "conversion_rate"], "dimensions": ["visit:source"],
         "order_by": [["visitors", "desc"]]},
        {"metrics": ["conversion_rate", "visitors"], "dimensions": ["visit:country"]},  # ordered by the rate
        {"metrics": ["visitors", "group_conversion_rate"], "dimensions": ["visit:device"]},
        {"metrics": ["visits", "bounce_rate"], "dimensions": ["visit:entry_page"]},
        {"metrics": ["visitors", "pageviews", "conversion_rate"], "dimensions": ["time:day"]},
        {"metrics": ["visitors", "pageviews"], "dimensions": ["event:page"]},
    ]
    bodies = []
    for goal_filter in GOAL_FILTERS:
        for extra in ([], [["is", "visit:country", ["DE"]]]):
            for panel in panels:
                for date_range in ("30d", "7d"):
                    bodies.append({**panel, "filters": [goal_filter, *extra], "date_range": date_range})
    # The goal dimension without a goal filter (the dashboard's goals panel), with and without a visit filter.
    for filters in ([], [["is", "visit:country", ["DE"]]], [["is", "event:page", ["/pricing"]]]):
        bodies.append({"metrics": ["visitors", "events", "conversion_rate"], "dimensions": ["event:goal"],
                       "filters": filters, "date_range": "30d"})
    # Not vacuous: but for the goal matching nothing and the custom-event goals' pages, every answer has rows.
    assert await _compare(settings, site_id, now, bodies) >= len(bodies) * 3 // 4


@pytest.mark.timeout(900)
async def test_custom_event_goal_filters_are_rollups_equal_to_raw(settings: Settings,
                                                                  goals: tuple[int, datetime]) -> None:
    """A filter on one custom-event goal (named like its event or not) with visit metrics, by itself, by time and
    by each visit dimension paired with names: the rollups of its event's name (``planner.goal_as_name``), equal
    to the raw engine, over ranges ending yesterday, today and in the past; a page goal is not rolled up, and
    neither is the name of pageviews by a visit dimension."""
    site_id, now = goals
    today = now.astimezone(ZoneInfo(TZ)).date()
    custom = [(today - timedelta(days=25)).isoformat(), (today - timedelta(days=3)).isoformat()]
    metrics = ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"]
    # Grouped, a name's pairs keep no day counts (rollups.DAYS_LEFT_OUT): no pageviews or events asked.
    bodies = [{"metrics": [m for m in metrics if not grouped or m not in DAY_COUNTS], "dimensions": [*time, *grouped],
               "filters": [["is", "event:goal", [goal]]], "date_range": date_range}
              for goal in ("Signup", "Purchase done") for time in ([], ["time:day"])
              for grouped in ([], *([d] for d in rollups.NAME_PAIRED))
              for date_range in (("30d", "month", custom) if not (time and grouped) else ("7d",))]
    db = make_async_engine(settings.database)
    try:
        async with sessionmaker_for(db)() as session:
            state = await rollups.rolled_until(session, site_id, TZ)
            goal_defs = await engine.load_goals(session, site_id)
            for body in bodies:
                query = parse_query({"site_id": "rollup.example", **body}, timezone=TZ, now=now)
                named = planner.goal_as_name(query, goal_defs)
                assert named is not None, body
                assert planner.Source.ROLLUPS == planner.decide(named, state).source, body
            page_goal = parse_query({"site_id": "rollup.example", "metrics": metrics, "date_range": "30d",
                                     "filters": [["is", "event:goal", ["Visit /pricing"]]]}, timezone=TZ, now=now)
            assert planner.goal_as_name(page_goal, goal_defs) is None
            pageviews = parse_query({"site_id": "rollup.example", "metrics": metrics, "date_range": "30d",
                                     "dimensions": ["visit:source"], "filters": [["is", "event:name", ["pageview"]]]},
                                    timezone=TZ, now=now)
            assert not rollups.applicable(pageviews)
    finally:
        await db.dispose()
    assert await _compare(settings, site_id, now, bodies) == len(bodies)


def test_goal_filter_reads_names_and_pages() -> None:
    """With the goals known, a goal filter is a condition on the event's own name and path (what the indexes of
    migration 0015 answer); the statement without them matches against the goals table."""
    query = parse_query({"site_id": "x", "metrics": ["visitors"], "date_range": "30d",
                         "filters": [["is", "event:goal", ["Signup", "Visit /blog*"]]]},
                        timezone=TZ, now=datetime(2026, 5, 8, 12, tzinfo=ZoneInfo(TZ)))
    known = (engine.GoalDef("Signup", "Signup", None), engine.GoalDef("Visit /blog*", None, "/blog*"),
             engine.GoalDef("Other", "Other", None))
    statement, params = engine.build(query, 1, "table", known)
    assert "FROM goals" not in statement
    assert "e.name <> 'pageview'" in statement
    assert ["Signup"] in params.values() and ["/blog%"] in params.values()
    statement, _ = engine.build(query, 1, "table")
    assert "FROM goals" in statement


async def test_one_first_part_of_a_pair_reads_the_pairs_index(settings: Settings,
                                                               generated: tuple[int, datetime]) -> None:
    """A pair read by its first part (the entry pages of one page, the pages of one country, the sources of one
    custom event's name) states the pairs' index's condition (``rollups.PAIR_ROWS``, migration 0023), and
    PostgreSQL reads the value's rows through it, in a generic plan too (bind parameters not known when
    planning, as for a statement psycopg prepared), and answers as the raw engine does, with sorting off for
    that statement alone. The migrations that build the index (0023, and 0026 which writes the table anew) index
    the first part as ``rollups._part`` writes it."""
    for name in ("0023_rollup_pair_index", "0026_rollup_spans_one_row"):
        migration = importlib.import_module(f"app.migrations.versions.{name}")
        assert (migration.FIRST_PART, migration.PAIR_ROWS) == (rollups._part("value", 1), rollups.PAIR_ROWS)
    site_id, now = generated
    db = make_async_engine(settings.database)
    try:
        async with sessionmaker_for(db)() as session:
            state = await rollups.rolled_until(session, site_id, TZ)
            assert state is not None
            reads = ((["is", "event:page", ["/"]], "visit:entry_page", ["visitors", "visits"]),
                     (["is", "visit:country", ["DE"]], "event:page", ["visitors", "pageviews"]),
                     (["is", "event:name", ["Signup"]], "visit:source", ["visitors"]))
            for filtered, grouped, metrics in reads:
                query = parse_query({"site_id": "rollup.example", "metrics": metrics,
                                     "dimensions": [grouped], "filters": [filtered], "date_range": "30d"},
                                    timezone=TZ, now=now)
                read = rollups.reads(query)
                assert read is not None and read.part == 1 and rollups.applicable(query), filtered
                statement, params = rollups.build(query, site_id, state.rolled_until, state.provisional_day)
                await session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
                plan = "\n".join((await session.execute(text(f"EXPLAIN {statement}"), params)).scalars())
                assert "rollup_spans_first" in plan, (filtered, plan)
                # Answered with sorting off for the statement alone (rollups.TAIL_SETTING), as the raw engine does.
                served = await rollups.run(session, query, site_id, state)
                raw = await engine.run(session, query, site_id)
                assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows), filtered
                assert "on" == (await session.execute(text(f"SHOW {rollups.TAIL_SETTING}"))).scalar_one()
    finally:
        await db.dispose()


async def test_few_visits_are_looked_up_visit_by_visit(settings: Settings, generated: tuple[int, datetime]) -> None:
    """A join-path query whose visit filters keep few of the range's visits (``engine.LOOKUP_SHARE``, by
    PostgreSQL's estimates) finds their events through the ``(site_id, session_id)`` index, visit by visit,
    not by hashing every event of the range; with hashing and merging back on after the statement, and the raw
    engine's answer. A filter keeping most visits, no visit filter and time on page are left to PostgreSQL.
    The visits' country is the plain column, which migration 0025's index holds with what the visits table's
    queries read."""
    site_id, now = generated
    two = [["is", "visit:country", ["DE"]], ["is", "visit:source", ["Google"]]]
    db = make_async_engine(settings.database)
    try:
        async with sessionmaker_for(db)() as session:
            await session.execute(text("ANALYZE sessions"))

            def query(filters: list[Any], metrics: tuple[str, ...] = ("visitors", "pageviews")) -> Any:
                return parse_query({"site_id": "rollup.example", "metrics": list(metrics), "filters": filters,
                                    "dimensions": ["event:page"], "date_range": "30d"}, timezone=TZ, now=now)

            few = query(two)
            assert planner.decide(few, None).source is planner.Source.JOIN
            assert await engine.few_visits(session, few, site_id)
            for filters in ([], [["is_not", "visit:country", ["DE"]]], [["is", "event:page", ["/"]]]):
                assert not await engine.few_visits(session, query(filters), site_id), filters
            assert not await engine.few_visits(session, query(two, ("visitors", "time_on_page")), site_id)

            statement, params = engine.build(few, site_id, "table")
            for setting in engine.LOOKUP_SETTINGS:
                await session.execute(text(f"SET LOCAL {setting} = off"))
            plan = "\n".join((await session.execute(text(f"EXPLAIN {statement}"), params)).scalars())
            assert "Hash Join" not in plan and "Merge Join" not in plan, plan
            assert "site_id_session_id_idx" in plan, plan
            for setting in engine.LOOKUP_SETTINGS:
                await session.execute(text(f"SET LOCAL {setting} TO DEFAULT"))

            served = await engine.run(session, few, site_id, "table")
            raw = await engine.run(session, few, site_id)
            assert served.rows and (raw.rows, raw.total_rows) == (served.rows, served.total_rows)
            for setting in engine.LOOKUP_SETTINGS:
                assert "on" == (await session.execute(text(f"SHOW {setting}"))).scalar_one()

            # The visits of a country and a source, from the country's index alone (covering, migration 0025).
            await session.execute(text("SET LOCAL enable_seqscan = off"))
            visits = parse_query({"site_id": "rollup.example", "metrics": ["visitors", "bounce_rate"],
                                  "dimensions": ["visit:device"], "date_range": "30d", "filters": two},
                                 timezone=TZ, now=now)
            statement, params = visits_table.build(visits, site_id)
            plan = "\n".join((await session.execute(text(f"EXPLAIN {statement}"), params)).scalars())
            assert "sessions_site_country" in plan, plan
            columns = text("SELECT array_agg(a.attname ORDER BY a.attname) FROM pg_index i JOIN pg_attribute a "
                           "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                           "WHERE i.indexrelid = CAST(:index AS regclass)")
            start, country = [(await session.execute(columns, {"index": index})).scalar_one()
                              for index in ("sessions_site_start", "sessions_site_country")]
            assert start == country and "entry_page" in country, (start, country)
    finally:
        await db.dispose()


async def test_a_failed_lookup_raises_its_own_error(settings: Settings, generated: tuple[int, datetime],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A looked-up statement (``engine.LOOKUP_SHARE``) cut by the statement timeout raises PostgreSQL's
    statement timeout, which the API answers as such, not "current transaction is aborted" from putting the
    join settings back in a transaction that has already failed."""
    site_id, now = generated

    async def cut(session: Any, query: Any, statement: str, params: dict[str, Any]) -> Any:
        await session.execute(text("SET LOCAL statement_timeout = 50"))
        await session.execute(text("SELECT pg_sleep(1)"))

    monkeypatch.setattr(engine, "execute", cut)
    few = parse_query({"site_id": "rollup.example", "metrics": ["visitors"], "dimensions": ["event:page"],
                       "date_range": "30d", "filters": [["is", "visit:country", ["DE"]],
                                                        ["is", "visit:source", ["Google"]]]},
                      timezone=TZ, now=now)
    db = make_async_engine(settings.database)
    try:
        async with sessionmaker_for(db)() as session:
            await session.execute(text("ANALYZE sessions"))
            assert await engine.few_visits(session, few, site_id)
            with pytest.raises(DBAPIError, match="statement timeout"):
                await engine.run(session, few, site_id, "table")
    finally:
        await db.dispose()


SOURCES = ("a:b", "a|b", "10:x", "%_", "ü:|é", "Google", "")


@pytest.mark.timeout(300)
async def test_pages_of_sources_holding_separators_are_rollups_equal_to_raw(settings: Settings, db: None) -> None:
    """Sources holding the pairs' separators (``:``, ``|``, a length's digits), LIKE's wildcards and characters of
    two bytes, each with two countries and pages over days rolled up, provisional and today: the pages of one source
    and one country are read from ``rollups.PAGES_TWO_PAIRED`` and equal the raw engine's, by page and by day, over
    ranges ending in the past, yesterday and today; no source's rows leak into another's. Direct visits (no source)
    are not stored where only a filter would read them (``rollups._unlabelled``): the filter ``Direct / None`` is
    answered elsewhere, and equal too."""
    today = datetime.now(ZoneInfo(TZ)).date()
    now = datetime.combine(today, datetime.min.time(), ZoneInfo(TZ)) + timedelta(hours=12)
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        site_id = conn.execute(text("INSERT INTO sites (domain, timezone) VALUES ('rollup.example', :tz) "
                                    "RETURNING id"), {"tz": TZ}).scalar_one()
        session = 0
        for days_ago in (6, 5, 3, 1, 0):
            for n, source in enumerate(SOURCES):
                for country in ("DE", "FR"):
                    session += 1
                    for minute, page in enumerate(("/", f"/{source}", f"/{country}/{n}")[:1 + (session % 3)]):
                        conn.execute(text(
                            "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, "
                            "pathname, country, referrer_source) VALUES (:s, :ts, 'pageview', :v, :v, "
                            "'rollup.example', :page, :country, :source)"),
                            {"s": site_id, "ts": now - timedelta(days=days_ago, hours=2, minutes=-minute),
                             "v": session % 17 + 1000 * days_ago, "page": page, "country": country, "source": source})
        while rollups.refresh(conn, site_id, now).days:
            pass
        unread = conn.execute(text(
            "SELECT count(*) FROM rollup_spans WHERE site_id = :s AND dimension = ANY(:names) AND value LIKE :direct"),
            {"s": site_id, "names": ["visit:source|event:page", "visit:source|visit:country|event:page",
                                     *rollups.TWO_VISIT_PAIRS, "visit:source|visit:country#any"],
             "direct": "%Direct / None%"}).scalar_one()
        grouped = conn.execute(text(
            "SELECT count(*) FROM rollup_spans WHERE site_id = :s AND dimension = 'visit:source|visit:country' "
            "AND value LIKE :direct"), {"s": site_id, "direct": "%Direct / None%"}).scalar_one()
    db_engine.dispose()
    assert (0, True) == (unread, grouped > 0)  # a country's sources still show direct visits
    past = [(today - timedelta(days=6)).isoformat(), (today - timedelta(days=2)).isoformat()]
    to_today = [(today - timedelta(days=6)).isoformat(), today.isoformat()]
    bodies = [
        {"metrics": ["visitors", "pageviews"], "dimensions": [*time, "event:page"], "date_range": date_range,
         "filters": [["is", "visit:source", [source]], ["is", "visit:country", [country]]]}
        for source in SOURCES if source for country in ("DE", "FR")
        for time in ([], ["time:day"]) for date_range in ("7d", past, to_today, "month")
    ]
    # The month of the 1st is today alone, and that of the 2nd by day has a bucket after the provisional day (see
    # the generated fixture): neither is rolled up.
    bodies += [
        {"metrics": ["visitors", "visits", "bounce_rate"], "dimensions": [*time, grouped], "date_range": date_range,
         "filters": [["is", "visit:source", [source]], ["is", "visit:country", ["DE"]]]}
        for source in SOURCES if source for grouped in ("visit:entry_page", "visit:device")
        for time in ([], ["time:day"]) for date_range in ("7d", past, to_today, "month")
    ]
    bodies = [b for b in bodies if b["date_range"] != "month" or today.day > 2]
    assert await _compare(settings, site_id, now, bodies, planner.Source.ROLLUPS) == len(bodies)
    direct = [{"metrics": ["visitors", "pageviews"], "dimensions": [grouped], "date_range": date_range,
               "filters": [["is", "visit:source", ["Direct / None"]], *country]}
              for grouped in ("event:page", "visit:entry_page")
              for country in ([], [["is", "visit:country", ["DE"]]]) for date_range in ("7d", to_today)]
    assert await _compare(settings, site_id, now, direct) == len(direct)
    by_source = {"metrics": ["visitors", "percentage"], "dimensions": ["visit:country"], "date_range": "7d",
                 "filters": [["is", "visit:source", ["Google"]]]}
    assert await _compare(settings, site_id, now, [by_source]) == 1  # its divisor: visit:source|visit:country#any
