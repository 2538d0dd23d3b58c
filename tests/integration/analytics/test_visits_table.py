"""The visits table equals the raw engine's visits, however and in whatever order the events arrive."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from app.core.settings import Settings
from services.analytics.engine import TABLE_EXPRESSIONS, VISIT_EXPRESSIONS, visit_events_select

NAMES = sorted(VISIT_EXPRESSIONS)
# The raw engine's definition: window functions over every event of the visit.
RAW = (f"WITH ev AS (SELECT * FROM events WHERE session_id <> 0) SELECT DISTINCT ON (session_id) session_id, "
       f"{', '.join(f'v_{n}' for n in NAMES)} FROM ({visit_events_select('ev')}) x ORDER BY session_id")
STORED = f"SELECT session_id, {', '.join(TABLE_EXPRESSIONS[n] for n in NAMES)} FROM sessions s ORDER BY session_id"
INSERT = ("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, referrer, "
          "referrer_source, channel, utm_source, browser, os, device, country, interactive) "
          "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
COPY = f"COPY events ({INSERT.split('(', 1)[1].split(')', 1)[0]}) FROM STDIN"
T0 = datetime(2026, 3, 10, 12, tzinfo=UTC)


@pytest.fixture
def site(settings: Settings, db: None) -> int:
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        conn.execute("SELECT beacon_create_event_partition('2026-03-01')")
        row = conn.execute("INSERT INTO sites (domain, timezone) VALUES ('visits.example', 'UTC') RETURNING id"
                           ).fetchone()
    assert row is not None
    return int(row[0])


def visit_events(rng: random.Random, site: int, visits: int) -> list[tuple[Any, ...]]:
    """Events of ``visits`` visits: pageviews and custom events (some not interactive) with varying attributes,
    equal timestamps within a visit, and visits that begin with a custom event or have no pageview."""
    rows = []
    for session in range(1, visits + 1):
        at = T0 + timedelta(minutes=rng.randint(0, 600))
        for n in range(rng.randint(1, 6)):
            at += timedelta(seconds=rng.choice([0, 0, 5, 60, 600]))
            name = rng.choice(["pageview", "pageview", "pageview", "Signup", "Outbound Link: Click"])
            rows.append((site, at, name, 1000 + session, session, rng.choice(["a.example", "b.example"]),
                         f"/p{rng.randint(1, 5)}", rng.choice(["", "https://www.google.com/", "http://t.co/x"]),
                         rng.choice(["", "Google"]), rng.choice(["", "Organic Search"]), rng.choice(["", "nl"]),
                         rng.choice(["Chrome", "Firefox"]), rng.choice(["Mac", "iOS"]),
                         rng.choice(["Desktop", "Mobile"]), rng.choice(["DE", "US", ""]), n % 3 != 2))
    return rows


def fetch(settings: Settings, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database.libpq_url) as conn:
        return conn.execute(statement).fetchall()


def test_late_and_out_of_order_events(settings: Settings, site: int) -> None:
    """Events inserted one by one in random order (late events before a visit's first, a custom event
    before the first pageview): every attribute and total of every visit is the raw engine's."""
    rng = random.Random(12)
    rows = visit_events(rng, site, 60)
    # Ids follow insertion order, as they do for ingest: shuffling makes later ids carry earlier times.
    rng.shuffle(rows)
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        for row in rows:
            conn.execute(INSERT, row)
    assert fetch(settings, RAW) == fetch(settings, STORED)


def test_concurrent_batches(settings: Settings, site: int) -> None:
    """Six writers committing batches that touch the same visits at once (as two ingest processes with
    several batches in flight do): no deadlock, no lost update, the raw engine's visits."""
    rng = random.Random(5)
    rows = visit_events(rng, site, 80)
    rng.shuffle(rows)
    chunks = [rows[i::6] for i in range(6)]
    errors: list[BaseException] = []

    def write(chunk: list[tuple[Any, ...]]) -> None:
        try:
            with psycopg.connect(settings.database.libpq_url) as conn:
                for start in range(0, len(chunk), 7):
                    # One statement per transaction, as the ingest service's COPY: the trigger then takes the
                    # visits' locks in (site, visit) order, so concurrent batches cannot deadlock.
                    with conn.transaction(), conn.cursor() as cur, cur.copy(COPY) as copy:
                        for row in chunk[start:start + 7]:
                            copy.write_row(row)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [] == errors
    assert len({row[4] for row in rows}) == len(fetch(settings, STORED))
    assert fetch(settings, RAW) == fetch(settings, STORED)


def test_one_statement_of_many_visits(settings: Settings, site: int) -> None:
    """A single COPY-sized statement (an import, the benchmark's generator) folds like the trickle does."""
    rows = visit_events(random.Random(3), site, 200)
    with psycopg.connect(settings.database.libpq_url) as conn, conn.cursor() as cur, cur.copy(COPY) as copy:
        for row in rows:
            copy.write_row(row)
    assert fetch(settings, RAW) == fetch(settings, STORED)


def test_events_without_a_visit_id_join_their_visitors_visits(settings: Settings, site: int) -> None:
    """Events stored with ``session_id = 0`` (legacy rows, writers that set none), in several statements, one of
    them late: each gets the id of its visitor's visit by the 30-minute rule, a negative one, and the visits table
    holds those visits as the raw engine computes them."""
    times = {  # visitor: minutes after T0 of its events; gaps of 30 minutes or more start a new visit
        1: [0, 10, 25, 54],   # one visit (every gap under 30 minutes)
        2: [0, 30, 100],      # three visits
        3: [5, 1],            # one: the event of minute 1 arrives last and joins the visit
    }
    expected = {(1, 0), (2, 0), (2, 1), (2, 2), (3, 0)}
    rows = [(site, T0 + timedelta(minutes=m), "pageview", visitor, 0, "a.example", f"/m{m}", "", "", "", "",
             "Chrome", "Mac", "Desktop", "DE", True) for visitor, minutes in times.items() for m in minutes]
    rows.sort(key=lambda row: row[1] if row[6] != "/m1" else T0 + timedelta(days=1))
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        conn.execute(INSERT, rows[0])
        with conn.cursor() as cur, cur.copy(COPY) as copy:
            for row in rows[1:6]:
                copy.write_row(row)
        for row in rows[6:]:
            conn.execute(INSERT, row)
    stored = fetch(settings, "SELECT visitor_id, session_id, timestamp FROM events ORDER BY visitor_id, timestamp")
    assert len(rows) == len(stored)
    assert all(session_id < 0 for _, session_id, _ in stored)
    # The visits found: per visitor, numbered in time order, the same as the 30-minute rule's.
    ids: dict[int, list[int]] = {}
    for visitor, session_id, _ in stored:
        if session_id not in ids.setdefault(visitor, []):
            ids[visitor].append(session_id)
    assert expected == {(visitor, n) for visitor, found in ids.items() for n in range(len(found))}
    assert fetch(settings, RAW) == fetch(settings, STORED)
    assert 5 == len(fetch(settings, STORED))
