"""Rollups answer exactly what the engine over raw events answers, on generated data, for random queries."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text

from app.core.db import make_async_engine, make_engine, sessionmaker_for
from app.core.settings import Settings
from app.devstack import Postgres
from services.analytics import engine, planner, rollups
from services.analytics.query import parse_query
from tests.support.analytics import DAYS, TZ


def random_query(rng: random.Random, today: date) -> dict[str, Any]:
    dimension = rng.choice(rollups.ROLLED)
    allowed = sorted(rollups.EVENT_METRICS if dimension.startswith("event:") else rollups.VISIT_METRICS)
    metrics = rng.sample(allowed, rng.randint(1, 4))
    dimensions = [dimension] if dimension else []
    if rng.random() < 0.4:
        dimensions.insert(rng.randint(0, len(dimensions)), rng.choice(["time:day", "time:week", "time:month", "time"]))
    if "percentage" in metrics and not dimensions:
        metrics.remove("percentage")
        metrics = metrics or ["visitors"]
    if rng.random() < 0.5:
        date_range: Any = rng.choice(["7d", "30d", "month", "28d"])
    else:
        first = today - timedelta(days=rng.randint(0, DAYS + 2))
        date_range = [first.isoformat(), min(today, first + timedelta(days=rng.randint(0, 20))).isoformat()]
    return {"site_id": "rollup.example", "metrics": metrics, "dimensions": dimensions, "date_range": date_range,
            "pagination": {"limit": rng.choice([5, 50, 10000])}, "include": {"total_rows": True}}


async def test_rollups_equal_raw_answers(settings: Settings, generated: tuple[int, datetime]) -> None:
    """150 random applicable queries: identical rows, order and totals from both paths, among them queries
    ending yesterday (answered from the rollups alone, yesterday's provisionally) and reaching into today (with
    yesterday's provisional rows when no time bucket begins today, computed without sorting where PostgreSQL can
    hash instead)."""
    site_id, now = generated
    rng = random.Random(2026)
    db = make_async_engine(settings.database)
    sessions = sessionmaker_for(db)
    today = now.astimezone(ZoneInfo(TZ)).date()
    compared = ending_yesterday = through_today = 0
    try:
        async with sessions() as session:
            state = await rollups.rolled_until(session, site_id, TZ)
            assert state == rollups.State(today - timedelta(days=2), today - timedelta(days=1))
            for _ in range(150):
                body = random_query(rng, today)
                query = parse_query(body, timezone=TZ, now=now)
                if not rollups.applicable(query) or state.rolled_for(query) < query.date_range.first_day:
                    continue
                raw = await engine.run(session, query, site_id)
                rolled = await rollups.run(session, query, site_id, state)
                assert (raw.rows, raw.total_rows) == (rolled.rows, rolled.total_rows), body
                # A statement computing today turns sorting off for itself only (rollups.TAIL_SETTING).
                assert "on" == (await session.execute(text(f"SHOW {rollups.TAIL_SETTING}"))).scalar_one()
                compared += 1
                ending_yesterday += query.date_range.last_day == state.provisional_day
                through_today += query.date_range.last_day > state.rolled_for(query) == state.provisional_day
    finally:
        await db.dispose()
    assert compared >= 100
    assert ending_yesterday >= 20
    assert through_today >= 10, through_today


async def test_provisional_day_waits_for_open_visits(settings: Settings, generated: tuple[int, datetime]) -> None:
    """A visit of yesterday with an event within the visit timeout keeps yesterday from being rolled up early;
    so does the first half hour after midnight."""
    site_id, now = generated
    yesterday = now.date() - timedelta(days=1)
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE rollup_state SET provisional_day = NULL WHERE site_id = :s"), {"s": site_id})
        session_id = conn.execute(text(
            "SELECT session_id FROM events WHERE site_id = :s AND timestamp < :midnight ORDER BY timestamp DESC "
            "LIMIT 1"), {"s": site_id, "midnight": datetime.combine(now.date(), time(0), ZoneInfo(TZ))}).scalar()
        conn.execute(text(
            "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
            "VALUES (:s, :ts, 'pageview', 1, :session, 'rollup.example', '/late')"),
            {"s": site_id, "ts": now - timedelta(minutes=10), "session": session_id})
        assert 0 == rollups.refresh(conn, site_id, now).days
        midnight = datetime.combine(now.date(), time(0, 20), ZoneInfo(TZ))
        assert 0 == rollups.refresh(conn, site_id, midnight).days
        # Half an hour later the visit has ended.
        assert 1 == rollups.refresh(conn, site_id, now + timedelta(minutes=31)).days
        provisional = conn.execute(text("SELECT provisional_day FROM rollup_state WHERE site_id = :s"),
                                   {"s": site_id}).scalar()
    db_engine.dispose()
    assert yesterday == provisional


async def test_provisional_span_growing_into_today(settings: Settings, generated: tuple[int, datetime]) -> None:
    """A visitor of yesterday back today with the same id (its salt's day is not the site's local day) after
    yesterday was rolled up provisionally: its stored span ends yesterday. A query with one bucket from before
    yesterday to today reads yesterday from the rollups and still counts the visitor once; by day, today's
    bucket would miss it, so such a query computes yesterday from the events."""
    site_id, now = generated
    today = now.date()
    yesterday = today - timedelta(days=1)
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        visitor, country = conn.execute(text(
            "SELECT visitor_id, country FROM events WHERE site_id = :s AND timestamp >= :from AND timestamp < :to "
            "AND visitor_id NOT IN (SELECT visitor_id FROM events WHERE site_id = :s AND timestamp >= :to) LIMIT 1"),
            {"s": site_id, "from": datetime.combine(yesterday, time(9), ZoneInfo(TZ)),
             "to": datetime.combine(today, time(0), ZoneInfo(TZ))}).one()
        conn.execute(text(
            "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, country) "
            "VALUES (:s, :ts, 'pageview', :v, 88000, 'rollup.example', '/again', :country)"),
            {"s": site_id, "ts": now - timedelta(hours=1), "v": visitor, "country": country})
        assert 0 == conn.execute(text("SELECT count(*) FROM rollup_stale WHERE site_id = :s"), {"s": site_id}).scalar()
    db_engine.dispose()
    db = make_async_engine(settings.database)
    week = [(today - timedelta(days=6)).isoformat(), today.isoformat()]
    try:
        async with sessionmaker_for(db)() as session:
            state = await rollups.rolled_until(session, site_id, TZ)
            assert state is not None
            by_events = yesterday - timedelta(days=1)
            for dimensions, rolled in ((["visit:country"], yesterday), (["visit:country", "time:day"], by_events),
                                       (["time:day"], by_events), ([], yesterday)):
                query = parse_query({"site_id": "rollup.example", "metrics": ["visitors", "visits"],
                                     "dimensions": dimensions, "date_range": week,
                                     "filters": [["is", "visit:country", [country]]]}, timezone=TZ, now=now)
                assert (rollups.applicable(query), rolled) == (True, state.rolled_for(query)), dimensions
                raw = await engine.run(session, query, site_id)
                served = await rollups.run(session, query, site_id, state)
                assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows), dimensions
    finally:
        await db.dispose()


async def test_tail_counts_visitors_of_the_day_before_once(settings: Settings,
                                                          generated: tuple[int, datetime]) -> None:
    """The days since the rollups end are computed from their events and the day before's, which tells where a
    span began (``rollups.window``): a pair with an event the day before is the rollups' and is left out. Visitors
    under one id on both days (their salt's day is not the site's local day): back on a page of yesterday and on a
    new one, in a visit crossing midnight, from the day before yesterday into yesterday (read when the tail begins
    yesterday); and a visitor of yesterday alone. Pages, entry pages, countries, sources and the site under no
    filter, a country and two pages, by day (the tail from yesterday) and as one bucket (from today): the raw
    engine's answers. (Reading the day before only for the visitors seen since was measured and not kept:
    docs/benchmarks.md, run 17.)"""
    site_id, now = generated
    today = now.date()
    zone = ZoneInfo(TZ)

    def at(days_ago: int, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(today - timedelta(days=days_ago), time(hour, minute), zone)

    events = [  # visitor, visit, when, page, country, source
        (9100001, 91001, at(1, 20), "/tail-a", "FR", "Google"),
        (9100001, 91002, at(0, 9), "/tail-a", "FR", "Google"),
        (9100001, 91002, at(0, 9, 5), "/tail-b", "FR", "Google"),
        (9100002, 91003, at(1, 23, 50), "/tail-a", "IS", "Bing"),
        (9100002, 91003, at(0, 0, 10), "/tail-a", "IS", "Bing"),
        (9100002, 91003, at(0, 0, 15), "/tail-c", "IS", "Bing"),
        (9100003, 91004, at(1, 22), "/tail-b", "FR", "Google"),
        (9100004, 91005, at(2, 22), "/tail-b", "IS", ""),
        (9100004, 91006, at(1, 7), "/tail-b", "FR", "Bing"),
        (9100004, 91006, at(1, 7, 5), "/tail-c", "FR", "Bing"),
    ]
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, country, "
            "referrer_source) VALUES (:s, :ts, 'pageview', :v, :session, 'rollup.example', :page, :country, :source)"),
            [{"s": site_id, "v": v, "session": session, "ts": ts, "page": page, "country": country, "source": source}
             for v, session, ts, page, country, source in events])
        while rollups.refresh(conn, site_id, now).days:  # the late events' days rolled up again
            pass
    db_engine.dispose()
    db = make_async_engine(settings.database)
    week = [(today - timedelta(days=6)).isoformat(), today.isoformat()]
    compared = from_yesterday = from_today = 0
    try:
        async with sessionmaker_for(db)() as session:
            state = await rollups.rolled_until(session, site_id, TZ)
            assert state == rollups.State(today - timedelta(days=2), today - timedelta(days=1))
            for dimension in ("event:page", "visit:entry_page", "visit:country", "visit:source", None):
                for filters in ([], [["is", "visit:country", ["FR"]]], [["is", "event:page", ["/tail-a"]]],
                                [["is", "event:page", ["/tail-b"]]]):
                    for by_day in (False, True):
                        dimensions = [*([dimension] if dimension else []), *(["time:day"] if by_day else [])]
                        metrics = ["visitors", "pageviews"] if dimension == "event:page" else \
                            ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"]
                        query = parse_query({"site_id": "rollup.example", "metrics": metrics,
                                             "dimensions": dimensions, "date_range": week, "filters": filters,
                                             "pagination": {"limit": 10000}}, timezone=TZ, now=now)
                        if not rollups.applicable(query):
                            continue
                        raw = await engine.run(session, query, site_id)
                        served = await rollups.run(session, query, site_id, state)
                        assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows), (dimensions, filters)
                        compared += 1
                        rolled = state.rolled_for(query)
                        from_yesterday += rolled == state.rolled_until
                        from_today += rolled == state.provisional_day
    finally:
        await db.dispose()
    assert compared >= 14 and from_yesterday >= 5 and from_today >= 5, (compared, from_yesterday, from_today)


async def test_refresh_is_idempotent_and_follows_time_zone_changes(settings: Settings,
                                                                   generated: tuple[int, datetime]) -> None:
    """Nothing more to do once rolled up; a new time zone starts the rollups again."""
    site_id, now = generated
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        assert 0 == rollups.refresh(conn, site_id, now).days
        conn.execute(text("UPDATE sites SET timezone = 'Asia/Tokyo' WHERE id = :s"), {"s": site_id})
        result = rollups.refresh(conn, site_id, now)
        tz = conn.execute(text("SELECT timezone FROM rollup_state WHERE site_id = :s"), {"s": site_id}).scalar()
    db_engine.dispose()
    assert result.days > 0
    assert "Asia/Tokyo" == tz


async def test_late_events_rebuild_their_days(settings: Settings, generated: tuple[int, datetime]) -> None:
    """Events arriving for days already rolled up (an import, a clock far behind) are noted by the events
    trigger; the next refresh rolls those days up again and the rollups answer the raw engine's answer."""
    site_id, now = generated
    today = now.astimezone(ZoneInfo(TZ)).date()
    late_day = today - timedelta(days=10)
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        for n, day in enumerate((late_day, today - timedelta(days=1))):  # a final day and the provisional one
            at = datetime.combine(day, time(13), ZoneInfo(TZ))
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, country) "
                "VALUES (:s, :ts, 'pageview', :v, :v, 'rollup.example', '/late', 'EE'), "
                "(:s, :ts2, 'pageview', :v, :v, 'rollup.example', '/late/2', 'EE')"),
                {"s": site_id, "ts": at, "ts2": at + timedelta(minutes=3), "v": 77_000 + n})
        stale = [row[0] for row in conn.execute(text("SELECT day FROM rollup_stale WHERE site_id = :s ORDER BY day"),
                                                 {"s": site_id})]
        assert [late_day, today - timedelta(days=1)] == stale
        rebuilt = rollups.refresh(conn, site_id, now).days
        assert 0 == conn.execute(text("SELECT count(*) FROM rollup_stale")).scalar()
    db_engine.dispose()
    assert 8 == rebuilt  # late_day ± 2 days, and the two days before the provisional one with it
    db = make_async_engine(settings.database)
    try:
        async with sessionmaker_for(db)() as session:
            state = await rollups.rolled_until(session, site_id, TZ)
            assert state is not None
            for body in ({"metrics": ["visitors", "visits", "pageviews", "bounce_rate"], "date_range": "30d"},
                         {"metrics": ["visitors", "pageviews"], "dimensions": ["event:page"], "date_range": "7d"},
                         {"metrics": ["visitors"], "dimensions": ["visit:country", "time:day"], "date_range": "30d"},
                         {"metrics": ["visitors", "visits", "visit_duration"], "dimensions": ["visit:country"],
                          "filters": [["is", "event:page", ["/late"]]], "date_range": "30d"},
                         {"metrics": ["visitors", "pageviews"], "dimensions": ["event:page"],
                          "filters": [["is", "visit:country", ["EE"]]], "date_range": "30d"}):
                query = parse_query({"site_id": "rollup.example", **body}, timezone=TZ, now=now)
                assert rollups.applicable(query)
                raw = await engine.run(session, query, site_id)
                rolled = await rollups.run(session, query, site_id, state)
                assert (raw.rows, raw.total_rows) == (rolled.rows, rolled.total_rows), body
    finally:
        await db.dispose()


