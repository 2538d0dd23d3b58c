"""Engagement events of Plausible's tracker: stored apart from the events, in the visit of their page."""

from __future__ import annotations

import json

import httpx

from app.core.settings import Settings
from tests.support.ingest import UA, sql

HEADERS = {"User-Agent": UA, "X-Forwarded-For": "203.0.113.20"}


async def test_engagement_is_stored_apart_in_the_pages_visit(client: httpx.AsyncClient, settings: Settings) -> None:
    """A pageview then its engagement (as the tracker sends them): one event, one engagement, the same visit."""
    for payload in ({"n": "pageview", "u": "https://example.com/post", "d": "example.com", "p": {"a": "b"}},
                    {"n": "engagement", "u": "https://example.com/post", "d": "example.com", "sd": 73, "e": 4200,
                     "p": {"a": "b"}}):
        response = await client.post("/api/event", headers=HEADERS, content=json.dumps(payload))
        assert 202 == response.status_code
    events = sql(settings, "SELECT name, session_id, visitor_id FROM events")
    engagements = sql(settings, "SELECT pathname, scroll_depth, engagement_time, props, session_id, visitor_id "
                                "FROM engagements")
    assert [("pageview", events[0][1], events[0][2])] == events
    assert [("/post", 73, 4200, {"a": "b"}, events[0][1], events[0][2])] == engagements
    assert [(1, 1)] == sql(settings, "SELECT pageviews, events FROM sessions")


async def test_engagement_with_unknown_depth(client: httpx.AsyncClient, settings: Settings) -> None:
    """A depth the tracker could not measure is stored as unknown, not as 0."""
    response = await client.post("/api/event", headers=HEADERS, content=json.dumps(
        {"n": "engagement", "u": "https://example.com/", "d": "example.com", "sd": None, "e": 10}))
    assert 202 == response.status_code
    assert [(None, 10)] == sql(settings, "SELECT scroll_depth, engagement_time FROM engagements")
