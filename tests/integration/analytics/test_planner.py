"""Every source the planner picks gives the raw engine's answer: random filtered queries on generated data."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from app.core.db import make_async_engine, make_engine, sessionmaker_for
from app.core.settings import Settings
from services.analytics import engine, planner, rollups
from services.analytics.query import Condition, Query, QueryError, parse_query
from tests.support.analytics import DAYS, TZ

FILTERS: list[list[Any]] = [
    ["is", "visit:country", ["DE"]],
    ["is", "visit:country", ["US", "GB"]],
    ["is_not", "visit:country", ["US"]],
    ["is", "visit:source", ["Google"]],
    ["contains", "visit:source", ["oo"], {"case_sensitive": False}],
    ["is", "visit:source", ["Direct / None"]],
    ["matches", "visit:browser", ["^(Chrome|Safari)$"]],
    ["is", "visit:device", ["Mobile"]],
    ["is_not", "visit:channel", ["Direct"]],
    ["is", "visit:entry_page", ["/"]],
    ["contains", "visit:exit_page", ["/docs"]],
    ["is", "event:page", ["/"]],
    ["is", "event:page", ["/blog*"]],
    ["contains_not", "event:page", ["/docs"]],
    ["is", "event:name", ["Signup"]],
    ["is", "event:goal", ["Signup"]],
    ["is", "event:goal", ["Visit /pricing"]],
    ["is", "event:props:plan", ["pro"]],
    ["or", [["is", "visit:country", ["FR"]], ["is", "visit:device", ["Tablet"]]]],
    ["not", ["is", "visit:os", ["iOS"]]],
]
DIMENSIONS = [
    "visit:source", "visit:country", "visit:entry_page", "visit:exit_page", "visit:device", "visit:browser",
    "visit:channel", "visit:referrer", "visit:utm_medium", "event:page", "event:name", "event:goal",
    "event:props:plan",
]
METRICS = ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit",
           "percentage", "conversion_rate", "group_conversion_rate", "time_on_page"]


PAGE_SHAPES: list[tuple[list[Any], list[str]]] = [
    *(([["is", "event:page", [page]]], dims) for page in ("/", "/checkout", "/blog/blo-0008")
      for dims in ([], *([d] for d in rollups.PAGE_PAIRED))),
    *(([["is", dimension, [value]]], ["event:page"]) for dimension, value in (
        ("visit:country", "DE"), ("visit:source", "Google"))),
    *(([["is", "visit:country", ["DE"]], ["is", "visit:source", [source]]], dims)
      for source in ("Google", "Direct / None") for dims in ([], ["visit:source"], ["visit:country"])),
]
"""The shapes the page rollups answer (a page filter by a visit dimension, a visit filter by page), and those
the visit pairs answer under two filters."""


def random_query(rng: random.Random, today: date) -> dict[str, Any]:
    dimensions = rng.sample(DIMENSIONS, rng.choice([0, 1, 1, 1, 2]))
    filters = rng.sample(FILTERS, rng.choice([0, 1, 1, 2, 2, 3]))
    if rng.random() < 0.15:
        shape = rng.choice(PAGE_SHAPES)
        filters, dimensions = list(shape[0]), list(shape[1])
    if rng.random() < 0.35:
        dimensions.insert(0, rng.choice(["time", "time:day", "time:week", "time:hour"]))
    metrics = rng.sample(METRICS, rng.randint(1, 4))
    if rng.random() < 0.5:
        date_range: Any = rng.choice(["day", "7d", "30d", "month", "28d"])
    else:
        first = today - timedelta(days=rng.randint(0, DAYS))
        date_range = [first.isoformat(), min(today, first + timedelta(days=rng.randint(0, 20))).isoformat()]
    return {"site_id": "rollup.example", "metrics": metrics, "dimensions": dimensions, "filters": filters,
            "date_range": date_range, "pagination": {"limit": rng.choice([5, 10000])}, "include": {"total_rows": True}}


@pytest.fixture
def with_goals(settings: Settings, generated: tuple[int, datetime]) -> tuple[int, datetime]:
    db = make_engine(settings.database)
    with db.begin() as conn:
        for name, event, page in [("Signup", "Signup", None), ("Visit /pricing", None, "/pricing"),
                                  ("Visit /blog*", None, "/blog*")]:
            conn.execute(text("INSERT INTO goals (site_id, display_name, event_name, page_path) "
                              "VALUES (:s, :name, :event, :page)"),
                         {"s": generated[0], "name": name, "event": event, "page": page})
    db.dispose()
    return generated


@pytest.mark.timeout(900)
async def test_served_answers_equal_raw_answers(settings: Settings, with_goals: tuple[int, datetime]) -> None:
    """540 random queries (about a seventh shaped for the page rollups, PAGE_SHAPES) with visit and event
    filters, goals, two or three filters, is_not/contains/matches, or/not, visit and event metrics mixed:
    identical rows, order and totals from the planner's source and from the raw engine (visits computed with
    window functions), every source among them."""
    site_id, now = with_goals
    rng = random.Random(1212)
    db = make_async_engine(settings.database)
    sessions = sessionmaker_for(db)
    today = now.astimezone(ZoneInfo(TZ)).date()
    sources: Counter[str] = Counter()
    try:
        async with sessions() as session:
            state = await rollups.rolled_until(session, site_id, TZ)
            while sum(sources.values()) < 540:
                body = random_query(rng, today)
                try:
                    query = parse_query(body, timezone=TZ, now=now)
                except QueryError:
                    continue
                raw = await engine.run(session, query, site_id)
                served = await planner.answer(session, query, site_id)
                assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows), body
                sources[planner.decide(query, state).source] += 1
    finally:
        await db.dispose()
    assert min(sources[s] for s in planner.Source) >= 20, sources


async def _rolled_up_equal_raw(session: Any, site_id: int, state: rollups.State | None, now: datetime,
                               body: dict[str, Any]) -> None:
    """``body`` is served from the rollups, its answer equals the raw engine's, and that answer is not empty."""
    query = parse_query(body, timezone=TZ, now=now)
    assert planner.Source.ROLLUPS == planner.decide(query, state).source, body
    raw = await engine.run(session, query, site_id)
    served = await planner.answer(session, query, site_id)
    assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows), body
    assert any(row["metrics"][0] for row in raw.rows), body  # not a vacuous equality


