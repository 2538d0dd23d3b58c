"""Live presence in Redis and coalesced live messages."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import redis

from app.core.redis import Keys
from app.core.settings import Settings
from tests.support.ingest import UA
from tests.support.polling import wait_until_async


async def post(client: httpx.AsyncClient, ip: str, path: str) -> int:
    response = await client.post("/api/event", headers={"User-Agent": UA, "X-Forwarded-For": ip},
                                 content=json.dumps({"name": "pageview", "url": f"https://example.com{path}",
                                                     "domain": "example.com"}))
    return response.status_code


async def test_burst_is_coalesced_and_presence_counts_visitors(client: httpx.AsyncClient, settings: Settings,
                                                              sites: dict[str, int],
                                                              redis_client: redis.Redis) -> None:
    """60 events from 12 visitors: a few messages whose counts add up to 60; presence holds 12 visitors."""
    keys = Keys(settings.redis.key_prefix)
    pubsub = redis_client.pubsub()
    pubsub.subscribe(keys.channel(f"site:{sites['example.com']}"))
    pubsub.get_message(timeout=1)
    statuses = await asyncio.gather(*(post(client, f"198.51.100.{i % 12}", f"/p{i}") for i in range(60)))
    assert {202} == set(statuses)
    messages: list[dict[str, Any]] = []

    async def all_counted() -> bool:
        message = await asyncio.to_thread(pubsub.get_message, timeout=0.5)
        if message and message["type"] == "message":
            messages.append(json.loads(message["data"]))
        return sum(m["count"] for m in messages) >= 60

    await wait_until_async(all_counted, 3, "live messages that count all 60 events", interval=0)
    pubsub.close()
    assert 60 == sum(m["count"] for m in messages)
    assert len(messages) <= 10
    assert {"type", "site", "name", "pathname", "at", "count", "visitors"} == set(messages[-1])
    assert 12 == messages[-1]["visitors"]
    assert 12 == redis_client.zcard(f"{settings.redis.key_prefix}live:{sites['example.com']}")


async def test_presence_forgets_visitors_after_the_window(client: httpx.AsyncClient, settings: Settings,
                                                         sites: dict[str, int], redis_client: redis.Redis) -> None:
    """Visitors last seen more than 5 minutes ago are no longer live."""
    key = f"{settings.redis.key_prefix}live:{sites['example.com']}"
    redis_client.zadd(key, {"old-visitor": time.time() - 301})
    assert 202 == await post(client, "198.51.100.200", "/now")

    async def old_visitor_forgotten() -> bool:
        # The presence of a stored batch is recorded after its commit, so after the 202: poll for it.
        return redis_client.zscore(key, "old-visitor") is None

    await wait_until_async(old_visitor_forgotten, 5, "the live hook to record the batch's presence")
    assert 1 == redis_client.zcard(key)
