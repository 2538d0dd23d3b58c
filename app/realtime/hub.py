"""Fan-out of Redis pub/sub messages to this process's WebSocket connections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from app.core.redis import Keys

logger = logging.getLogger("beacon.realtime")

QUEUE_LIMIT = 256
"""Messages waiting for one slow client before it is dropped, so memory stays bounded."""


@dataclass(eq=False)
class Connection:
    channels: frozenset[str]
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)


class Hub:
    """One Redis subscription per process; each message goes to the connections of its channel."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._by_channel: dict[str, set[Connection]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    @property
    def connections(self) -> int:
        return len({conn for conns in self._by_channel.values() for conn in conns})

    def add(self, conn: Connection) -> None:
        for channel in conn.channels:
            self._by_channel[channel].add(conn)

    def remove(self, conn: Connection) -> None:
        for channel in conn.channels:
            members = self._by_channel.get(channel)
            if members is not None:
                members.discard(conn)
                if not members:
                    del self._by_channel[channel]

    def dispatch(self, channel: str, data: str) -> None:
        for conn in list(self._by_channel.get(channel, ())):
            try:
                conn.queue.put_nowait(data)
            except asyncio.QueueFull:
                conn.overflowed.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="realtime-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.psubscribe(self._keys.channel_pattern())
                    self.ready.set()
                    delay = 0.5
                    async for message in pubsub.listen():
                        if message["type"] != "pmessage":
                            continue
                        channel = self._keys.channel_name(message["channel"].decode())
                        data = message["data"]
                        self.dispatch(channel, data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.ready.clear()
                logger.warning("redis subscription lost; reconnecting", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
