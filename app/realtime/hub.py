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

import msgspec
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.client import PubSub

from app.core.metrics import REALTIME_CONNECTIONS, REALTIME_MESSAGES, REALTIME_ROOMS, REALTIME_SLOW_DROPPED
from app.core.redis import Keys
from app.realtime.publish import BROADCAST, CONTROL, ProcessStats, room_site_id, stats_key
from app.realtime.server import WebSocket, WebSocketServer, text_frame

logger = logging.getLogger("beacon.realtime")

PING = text_frame(b'{"type":"ping"}')
LIVENESS_PING = "beacon-realtime-liveness"
"""The argument of the PING the hub sends down its subscription to learn that the master still answers."""


class Connection(WebSocket):
    """A WebSocket with what it is granted: the rooms and channels it receives, and whose it is."""

    __slots__ = ("granted", "names", "share_site", "user_id")

    def __init__(self, server: WebSocketServer) -> None:
        super().__init__(server)
        self.user_id: int | None = None
        self.names: set[str] = set()
        """Rooms and channels this connection receives."""
        self.granted: frozenset[str] = frozenset()
        """Rooms granted at the handshake (share link, signed token): joined at once, and joinable again."""
        self.share_site: int | None = None
        """The site whose share link opened this connection."""


class Hub:
    """One Redis subscription per process; each message goes to the connections it is addressed to."""

    def __init__(self, client: aioredis.Redis, keys: Keys, *, stats_interval: float = 2.0,
                 heartbeat_interval: float = 25.0, heartbeat_timeout: float = 75.0, process: str | None = None,
                 liveness: float = 2.0) -> None:
        self._client = client
        self._keys = keys
        self._by_name: dict[str, set[Connection]] = defaultdict(set)
        self._by_user: dict[int, set[Connection]] = defaultdict(set)
        self._all: set[Connection] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stats_interval = stats_interval
        self._heartbeat = (heartbeat_interval, heartbeat_timeout)
        self._liveness = liveness
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
                    conn.send(json.dumps({"type": "left", "room": room, "reason": "access revoked"}))
        elif action == "close_room":
            for conn in list(self._by_name.get(room, ())):
                if conn.share_site is not None:
                    conn.close(4403, "access revoked")
                else:
                    self.leave(conn, room)
                    conn.send(json.dumps({"type": "left", "room": room, "reason": "site deleted"}))
        elif action == "close_user":
            for conn in list(self._by_user.get(order.get("user_id"), ())):
                conn.close(4401, "signed out")
        elif action == "close_share":
            for conn in list(self._all):
                if conn.share_site is not None and conn.share_site == order.get("site_id"):
                    conn.close(4403, "access revoked")

    def dispatch(self, name: str, data: bytes) -> None:
        """Write one published message to every connection it is addressed to: one frame built, no awaiting."""
        if name == CONTROL:
            self.control(data.decode())
            return
        if name == BROADCAST:
            targets: set[Connection] = self._all
        elif name.startswith("user:") and name[5:].isdigit():
            targets = self._by_user.get(int(name[5:]), set())
        else:
            targets = self._by_name.get(name, set())
        if not targets:
            return
        frame = text_frame(data)
        sent = 0
        for conn in tuple(targets):  # closing a slow client may change the sets later
            if conn.send_frame(frame):
                sent += 1
            else:
                self.dropped_slow += 1
                REALTIME_SLOW_DROPPED.inc()
        REALTIME_MESSAGES.inc(sent)

    def sweep(self, timeout: float) -> None:
        """Heartbeat: close connections silent for longer than ``timeout`` (4408), ping the others."""
        dead_before = time.monotonic() - timeout
        for conn in tuple(self._all):
            if conn.last_seen < dead_before:
                if conn.open:
                    self.dropped_dead += 1
                    conn.close(4408, "no heartbeat")
            elif not conn.send_frame(PING):
                self.dropped_slow += 1
                REALTIME_SLOW_DROPPED.inc()

    def snapshot(self) -> ProcessStats:
        rooms: dict[str, int] = {}
        channels: dict[str, int] = {}
        for name, conns in self._by_name.items():
            (rooms if room_site_id(name) is not None else channels)[name] = len(conns)
        # This process's share of the watcher's gauges (livesum over its processes).
        REALTIME_CONNECTIONS.set(len(self._all))
        REALTIME_ROOMS.set(len(rooms))
        return ProcessStats(process=self.process, connections=len(self._all), rooms=rooms, channels=channels,
                            users=len(self._by_user), dropped_slow=self.dropped_slow,
                            dropped_dead=self.dropped_dead, updated=time.time())

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name="realtime-hub"),
                       asyncio.create_task(self._report(), name="realtime-stats"),
                       asyncio.create_task(self._heartbeats(), name="realtime-heartbeats")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._client.delete(stats_key(self._keys, self.process))

    async def _heartbeats(self) -> None:
        """One task for every connection's heartbeat: a timer per connection would cost memory while idle."""
        interval, timeout = self._heartbeat
        while True:
            await asyncio.sleep(interval)
            self.sweep(timeout)

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

    async def _listen(self, pubsub: PubSub) -> None:
        """Dispatch the subscription's messages until it fails.

        After ``liveness`` seconds without a message a PING goes down the subscription; if nothing (its PONG)
        comes back within ``liveness`` seconds more, ``redis.ConnectionError`` is raised and :meth:`_run`
        subscribes again, on the master Sentinel names now. A master whose host lost power sends no reset: a
        subscription waiting on it would otherwise wait for ever while events are published on its successor.
        """
        loop = asyncio.get_running_loop()
        heard, pinged = loop.time(), False
        while True:
            message = await pubsub.get_message(timeout=self._liveness)
            now = loop.time()
            if message is not None:
                heard, pinged = now, False
                if message["type"] == "pmessage":
                    channel = self._keys.channel_name(message["channel"].decode())
                    data = message["data"]
                    self.dispatch(channel, data if isinstance(data, bytes) else str(data).encode())
            elif pinged and now - heard >= 2 * self._liveness:
                raise redis.exceptions.ConnectionError(f"the subscription has been silent for {now - heard:.1f} s")
            elif not pinged and now - heard >= self._liveness:
                await pubsub.ping(LIVENESS_PING)
                pinged = True

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.psubscribe(self._keys.channel_pattern())
                    self.ready.set()
                    delay = 0.5
                    await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.ready.clear()
                logger.warning("redis subscription lost; reconnecting", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
