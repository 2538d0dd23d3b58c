"""Fan-out of Redis pub/sub messages to this process's WebSocket connections, and its statistics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field

import msgspec
import redis.asyncio as aioredis

from app.core.redis import Keys
from app.realtime.publish import BROADCAST, CONTROL, ProcessStats, room_site_id, stats_key

logger = logging.getLogger("beacon.realtime")

QUEUE_LIMIT = 256
"""Default for messages waiting for one slow client before it is dropped, so memory stays bounded."""


@dataclass(eq=False, slots=True)
class Connection:
    user_id: int | None = None
    names: set[str] = field(default_factory=set)
    """Rooms and channels this connection receives."""
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False
    close_code: int | None = None
    """Set when the server decides to close the connection (1013 too slow, 4403 access revoked)."""
    share_site: int | None = None
    """The site whose share link opened this connection."""
    pump: asyncio.Task[None] | None = None
    """The task that writes to the socket; cancelled when the queue overflows."""
    last_seen: float = field(default_factory=time.monotonic)


class Hub:
    """One Redis subscription per process; each message goes to the connections it is addressed to."""

    def __init__(self, client: aioredis.Redis, keys: Keys, *, stats_interval: float = 2.0,
                 process: str | None = None) -> None:
        self._client = client
        self._keys = keys
        self._by_name: dict[str, set[Connection]] = defaultdict(set)
        self._by_user: dict[int, set[Connection]] = defaultdict(set)
        self._all: set[Connection] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stats_interval = stats_interval
        self.process = process or f"{socket.gethostname()}:{os.getpid()}"
        self.ready = asyncio.Event()
        self.dropped_slow = 0
        self.dropped_dead = 0

    @property
    def connections(self) -> int:
        return len(self._all)

    def add(self, conn: Connection) -> None:
        self._all.add(conn)
        if conn.user_id is not None:
            self._by_user[conn.user_id].add(conn)
        for name in conn.names:
            self._by_name[name].add(conn)

    def join(self, conn: Connection, name: str) -> None:
        conn.names.add(name)
        if conn in self._all:
            self._by_name[name].add(conn)

    def leave(self, conn: Connection, name: str) -> None:
        conn.names.discard(name)
        self._discard(self._by_name, name, conn)

    def remove(self, conn: Connection) -> None:
        self._all.discard(conn)
        for name in conn.names:
            self._discard(self._by_name, name, conn)
        if conn.user_id is not None:
            self._discard(self._by_user, conn.user_id, conn)

    @staticmethod
    def _discard(index: dict[str, set[Connection]] | dict[int, set[Connection]], key: object,
                 conn: Connection) -> None:
        members = index.get(key)  # type: ignore[call-overload]
        if members is not None:
            members.discard(conn)
            if not members:
                del index[key]  # type: ignore[arg-type]

    def _close(self, conn: Connection, code: int) -> None:
        if conn.close_code is None:
            conn.close_code = code
            if conn.pump is not None:
                conn.pump.cancel()

    def control(self, data: str) -> None:
        """Access revoked somewhere: take rooms away from connections, or close them."""
        try:
            order = json.loads(data)
        except ValueError:
            return
        action = order.get("action") if isinstance(order, dict) else None
        room = str(order.get("room", "")) if isinstance(order, dict) else ""
        if action == "leave":
            for conn in list(self._by_user.get(order.get("user_id"), ())):
                if room in conn.names:
                    self.leave(conn, room)
                    with contextlib.suppress(asyncio.QueueFull):
                        conn.queue.put_nowait(json.dumps({"type": "left", "room": room, "reason": "access revoked"}))
        elif action == "close_room":
            for conn in list(self._by_name.get(room, ())):
                if conn.share_site is not None:
                    self._close(conn, 4403)
                else:
                    self.leave(conn, room)
                    with contextlib.suppress(asyncio.QueueFull):
                        conn.queue.put_nowait(json.dumps({"type": "left", "room": room, "reason": "site deleted"}))
        elif action == "close_share":
            for conn in list(self._all):
                if conn.share_site is not None and conn.share_site == order.get("site_id"):
                    self._close(conn, 4403)

    def dispatch(self, name: str, data: str) -> None:
        if name == CONTROL:
            self.control(data)
            return
        if name == BROADCAST:
            targets: set[Connection] = self._all
        elif name.startswith("user:") and name[5:].isdigit():
            targets = self._by_user.get(int(name[5:]), set())
        else:
            targets = self._by_name.get(name, set())
        for conn in list(targets):
            try:
                conn.queue.put_nowait(data)
            except asyncio.QueueFull:
                if not conn.overflowed:
                    conn.overflowed = True
                    self.dropped_slow += 1
                    self._close(conn, 1013)

    def snapshot(self) -> ProcessStats:
        rooms: dict[str, int] = {}
        channels: dict[str, int] = {}
        for name, conns in self._by_name.items():
            (rooms if room_site_id(name) is not None else channels)[name] = len(conns)
        return ProcessStats(process=self.process, connections=len(self._all), rooms=rooms, channels=channels,
                            users=len(self._by_user), dropped_slow=self.dropped_slow,
                            dropped_dead=self.dropped_dead, updated=time.time())

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name="realtime-hub"),
                       asyncio.create_task(self._report(), name="realtime-stats")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._client.delete(stats_key(self._keys, self.process))

    async def _report(self) -> None:
        """Write this process's statistics to Redis; they expire if the process dies."""
        ttl = max(3, int(self._stats_interval * 3))
        while True:
            try:
                await self._client.set(stats_key(self._keys, self.process),
                                       msgspec.json.encode(self.snapshot()), ex=ttl)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("cannot write realtime statistics", extra={"error": str(exc)})
            await asyncio.sleep(self._stats_interval)

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
