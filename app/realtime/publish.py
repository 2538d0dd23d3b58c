"""Push messages to browsers from any Beacon process: publish to Redis, the realtime processes fan out.

Names a message can be addressed to (each a Redis channel ``<prefix>rt:<name>``):

- a **room** ``site:<id>``: the live room of one site; a connection joins it only with access to the site;
- a **channel**: any other name (``[a-z0-9_.:-]``), which any signed-in connection may subscribe to;
- **one user** ``user:<id>``: every connection of that user, in every realtime process;
- ``broadcast``: every connection.

:class:`WebSocketService` wraps these for asyncio code, :class:`SyncWebSocketService` for workers and the
CLI; both also read the connection statistics every realtime process writes to Redis.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import redis
import redis.asyncio as aioredis

from app.core.redis import Keys

BROADCAST = "broadcast"
CONTROL = "control"
"""Reserved: instructions to the realtime processes themselves (revoke access), never sent to clients."""
CHANNEL_RE = re.compile(r"^[a-z0-9_.:-]{1,100}$")


def site_channel(site_id: int) -> str:
    """The live room of one site (events, visitor counts)."""
    return f"site:{site_id}"


def user_channel(user_id: int) -> str:
    return f"user:{user_id}"


def room_site_id(name: str) -> int | None:
    """The site id of a room name ``site:<id>``; ``None`` for anything else."""
    prefix, _, rest = name.partition(":")
    return int(rest) if prefix == "site" and rest.isdigit() and len(rest) < 19 else None


def is_channel(name: str) -> bool:
    """A free channel name: not a room, not a user, not the broadcast name."""
    return bool(CHANNEL_RE.match(name)) and name not in (BROADCAST, CONTROL) and not name.startswith(
        ("site:", "user:"))


def stats_key(keys: Keys, process: str) -> str:
    return f"{keys.prefix}rtstats:{process}"


def stats_pattern(keys: Keys) -> str:
    return f"{keys.prefix}rtstats:*"


class ProcessStats(msgspec.Struct):
    process: str
    connections: int
    rooms: dict[str, int]
    channels: dict[str, int]
    users: int
    dropped_slow: int
    dropped_dead: int
    updated: float


class RealtimeStats(msgspec.Struct):
    connections: int
    rooms: dict[str, int]
    channels: dict[str, int]
    processes: list[ProcessStats]


def aggregate(raw: list[bytes | str | None]) -> RealtimeStats:
    processes = sorted((msgspec.json.decode(item, type=ProcessStats) for item in raw if item),
                       key=lambda p: p.process)
    rooms: dict[str, int] = {}
    channels: dict[str, int] = {}
    for proc in processes:
        for name, count in proc.rooms.items():
            rooms[name] = rooms.get(name, 0) + count
        for name, count in proc.channels.items():
            channels[name] = channels.get(name, 0) + count
    return RealtimeStats(sum(p.connections for p in processes), rooms, channels, processes)


def _encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _checked_room(room: str) -> str:
    if room_site_id(room) is None:
        raise ValueError(f"not a room name: {room!r} (expected site:<id>)")
    return room


def _checked_channel(channel: str) -> str:
    if not is_channel(channel):
        raise ValueError(f"not a channel name: {channel!r}")
    return channel


async def publish(client: aioredis.Redis, keys: Keys, channel: str, message: dict[str, Any]) -> int:
    """Publish ``message`` to ``channel``; returns how many realtime processes received it."""
    return int(await client.publish(keys.channel(channel), _encode(message)))


def publish_sync(client: redis.Redis, keys: Keys, channel: str, message: dict[str, Any]) -> int:
    """:func:`publish` for synchronous code (workers, CLI)."""
    return int(client.publish(keys.channel(channel), _encode(message)))


class WebSocketService:
    """Send to WebSocket clients from any asyncio process; each call returns the realtime processes reached."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    async def send_to_channel(self, channel: str, message: dict[str, Any]) -> int:
        return await publish(self._client, self._keys, _checked_channel(channel), message)

    async def send_to_room(self, room: str, message: dict[str, Any]) -> int:
        return await publish(self._client, self._keys, _checked_room(room), message)

    async def send_to_user(self, user_id: int, message: dict[str, Any]) -> int:
        return await publish(self._client, self._keys, user_channel(user_id), message)

    async def broadcast(self, message: dict[str, Any]) -> int:
        return await publish(self._client, self._keys, BROADCAST, message)

    async def revoke_room(self, user_id: int, room: str) -> int:
        """Take ``room`` away from every connection of the user (membership removed)."""
        return await publish(self._client, self._keys, CONTROL,
                             {"action": "leave", "user_id": user_id, "room": _checked_room(room)})

    async def close_room(self, room: str) -> int:
        """Take ``room`` away from every connection (site deleted) and close those of its share link."""
        return await publish(self._client, self._keys, CONTROL, {"action": "close_room", "room": _checked_room(room)})

    async def close_share(self, site_id: int) -> int:
        """Close the connections opened with the site's share link (link revoked or replaced)."""
        return await publish(self._client, self._keys, CONTROL, {"action": "close_share", "site_id": site_id})

    async def close_user(self, user_id: int) -> int:
        """Close every connection of the user (their sessions ended: password change, sign-out everywhere)."""
        return await publish(self._client, self._keys, CONTROL, {"action": "close_user", "user_id": user_id})

    async def stats(self) -> RealtimeStats:
        """Connections in total, per room, per channel and per process, over every realtime process."""
        names = [key async for key in self._client.scan_iter(match=stats_pattern(self._keys), count=100)]
        return aggregate(list(await self._client.mget(names)) if names else [])


class SyncWebSocketService:
    """:class:`WebSocketService` for synchronous code (Dramatiq actors, the CLI)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def send_to_channel(self, channel: str, message: dict[str, Any]) -> int:
        return publish_sync(self._client, self._keys, _checked_channel(channel), message)

    def send_to_room(self, room: str, message: dict[str, Any]) -> int:
        return publish_sync(self._client, self._keys, _checked_room(room), message)

    def send_to_user(self, user_id: int, message: dict[str, Any]) -> int:
        return publish_sync(self._client, self._keys, user_channel(user_id), message)

    def broadcast(self, message: dict[str, Any]) -> int:
        return publish_sync(self._client, self._keys, BROADCAST, message)

    def stats(self) -> RealtimeStats:
        names = list(self._client.scan_iter(match=stats_pattern(self._keys), count=100))
        return aggregate(list(self._client.mget(names)) if names else [])