ONE_VALUE = [("visit:country", "DE"), ("visit:source", "Google"), ("visit:device", "Mobile"),
             ("visit:entry_page", "/"), ("visit:channel", "Organic Search"), ("event:name", "Signup")]


@pytest.mark.timeout(900)
async def test_one_value_filters_are_rollups_equal_to_raw(settings: Settings, generated: tuple[int, datetime]) -> None:
    """A filter keeping one value of a rolled-up dimension, by time or by that dimension: served from the rollups,
    and equal to the raw engine; with a second value, another dimension (but a paired one, see
    test_filter_paths) or the percentage it is not."""
    site_id, now = generated
    db = make_async_engine(settings.database)
    sessions = sessionmaker_for(db)
    today = now.astimezone(ZoneInfo(TZ)).date()
    custom = [(today - timedelta(days=25)).isoformat(), (today - timedelta(days=3)).isoformat()]
    try:
        async with sessions() as session:
            state = await rollups.rolled_until(session, site_id, TZ)
            for dimension, value in ONE_VALUE:
                metrics = (["visitors", "pageviews", "events"] if dimension.startswith("event:") else
                           ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration",
                            "views_per_visit"])
                for dimensions in ([], ["time:day"], ["time:week"], ["time"], [dimension]):
                    for date_range in ("7d", "30d", "month", custom):
                        await _rolled_up_equal_raw(session, site_id, state, now, {
                            "site_id": "rollup.example", "metrics": metrics, "dimensions": dimensions,
                            "filters": [["is", dimension, [value]]], "date_range": date_range})
            for other in ({"filters": [["is", "visit:country", ["DE", "US"]]]},
                          {"filters": [["is", "visit:country", ["DE"]]], "dimensions": ["visit:exit_page"]},
                          {"filters": [["is", "visit:country", ["DE"]]], "dimensions": ["visit:country"],
                           "metrics": ["visitors", "percentage"]},
                          {"filters": [["is", "event:page", ["/"]]], "dimensions": ["visit:os"]},
                          {"filters": [["is", "visit:source", ["Direct / None"]]]}):
                body = {"site_id": "rollup.example", "metrics": ["visitors"], "date_range": "7d", **other}
                query = parse_query(body, timezone=TZ, now=now)
                assert planner.Source.ROLLUPS != planner.decide(query, state).source, body
    finally:
        await db.dispose()


