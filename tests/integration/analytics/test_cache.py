"""Query answers cached in Redis: served within the TTL, recomputed after it, computed without Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aioredis

from app.core.redis import Keys
from app.core.settings import Settings
from services.analytics.cache import MAX_ANSWER_BYTES, MAX_ENTRY_BYTES, AnswerTooLarge, cached


async def test_hit_within_ttl_and_recomputed_after(settings: Settings, redis_client: redis.Redis) -> None:
    """A second ask within the TTL is served from Redis; after the TTL the answer is computed again."""
    calls = []

    async def compute() -> dict[str, int]:
        calls.append(1)
        return {"visitors": len(calls)}

    client = aioredis.Redis.from_url(settings.redis.url)
    keys = Keys(settings.redis.key_prefix)
    try:
        first = await cached(client, keys, 0.5, "v2", 1, {"metrics": ["visitors"]}, compute)
        second = await cached(client, keys, 0.5, "v2", 1, {"metrics": ["visitors"]}, compute)
        other = await cached(client, keys, 0.5, "v2", 2, {"metrics": ["visitors"]}, compute)
        await asyncio.sleep(0.7)
        third = await cached(client, keys, 0.5, "v2", 1, {"metrics": ["visitors"]}, compute)
    finally:
        await client.aclose()
    assert ({"visitors": 1}, {"visitors": 1}, {"visitors": 2}, {"visitors": 3}) == (first, second, other, third)


async def test_without_redis_answers_are_computed() -> None:
    """An unreachable Redis costs speed, not answers."""
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)

    async def compute() -> str:
        return "fresh"

    try:
        assert "fresh" == await cached(client, Keys("t:"), 60, "v2", 1, {}, compute)
    finally:
        await client.aclose()


async def test_entries_and_answers_are_bounded(settings: Settings, redis_client: redis.Redis) -> None:
    """An answer over MAX_ENTRY_BYTES is returned but not stored; one over MAX_ANSWER_BYTES is a 400."""
    client = aioredis.Redis.from_url(settings.redis.url)
    keys = Keys(settings.redis.key_prefix)
    big = {"results": ["x" * 1000] * (MAX_ENTRY_BYTES // 1000 + 1)}
    huge = {"results": ["x" * 1000] * (MAX_ANSWER_BYTES // 1000 + 1)}

    async def small() -> dict[str, list[str]]:
        return {"results": ["x"]}

    try:
        assert big == await cached(client, keys, 60, "v2", 1, {"big": True}, lambda: asyncio.sleep(0, big))
        assert {"results": ["x"]} == await cached(client, keys, 60, "v2", 1, {"small": True}, small)
        with pytest.raises(AnswerTooLarge, match="fewer rows"):
            await cached(client, keys, 60, "v2", 1, {"huge": True}, lambda: asyncio.sleep(0, huge))
        stored = [redis_client.strlen(key) for key in redis_client.scan_iter(f"{keys.prefix}analytics:*")]
    finally:
        await client.aclose()
    assert [len('{"results": ["x"]}')] == stored
