"""A query over the analytics budget is stopped by PostgreSQL and answered with a 503 naming the budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.settings import Settings, load_settings
from app.devstack import free_port
from tests.support.analytics import DAY
from tests.support.beacon import Services


@pytest.fixture
def tight(environment: dict[str, str], settings: Settings) -> Iterator[int]:
    """An analytics process whose query budget is one millisecond; yields its port."""
    port = free_port()
    env = environment | {"BEACON_ANALYTICS_PORT": str(port), "BEACON_ANALYTICS_QUERY_BUDGET": "0.001"}
    processes = Services(env, load_settings(env))
    processes.start("analytics")
    try:
        yield port
    finally:
        processes.stop("analytics")


def test_query_over_budget(settings: Settings, tight: int, dataset: None) -> None:
    """The statement is cancelled at the budget; the answer says so, with the budget, not 'unavailable'."""
    response = httpx.post(f"http://127.0.0.1:{tight}/query",
                          json={"site_id": "stats.example", "date_range": DAY, "metrics": ["visitors", "bounce_rate"],
                                "dimensions": ["visit:source"], "filters": [["is", "event:page", ["/"]]]},
                          headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=20)
    assert 503 == response.status_code, response.text
    assert "budget of 0.001 s" in response.json()["detail"]


def waiting_on_sessions(conn: psycopg.Connection[Any]) -> int:
    """Analytics statements waiting for a lock on the visits table."""
    row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND query LIKE '%FROM sessions%' AND pid <> pg_backend_pid()").fetchone()
    return int(row[0]) if row else 0


def test_caller_hanging_up_cancels_the_query(settings: Settings, serve: Callable[[str], int],
                                             dataset: None) -> None:
    """A caller that gives up closes its connection; analytics cancels the statement then, well before its
    budget (4 s) would have stopped it."""
    port = serve("analytics")
    body = {"site_id": "stats.example", "date_range": DAY, "metrics": ["visits", "views_per_visit"],
            "filters": [["is", "visit:country", ["DE"]]], "dimensions": ["visit:os"]}
    # pg_stat_activity is read once per transaction: poll it from a connection of its own, in autocommit.
    with psycopg.connect(settings.database.libpq_url) as locker, \
            psycopg.connect(settings.database.libpq_url, autocommit=True) as watcher:
        # The query's statement waits behind this lock until it is cancelled.
        locker.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
        outcome: list[str] = []

        def call() -> None:
            try:
                httpx.post(f"http://127.0.0.1:{port}/query", json=body, timeout=1.0,
                           headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token})
            except httpx.ReadTimeout:
                outcome.append("gave up")

        caller = threading.Thread(target=call)
        caller.start()
        deadline = time.monotonic() + 1.0
        while not waiting_on_sessions(watcher) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 1 == waiting_on_sessions(watcher)
        caller.join()
        assert ["gave up"] == outcome
        gave_up = time.monotonic()
        while waiting_on_sessions(watcher) and time.monotonic() < gave_up + 2.0:
            time.sleep(0.05)
        assert 0 == waiting_on_sessions(watcher)
        assert time.monotonic() - gave_up < 2.0
        locker.rollback()