async def _rates_equal_raw(settings: Settings, site_id: int, now: datetime, metric: str,
                           filters: dict[str, list[Any]], dimensions: tuple[str, ...],
                           check: Callable[[str, Query, rollups.State | None], None]) -> None:
    """Visitors and ``metric`` of each filter set by each dimension over 7 days, 30 days and this month:
    ``check(name, query, state)``, then the served rows equal the raw engine's and every rate is in (0, 100]."""
    db = make_async_engine(settings.database)
    try:
        async with sessionmaker_for(db)() as session:
            state = await rollups.rolled_until(session, site_id, TZ)
            for name, kept in filters.items():
                for dimension in dimensions:
                    for date_range in ("7d", "30d", "month"):
                        body = {"site_id": "rollup.example", "metrics": ["visitors", metric],
                                "dimensions": [dimension], "filters": kept, "date_range": date_range}
                        query = parse_query(body, timezone=TZ, now=now)
                        check(name, query, state)
                        raw = await engine.run(session, query, site_id)
                        served = await planner.answer(session, query, site_id)
                        assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows), (name, body)
                        assert raw.rows and all(0 < row["metrics"][1] <= 100 for row in raw.rows), body
    finally:
        await db.dispose()


@pytest.mark.timeout(900)
async def test_filtered_percentages_are_rollups_equal_to_raw(settings: Settings,
                                                             generated: tuple[int, datetime]) -> None:
    """The dashboard's sources, countries, devices and browsers panels under a filter (visitors and percentage):
    the groups and the divisor (the filtered visitors, with a country where grouped by country) from the rollups
    in one statement, and the rows equal to the raw engine's."""
    site_id, now = generated
    split: list[str] = []

    def check(name: str, query: Query, state: rollups.State | None) -> None:
        if (apart := planner.percentage_apart(query)) is None:
            return
        split.append(name)
        # One statement: the divisor keeps the events and visits the groups keep (planner._percentage_rolled_up).
        assert rollups.percentage_read(query, apart[1]) is not None, query
        if query.dimensions == ("visit:country",) and name not in ("country", "two"):
            # The visitors with a country: the pair's total (rollups.PAIR_TOTALS).
            assert apart[1].filters[-1] == Condition("is_not", "visit:country", ("",)), query
            assert planner.Source.ROLLUPS == planner.decide(apart[1], state).source, query

    filters = {"country": [["is", "visit:country", ["DE"]]], "source": [["is", "visit:source", ["Google"]]],
               "page": [["is", "event:page", ["/"]]], "name": [["is", "event:name", ["Signup"]]],
               "two": [["is", "visit:country", ["DE"]], ["is", "visit:source", ["Google"]]]}
    await _rates_equal_raw(settings, site_id, now, "percentage", filters,
                           ("visit:source", "visit:country", "visit:device", "visit:browser"), check)
    # Two filters are rolled up grouped by one of the two, and a source and a country by device and browser too
    # (rollups.TWO_VISIT_PAIRS): the whole matrix is split.
    assert len(split) == 3 * 5 * 4, split


