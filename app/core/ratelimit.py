"""Fixed-window counters in Redis, checked and incremented in one atomic step (a Lua script).

Litestar's rate-limit middleware reads and then writes its counter, so concurrent requests in several processes
all pass the check; one script per attempt lets exactly ``limit`` through.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int
    """Seconds until the next attempt may pass (0 when allowed)."""


_COUNT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then return {0, redis.call('PTTL', KEYS[1])} end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return {1, 0}
"""


async def count_in_window(client: aioredis.Redis, key: str, limit: int, window: int) -> Verdict:
    """Count one attempt under ``key`` in a fixed window of ``window`` seconds, atomically; not allowed (and
    not counted) once ``limit`` attempts were counted in it. A ``limit`` of 0 or less allows everything."""
    if limit <= 0:
        return Verdict(True, 0)
    allowed, pttl = await client.eval(_COUNT, 1, key, limit, window)
    return Verdict(bool(allowed), 0 if allowed else max(1, (int(pttl) + 999) // 1000))