async def test_warm_reads_the_visits_indexes_back(settings: Settings, postgres: Postgres,
                                                  generated: tuple[int, datetime]) -> None:
    """``rollups.warm`` reads every block of the visits' indexes with pg_prewarm (the test cluster's 256 MB of
    shared buffers hold them); without the extension it says so (None) and reads nothing."""
    db_engine = make_engine(settings.database)
    try:
        with db_engine.begin() as conn:
            warmed = rollups.warm(conn)
            sizes = {index: conn.execute(text("SELECT pg_relation_size(to_regclass(:i)) / 8192"), {"i": index}
                                         ).scalar_one() for index in rollups.WARMED}
        assert sizes == warmed
        assert all(sizes.values())
        database = db_engine.url.database
        assert database is not None
        postgres.psql("DROP EXTENSION pg_prewarm", database=database)
        try:
            with db_engine.begin() as conn:
                assert rollups.warm(conn) is None
        finally:
            postgres.psql("CREATE EXTENSION pg_prewarm", database=database)
    finally:
        db_engine.dispose()


def test_vacuum_outlives_the_statement_timeout(settings: Settings, generated: tuple[int, datetime]) -> None:
    """``rollups.vacuum`` (after ``beacon analytics refresh`` rolls up many days) runs without the connection's
    statement timeout, which a large site's VACUUM exceeds, and leaves the connection's own timeout as it was."""
    db = make_engine(settings.database)
    try:
        with db.connect() as raw:
            conn = raw.execution_options(isolation_level="AUTOCOMMIT")
            default = conn.execute(text("SHOW statement_timeout")).scalar_one()
            before = conn.execute(text("SELECT max(last_vacuum) FROM pg_stat_user_tables "
                                       "WHERE relname = 'rollup_spans'")).scalar()
            conn.execute(text("SET statement_timeout = '1ms'"))  # shorter than any VACUUM (ANALYZE)
            rollups.vacuum(conn)
            assert default == conn.execute(text("SHOW statement_timeout")).scalar_one()
            after = conn.execute(text("SELECT max(last_vacuum) FROM pg_stat_user_tables "
                                      "WHERE relname = 'rollup_spans'")).scalar()
            assert after is not None and (before is None or after > before)
    finally:
        db.dispose()


