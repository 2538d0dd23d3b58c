"""Visits (sessions): 30 minutes of inactivity end one, salts rotate without cutting one at midnight."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from app.core.settings import IngestSettings, Settings
from services.ingest.logic import visitor_id
from tests.support.ingest import UA, ingest_client, sql

# What the analytics engine may rely on: a visit's figures derived from its events alone.
DERIVED = """
SELECT e.site_id, e.session_id, min(e.timestamp), max(e.timestamp),
       (array_agg(e.pathname ORDER BY e.timestamp, e.id) FILTER (WHERE e.name = 'pageview'))[1],
       (array_agg(e.pathname ORDER BY e.timestamp DESC, e.id DESC) FILTER (WHERE e.name = 'pageview'))[1],
       count(*) FILTER (WHERE e.name = 'pageview'), count(*),
       count(*) FILTER (WHERE e.name <> 'pageview' AND e.interactive)
FROM events e GROUP BY e.site_id, e.session_id ORDER BY 2
"""
STORED = """
SELECT site_id, session_id, started_at, ended_at, entry_page, exit_page, pageviews, events, interactive_events
FROM sessions ORDER BY 2
"""


async def send(client: httpx.AsyncClient, name: str, path: str, ip: str, interactive: bool = True) -> None:
    response = await client.post("/api/event", headers={"User-Agent": UA, "X-Forwarded-For": ip},
                                 content=json.dumps({"name": name, "url": f"https://example.com{path}",
                                                     "domain": "example.com", "interactive": interactive}))
    assert 202 == response.status_code


async def test_visit_figures_match_their_events(client: httpx.AsyncClient, settings: Settings) -> None:
    """Entry and exit page, pageviews, events, duration and bounce: the sessions table equals its events."""
    await send(client, "pageview", "/a", "198.51.100.1")
    await send(client, "Signup", "/a", "198.51.100.1")
    await send(client, "pageview", "/b", "198.51.100.1")
    await send(client, "pageview", "/c", "198.51.100.1")
    await send(client, "Scroll", "/c", "198.51.100.1")
    await send(client, "pageview", "/landing", "198.51.100.2")
    await send(client, "Autoplay", "/landing", "198.51.100.2", interactive=False)
    stored = sql(settings, STORED)
    assert sql(settings, DERIVED) == stored
    figures = sorted((row[4], row[5], row[6], row[7], row[8]) for row in stored)
    assert [("/a", "/c", 3, 5, 2), ("/landing", "/landing", 1, 2, 0)] == figures
    bounces = sql(settings, "SELECT entry_page FROM sessions WHERE pageviews + interactive_events <= 1")
    assert [("/landing",)] == bounces
    durations = sql(settings, "SELECT ended_at - started_at >= interval '0' FROM sessions")
    assert [(True,), (True,)] == durations


async def test_inactivity_ends_a_visit(settings: Settings, sites: dict[str, int]) -> None:
    """After the timeout (30 minutes; one second here) the same visitor starts a new visit."""
    async with ingest_client(settings, IngestSettings(session_timeout=1)) as client:
        await send(client, "pageview", "/first", "198.51.100.3")
        await send(client, "pageview", "/second", "198.51.100.3")
        await asyncio.sleep(2.1)
        await send(client, "pageview", "/third", "198.51.100.3")
    visits = sql(settings, "SELECT entry_page, exit_page, pageviews FROM sessions ORDER BY started_at")
    assert [("/first", "/second", 2), ("/third", "/third", 1)] == visits
    assert 1 == len(sql(settings, "SELECT DISTINCT visitor_id FROM events"))


async def test_visit_continues_across_salt_rotation(settings: Settings, sites: dict[str, int]) -> None:
    """A visit begun under yesterday's salt keeps its visitor id and visit after today's salt appears."""
    yesterday, today = b"y" * 32, b"t" * 32
    sql(settings, "INSERT INTO salts (salt, created_at) VALUES (:s, now() - interval '23 hours 59 minutes')",
        {"s": yesterday})
    async with ingest_client(settings) as client:
        await send(client, "pageview", "/before-midnight", "198.51.100.4")
    sql(settings, "INSERT INTO salts (salt) VALUES (:s)", {"s": today})  # what rotate_salts does at the day's end
    async with ingest_client(settings) as client:
        await send(client, "pageview", "/after-midnight", "198.51.100.4")
        await send(client, "pageview", "/new-visitor", "198.51.100.5")
    events = sql(settings, "SELECT pathname, visitor_id, session_id FROM events ORDER BY id")
    old_id = visitor_id(yesterday, "example.com", "198.51.100.4", UA)
    new_id = visitor_id(today, "example.com", "198.51.100.5", UA)
    assert [old_id, old_id, new_id] == [row[1] for row in events]
    assert events[0][2] == events[1][2] != events[2][2]
    assert [("/before-midnight", "/after-midnight", 2)] == sql(
        settings, "SELECT entry_page, exit_page, pageviews FROM sessions WHERE visitor_id = :v", {"v": old_id})


@pytest.mark.parametrize("age", ["49 hours"])
async def test_salts_older_than_48_hours_are_never_used(settings: Settings, sites: dict[str, int], age: str) -> None:
    """An expired salt is ignored: a fresh salt is created for today."""
    sql(settings, f"INSERT INTO salts (salt, created_at) VALUES (:s, now() - interval '{age}')", {"s": b"o" * 32})
    async with ingest_client(settings) as client:
        await send(client, "pageview", "/", "198.51.100.6")
    (stored,) = sql(settings, "SELECT visitor_id FROM events")[0]
    assert visitor_id(b"o" * 32, "example.com", "198.51.100.6", UA) != stored
    assert 2 == len(sql(settings, "SELECT id FROM salts"))
