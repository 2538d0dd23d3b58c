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

from app.core.errors import ClientError
from app.core.metrics import ANALYTICS_CACHE
from app.core.redis import Keys

logger = logging.getLogger("beacon.analytics.cache")

MAX_ANSWER_BYTES = 8 * 1024 * 1024
"""Largest answer (as JSON) the service returns; a bigger one is refused with a 400 asking for fewer rows."""
MAX_ENTRY_BYTES = 1024 * 1024
"""Largest answer kept in the cache; bigger ones are computed every time (the cache cannot fill Redis)."""


class AnswerTooLarge(ClientError):
    """The answer to a query is larger than :data:`MAX_ANSWER_BYTES`."""


def _bounded(value: Any) -> bytes:
    encoded = json.dumps(value, default=str).encode()
    if len(encoded) > MAX_ANSWER_BYTES:
        raise AnswerTooLarge(f"the answer would exceed {MAX_ANSWER_BYTES // (1024 * 1024)} MiB; ask for fewer "
                             "rows (pagination.limit, a shorter date_range or fewer dimensions)")
    return encoded


def cache_key(keys: Keys, kind: str, site_id: int, params: Any) -> str:
    digest = hashlib.sha256(json.dumps([kind, site_id, params], sort_keys=True, default=str).encode()).hexdigest()
    return f"{keys.prefix}analytics:{site_id}:{digest[:32]}"


async def cached(client: aioredis.Redis, keys: Keys, ttl: float, kind: str, site_id: int, params: Any,
                 compute: Callable[[], Awaitable[Any]]) -> Any:
    """The cached answer for (kind, site, params), computing and storing it on a miss.

    Raises:
        AnswerTooLarge: the computed answer is larger than :data:`MAX_ANSWER_BYTES`.
    """
    if ttl <= 0:
        value = await compute()
        _bounded(value)
        return value
    key = cache_key(keys, kind, site_id, params)
    try:
        hit = await client.get(key)
    except Exception as exc:
        logger.warning("cache unavailable", extra={"error": str(exc)})
        return await compute()
    if hit is not None:
        ANALYTICS_CACHE.labels("hit").inc()
        return json.loads(hit)
    ANALYTICS_CACHE.labels("miss").inc()
    value = await compute()
    encoded = _bounded(value)
    if len(encoded) > MAX_ENTRY_BYTES:
        return value
    try:
        await client.set(key, encoded, px=int(ttl * 1000))
    except Exception as exc:
        logger.warning("cache unavailable", extra={"error": str(exc)})
    return value
