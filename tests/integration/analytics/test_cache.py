"""Query answers cached in Redis: served within the TTL, recomputed after it, computed without Redis."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis

from app.core.redis import Keys
from app.core.settings import Settings
from services.analytics.cache import cached


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