async def test_longest_page_pairs_roll_up(settings: Settings, db: None) -> None:
    """A visit entering on a page path of the longest length ingest keeps (1,000 bytes) and viewing two others, of
    750 and 1,000 bytes: the roll-up succeeds. Its page pair with the entry page stores the 750-byte page with the
    entry page (1,754 characters; 2,005 failed the day's roll-up before migration 0022 made the stored values text),
    and not the 1,000-byte one, whose row in the pairs' index would exceed PostgreSQL's 2,704 bytes unless it
    compresses (``rollups.PAIR_FIRST_BYTES``). The first is answered from the rollups, the second elsewhere, both
    as the raw engine answers. The visit's source is the longest ingest keeps (120 characters, here of four bytes
    each and random, so that nothing compresses): the pages of that source and the country store it in the first
    part beside each page (``rollups.PAGES_TWO_PAIRED``) and the entry page (``rollups.TWO_VISIT_PAIRS``), and are
    answered from the rollups too."""
    now = datetime.combine(datetime.now(UTC).astimezone(ZoneInfo(TZ)).date(), time(12), ZoneInfo(TZ))
    entry, paired, unpaired = "/" + "e" * 999, "/" + "p" * 749, "/" + "q" * 999
    rng = random.Random(12)
    source = "".join(chr(rng.randrange(0x20000, 0x2A6DF)) for _ in range(120))
    db_engine = make_engine(settings.database)
    with db_engine.begin() as conn:
        site_id = conn.execute(text("INSERT INTO sites (domain, timezone) VALUES ('long.example', :tz) RETURNING id"),
                               {"tz": TZ}).scalar_one()
        for n, path in enumerate((entry, paired, unpaired)):
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, country, "
                "referrer_source) VALUES (:s, :ts, 'pageview', 5, 5, 'long.example', :path, 'DE', :source)"),
                {"s": site_id, "ts": now - timedelta(days=5, minutes=-n), "path": path, "source": source})
        while rollups.refresh(conn, site_id, now).days:
            pass
        longest = conn.execute(text("SELECT max(char_length(value)) FROM rollup_spans WHERE site_id = :s "
                                    "AND dimension = :d"), {"s": site_id, "d": rollups.PAGE_ENTRY}).scalar_one()
        widest = dict(conn.execute(text(
            "SELECT dimension, max(octet_length(value)) FROM rollup_spans WHERE site_id = :s AND dimension = ANY(:d) "
            "GROUP BY 1"), {"s": site_id, "d": [f"{rollups.PAGES_TWO_PAIRED[0]}|{third}"
                                                for third in ("event:page", "visit:entry_page")]}).all())
    db_engine.dispose()
    assert len("750:") + 750 + 1000 == longest
    assert {len("126:120:") + 480 + len("DE") + 1000} == set(widest.values()) and len(widest) == 2  # 1,490 bytes
    db = make_async_engine(settings.database)
    try:
        async with sessionmaker_for(db)() as session:
            state = await rollups.rolled_until(session, site_id, TZ)
            assert state is not None
            for page, rolled_up in ((paired, True), (unpaired, False)):
                body = {"site_id": "long.example", "metrics": ["visitors", "visits"],
                        "dimensions": ["visit:entry_page"], "filters": [["is", "event:page", [page]]],
                        "date_range": "7d"}
                query = parse_query(body, timezone=TZ, now=now)
                assert rolled_up == rollups.applicable(query)
                raw = await engine.run(session, query, site_id)
                served = await planner.answer(session, query, site_id)
                assert [{"dimensions": [entry], "metrics": [1, 1]}] == raw.rows
                assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows)
            body = {"site_id": "long.example", "metrics": ["visitors", "pageviews"], "dimensions": ["event:page"],
                    "filters": [["is", "visit:source", [source]], ["is", "visit:country", ["DE"]]], "date_range": "7d"}
            query = parse_query(body, timezone=TZ, now=now)
            assert rollups.applicable(query)
            raw = await engine.run(session, query, site_id)
            assert {page: [1, 1] for page in (entry, paired, unpaired)} == {
                row["dimensions"][0]: row["metrics"] for row in raw.rows}
            served = await planner.answer(session, query, site_id)
            assert (raw.rows, raw.total_rows) == (served.rows, served.total_rows)
    finally:
        await db.dispose()


