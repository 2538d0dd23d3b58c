"""Query answers cached in Redis for ``BEACON_ANALYTICS_CACHE_TTL`` seconds.

The key is a hash of what was asked (endpoint, site, parameters), so identical dashboard queries within the
TTL cost one Redis GET. Losing Redis only loses speed: answers are then computed every time.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from app.core.redis import Keys

logger = logging.getLogger("beacon.analytics.cache")


def cache_key(keys: Keys, kind: str, site_id: int, params: Any) -> str:
    digest = hashlib.sha256(json.dumps([kind, site_id, params], sort_keys=True, default=str).encode()).hexdigest()
    return f"{keys.prefix}analytics:{site_id}:{digest[:32]}"


async def cached(client: aioredis.Redis, keys: Keys, ttl: float, kind: str, site_id: int, params: Any,
                 compute: Callable[[], Awaitable[Any]]) -> Any:
    """The cached answer for (kind, site, params), computing and storing it on a miss."""
    if ttl <= 0:
        return await compute()
    key = cache_key(keys, kind, site_id, params)
    try:
        hit = await client.get(key)
    except Exception as exc:
        logger.warning("cache unavailable", extra={"error": str(exc)})
        return await compute()
    if hit is not None:
        return json.loads(hit)
    value = await compute()
    try:
        await client.set(key, json.dumps(value, default=str), px=int(ttl * 1000))
    except Exception as exc:
        logger.warning("cache unavailable", extra={"error": str(exc)})
    return value
