"""Redis side of ingest: rate-limit counters (the writer's RATE_SCRIPT checks them), live-visitor presence,
and coalesced live messages."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import redis.asyncio as aioredis

from app.core.redis import Keys
from app.core.settings import IngestSettings
from app.realtime.publish import publish, site_channel
from services.ingest.writer import LimitCheck, Row

logger = logging.getLogger("beacon.ingest")

# Presence of a batch's visitors: ARGV[1] the time now, ARGV[2] the window in seconds, ARGV[3] the presence
# keys' prefix, ARGV[4] space-separated pairs of site id and visitor id. Per site: the visitors' scores set to
# now, those older than the window dropped, the key kept for twice the window. Returns, space-separated,
# each site id and its visitor count.
PRESENCE_SCRIPT = """
local now, window, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local order, members = {}, {}
local site = nil
for field in string.gmatch(ARGV[4], '%S+') do
  if site == nil then
    site = field
  else
    if members[site] == nil then
      members[site] = {}
      order[#order + 1] = site
    end
    local list = members[site]
    list[#list + 1] = now
    list[#list + 1] = field
    site = nil
  end
end
local out = {}
for _, id in ipairs(order) do
  local key, list = prefix .. id, members[id]
  for i = 1, #list, 2000 do
    redis.call('ZADD', key, unpack(list, i, math.min(i + 1999, #list)))
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  redis.call('EXPIRE', key, window * 2)
  out[#out + 1] = id
  out[#out + 1] = redis.call('ZCARD', key)
end
return table.concat(out, ' ')
"""


class RateLimiter:
    """Per-IP and per-site event limits held exactly across processes: the counters a request must pass.

    The check itself runs in the batch writer (one script call for all the requests of a batch), so it costs
    one Redis round trip per batch rather than one per request.
    """

    def __init__(self, keys: Keys, settings: IngestSettings, secret: str) -> None:
        self._keys = keys
        self._settings = settings
        self._secret = secret.encode()[:64]

    def check_for(self, ip: str, site_ids: Sequence[int]) -> LimitCheck | None:
        """The counters of this client and these sites in the current window (None: limits are off)."""
        if not self._settings.rate_per_ip and not self._settings.rate_per_site:
            return None
        window = max(self._settings.rate_window, 1)
        now = time.time()
        slot = int(now // window)
        retry_after = max(int((slot + 1) * window - now) + 1, 1)
        # Redis never sees the address itself: a keyed hash of it.
        client = hashlib.blake2b(ip.encode(), key=self._secret, digest_size=8).hexdigest()
        keys = [f"{self._keys.prefix}rl:ip:{client}:{slot}",
                *(f"{self._keys.prefix}rl:site:{site_id}:{slot}" for site_id in site_ids)]
        return LimitCheck(keys, [self._settings.rate_per_ip, self._settings.rate_per_site, window * 2], retry_after)


class Live:
    """Presence (visitors seen in the last minutes, a sorted set per site) and live messages.

    Messages are coalesced: whatever one process stored for a site within ``live_interval_ms`` goes out as
    one message (the latest event, with ``count`` events and the current ``visitors``), so a busy site sends
    browsers a few messages a second, not one per event.
    """

    def __init__(self, redis: aioredis.Redis, keys: Keys, settings: IngestSettings) -> None:
        self._redis = redis
        self._keys = keys
        self._settings = settings
        self._pending: dict[int, dict[str, Any]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._presence_script = redis.register_script(PRESENCE_SCRIPT)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-live")

    async def stop(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def after_commit(self, rows: Sequence[Row]) -> None:
        """Record presence for stored rows and queue their live message."""
        now = time.time()
        per_site: dict[int, dict[int, None]] = {}
        latest: dict[int, tuple[Row, int]] = {}
        for row in rows:
            per_site.setdefault(row.site_id, {})[row.visitor_id] = None
            previous = latest.get(row.site_id)
            latest[row.site_id] = (row, 1 if previous is None else previous[1] + 1)
        packed = " ".join(f"{site_id} {visitor}" for site_id, visitors in per_site.items() for visitor in visitors)
        window = self._settings.presence_window
        reply = (await self._presence_script(args=[repr(now), window, f"{self._keys.prefix}live:", packed])).split()
        counts = {int(site_id): int(count) for site_id, count in zip(reply[::2], reply[1::2], strict=True)}
        for site_id, (row, count) in latest.items():
            message = self._pending.get(site_id)
            self._pending[site_id] = {
                "type": "event", "site": row.domain, "name": row.name, "pathname": row.pathname,
                "at": row.timestamp.astimezone(UTC).isoformat(),
                "count": count + (0 if message is None else int(message["count"])),
                "visitors": counts[site_id],
            }
        self._wake.set()

    async def _run(self) -> None:
        interval = self._settings.live_interval_ms / 1000
        while not self._closing or self._pending:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, {}
            for site_id, message in pending.items():
                try:
                    await publish(self._redis, self._keys, site_channel(site_id), message)
                except Exception as exc:
                    logger.warning("live publish failed", extra={"error": str(exc)})
            if not self._closing:
                await asyncio.sleep(interval)
