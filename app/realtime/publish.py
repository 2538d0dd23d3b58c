"""Push a message to browsers from any Beacon process: publish it to Redis, realtime fans it out."""

from __future__ import annotations

import json
from typing import Any

import redis
import redis.asyncio as aioredis

from app.core.redis import Keys


def site_channel(site_id: int) -> str:
    """The live channel of one site (events, visitor counts)."""
    return f"site:{site_id}"


async def publish(client: aioredis.Redis, keys: Keys, channel: str, message: dict[str, Any]) -> int:
    """Publish ``message`` to ``channel``; returns how many realtime processes received it."""
    return int(await client.publish(keys.channel(channel), json.dumps(message)))


def publish_sync(client: redis.Redis, keys: Keys, channel: str, message: dict[str, Any]) -> int:
    """:func:`publish` for synchronous code (workers, CLI)."""
    return int(client.publish(keys.channel(channel), json.dumps(message)))