LOCAL_DAY_WINDOWS = [
    # (time zone, first day, last day, searched): a day's tail and a week's roll-up, away from a switch of the UTC
    # offset (searched among the midnights) and across one (converted).
    ("Europe/Berlin", date(2026, 11, 30), date(2026, 11, 30), True),
    ("Europe/Berlin", date(2026, 3, 29), date(2026, 3, 29), False),
    ("Europe/Berlin", date(2026, 10, 19), date(2026, 10, 25), False),
    ("America/Santiago", date(2026, 4, 4), date(2026, 4, 5), False),  # 24:00 becomes 23:00
    ("America/Santiago", date(2026, 9, 6), date(2026, 9, 12), False),  # midnight does not exist
    ("America/Havana", date(2026, 11, 1), date(2026, 11, 1), False),
    ("Australia/Lord_Howe", date(2026, 4, 1), date(2026, 4, 7), False),  # half an hour
    ("Asia/Kolkata", date(2026, 6, 1), date(2026, 6, 7), True),
    ("Pacific/Kiritimati", date(2026, 12, 31), date(2026, 12, 31), True),
    ("UTC", date(2026, 2, 28), date(2026, 3, 1), True),
]


def test_local_day_is_the_time_zones_day(settings: Settings, db: None) -> None:
    """The local day the scans compute (``rollups.local_day``: a search among the window's midnights where the UTC
    offset holds, the time zone conversion where it changes) is PostgreSQL's ``AT TIME ZONE`` day for every
    instant a scan can read (its window, and a visit's span before and after), each midnight and the moment before
    it too; the search serves every window without a switch."""
    db_engine = make_engine(settings.database)
    try:
        with db_engine.connect() as conn:
            for tz, first, last, searched in LOCAL_DAY_WINDOWS:
                params = rollups.window(first, last, tz)
                assert searched == (params["midnights"] is not None), (tz, first, last)
                bounds = params["midnights"] or []
                instants = conn.execute(text(
                    "SELECT t FROM generate_series(CAST(:scan_start AS timestamptz) - interval '1 day', "
                    "CAST(:scan_end AS timestamptz) + interval '1 day', interval '7 minutes') t "
                    "UNION ALL SELECT unnest(CAST(:edges AS timestamptz[]))"),
                    {**params, "edges": [*bounds, *(b - timedelta(microseconds=1) for b in bounds)]}).scalars().all()
                wrong = conn.execute(text(
                    f"SELECT count(*) FILTER (WHERE {rollups.local_day('t')} <> (t AT TIME ZONE :tz)::date), count(*) "
                    "FROM unnest(CAST(:instants AS timestamptz[])) t"), {**params, "instants": instants}).one()
                assert (0, len(instants)) == tuple(wrong), (tz, first, last)
    finally:
        db_engine.dispose()