async def test_one_statement_percentage_only_for_divisors_it_can_read(settings: Settings,
                                                                      generated: tuple[int, datetime]) -> None:
    """``rollups.percentage_read`` refuses a divisor over another range; a divisor reading another visit attribute
    than the report's (the visitors of a source with a country, for the sources report under that source) gets
    that attribute in the days since the rollups end too, and the one statement answers what the two do."""
    site_id, now = generated
    body = {"site_id": "rollup.example", "metrics": ["visitors", "percentage"], "dimensions": ["visit:source"],
            "filters": [["is", "visit:source", ["Google"]]], "date_range": "month"}
    query = parse_query(body, timezone=TZ, now=now)
    elsewhen = parse_query({**body, "metrics": ["visitors"], "dimensions": [], "date_range": "7d"},
                           timezone=TZ, now=now)
    assert rollups.percentage_read(query, elsewhen) is None
    visitors = parse_query({**body, "metrics": ["visitors"], "dimensions": []}, timezone=TZ, now=now)
    divisor = dataclasses.replace(visitors, filters=(*visitors.filters, Condition("is_not", "visit:country", ("",))))
    total = rollups.percentage_read(query, divisor)
    assert total is not None and total.dimension == "visit:source|visit:country#any"
    apart = planner.percentage_apart(query)
    assert apart is not None
    db = make_async_engine(settings.database)
    try:
        async with sessionmaker_for(db)() as session:
            state = await rollups.rolled_until(session, site_id, TZ)
            assert state is not None and state.rolled_for(query) < query.date_range.last_day  # today is read
            one = await rollups.run(session, query, site_id, state, total)
            two = await planner._rate_apart(session, query, site_id, "percentage", apart[0], divisor)
            assert one.rows and (one.rows, one.total_rows) == (two.rows, two.total_rows)
    finally:
        await db.dispose()


@pytest.mark.timeout(900)
async def test_goal_filtered_reports_are_rolled_up_equal_to_raw(settings: Settings,
                                                                with_goals: tuple[int, datetime]) -> None:
    """The dashboard's reports under a goal filter (visitors and group conversion rate by a visit attribute):
    the conversions from the rollups where a custom-event goal is rolled up, each group's divisor from the
    report without the goal, and the rows equal to the raw engine's."""
    site_id, now = with_goals

    def check(name: str, query: Query, state: rollups.State | None) -> None:
        apart = planner.group_divisor_apart(query)
        assert apart is not None, query
        if name != "goal and country":
            assert planner.Source.ROLLUPS == planner.decide(apart[1], state).source, query

    filters = {"custom-event goal": [["is", "event:goal", ["Signup"]]],
               "page goal": [["is", "event:goal", ["Visit /pricing"]]],
               "goal and country": [["is", "event:goal", ["Signup"]], ["is", "visit:country", ["DE"]]]}
    await _rates_equal_raw(settings, site_id, now, "group_conversion_rate", filters,
                           ("visit:source", "visit:country", "visit:device", "visit:entry_page"), check)


@pytest.mark.timeout(900)
async def test_property_filters_are_rollups_equal_to_raw(settings: Settings, generated: tuple[int, datetime]) -> None:
    """A filter on one value of a custom property by time or by nothing (the dashboard's top stats and graph under
    it): served from the rollups of every property (``rollups.PROPS``), equal to the raw engine's, today's events
    included; with awkward keys and values too (a colon, digits like the stored encoding, multi-byte text). Grouped
    by a visit dimension paired with properties (``rollups.PROPS_PAIRS``: the dashboard's sources, countries,
    devices, browsers and entry pages panels, with their percentage), from the pairs, a value beside a page of
    1,000 bytes included. A value too long for the rollups' keys, one too long for a pair's grouped by a visit
    dimension, ``(none)``, several values, a case-insensitive match or a grouping by the property are answered
    elsewhere, as exactly."""
    site_id, now = generated
    today = now.astimezone(ZoneInfo(TZ)).date()
    too_long = "é" * 1500  # 3,000 bytes of UTF-8: over rollups.PROPS_VALUE_BYTES
    too_long_paired = "é" * 600  # 1,200 bytes: rolled up alone, not in pairs (rollups.PAIR_FIRST_BYTES)
    # The longest value a pair holds beside the longest path ingest stores (1,000 bytes), neither compressible.
    edge = random.Random(8).randbytes(rollups.PAIR_FIRST_BYTES).hex()[:rollups.PAIR_FIRST_BYTES - len("4:edge")]
    long_path = "/" + random.Random(9).randbytes(500).hex()[:999]
    awkward = {"plan": "pro", "note": "a:b", "3:ab": "c", "ключ": "значение", "long": too_long,
               "mid": too_long_paired}
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        for n, day in enumerate((today - timedelta(days=12), today - timedelta(days=1), today)):
            at = min(datetime.combine(day, time(9), ZoneInfo(TZ)), now - timedelta(hours=1))
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, props) "
                "VALUES (:s, :ts, 'pageview', :v, :v, 'rollup.example', '/p', CAST(:props AS jsonb)), "
                "(:s, :ts2, 'Custom', :v, :v, 'rollup.example', '/p', CAST(:props AS jsonb))"),
                {"s": site_id, "ts": at, "ts2": at + timedelta(minutes=2), "v": 88_000 + n,
                 "props": json.dumps(awkward)})
            # A visit entering on the longest path with the longest paired value: its pair's value fits an index row.
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, props) "
                "VALUES (:s, :ts, 'pageview', :v, :v, 'rollup.example', :path, CAST(:props AS jsonb))"),
                {"s": site_id, "ts": at + timedelta(minutes=5), "v": 88_100 + n, "path": long_path,
                 "props": json.dumps({"edge": edge})})
        # Text that does not compress, as long as ingest keeps: a visit entering on one such path, viewing
        # another, with such a property. The day's roll-up stores what fits an index row and leaves the rest out
        # (rollups.PAIR_FIRST_BYTES); it failed on "index row size 3120 exceeds btree version 4 maximum 2704".
        rng = random.Random(7)
        noise = [rng.randbytes(n).hex() for n in (500, 500, 495)]
        entry, page, token = "/" + noise[0][:999], "/" + noise[1][:999], noise[2]
        at = datetime.combine(today - timedelta(days=12), time(10), ZoneInfo(TZ))
        for n, path in enumerate((entry, page)):
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, props) "
                "VALUES (:s, :ts, 'pageview', 88200, 88200, 'rollup.example', :path, CAST(:props AS jsonb))"),
                {"s": site_id, "ts": at + timedelta(minutes=n), "path": path, "props": json.dumps({"t": token})})
        while rollups.refresh(conn, site_id, now).days:  # the late days rolled up again
            pass
    db_engine.dispose()
    db = make_async_engine(settings.database)
    custom = [(today - timedelta(days=20)).isoformat(), today.isoformat()]
    try:
        async with sessionmaker_for(db)() as session:
            state = await rollups.rolled_until(session, site_id, TZ)
            checked = 0
            for key, value in (("plan", "pro"), ("plan", "free"), ("note", "a:b"), ("3:ab", "c"),
                               ("ключ", "значение")):
                for metrics in (["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate",
                                 "visit_duration"], ["visitors", "pageviews", "events"]):
                    for dimensions in ([], ["time:day"], ["time:week"]):
                        for date_range in ("7d", "30d", "month", custom):
                            await _rolled_up_equal_raw(session, site_id, state, now, {
                                "site_id": "rollup.example", "metrics": metrics, "dimensions": dimensions,
                                "filters": [["is", f"event:props:{key}", [value]]], "date_range": date_range})
                            checked += 1
            assert 5 * 2 * 3 * 4 == checked
            visit_metrics = ["visitors", "visits", "bounce_rate", "visit_duration", "views_per_visit"]
            for key, value in (("plan", "pro"), ("note", "a:b"), ("ключ", "значение"), ("edge", edge)):
                # The events added above have no country: the countries of their values are none.
                for grouped in [d for d in rollups.PROPS_PAIRED if key == "plan" or d != "visit:country"]:
                    for date_range in ("7d", "month", custom):
                        await _rolled_up_equal_raw(session, site_id, state, now, {
                            "site_id": "rollup.example", "metrics": visit_metrics, "dimensions": [grouped],
                            "filters": [["is", f"event:props:{key}", [value]]], "date_range": date_range})
                        checked += 1
                        if grouped == "visit:entry_page":
                            continue  # the dashboard's entry pages panel shows visitors and visits, no percentage
                        # The dashboard's panel: its percentage divides by the value's visitors (with a country for
                        # the countries), both from the rollups in one statement.
                        query = parse_query({
                            "site_id": "rollup.example", "metrics": ["visitors", "percentage"], "dimensions": [grouped],
                            "filters": [["is", f"event:props:{key}", [value]]], "date_range": date_range},
                            timezone=TZ, now=now)
                        split = planner.percentage_apart(query)
                        assert split is not None and rollups.percentage_read(query, split[1]) is not None, query
                        raw = await engine.run(session, query, site_id)
                        served = await planner.answer(session, query, site_id)
                        assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows), query
                        assert raw.rows, query
            assert 5 * 2 * 3 * 4 + (4 * len(rollups.PROPS_PAIRED) - 3) * 3 == checked
            edge_entry = parse_query({"site_id": "rollup.example", "metrics": ["visitors"], "date_range": "7d",
                                      "dimensions": ["visit:entry_page"],
                                      "filters": [["is", "event:props:edge", [edge]]]}, timezone=TZ, now=now)
            assert [[long_path]] == [r["dimensions"] for r in (await planner.answer(session, edge_entry, site_id)).rows]
            mid = {"site_id": "rollup.example", "metrics": ["visitors", "visits"], "date_range": "30d",
                   "filters": [["is", "event:props:mid", [too_long_paired]]]}
            assert planner.Source.ROLLUPS == planner.decide(parse_query(mid, timezone=TZ, now=now), state).source
            for filters, dimensions in (([["is", "event:props:long", [too_long]]], []),
                                        ([["is", "event:props:plan", ["(none)"]]], []),
                                        ([["is", "event:props:plan", ["pro", "free"]]], []),
                                        ([["is", "event:props:plan", ["PRO"], {"case_sensitive": False}]], []),
                                        ([["is", "event:props:plan", ["pro"]]], ["event:props:plan"]),
                                        ([["is", "event:props:mid", [too_long_paired]]], ["visit:source"]),
                                        ([["is", "event:props:t", [token]]], ["visit:entry_page"]),
                                        ([["is", "event:page", [page]]], ["visit:entry_page"]),
                                        ([["is", "event:page", [page]], ["is", "visit:entry_page", [entry]]], []),
                                        ([["is", "event:props:plan", ["pro"]]], ["visit:os"])):
                body = {"site_id": "rollup.example", "metrics": ["visitors", "visits"], "date_range": "30d",
                        "filters": filters, "dimensions": dimensions}
                query = parse_query(body, timezone=TZ, now=now)
                assert planner.Source.ROLLUPS != planner.decide(query, state).source, body
                raw = await engine.run(session, query, site_id)
                served = await planner.answer(session, query, site_id)
                assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows), body
                assert raw.rows and raw.rows[0]["metrics"][0], body
    finally:
        await db.dispose()
