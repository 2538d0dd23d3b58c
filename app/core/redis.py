"""Redis clients and Beacon's key naming, built from settings on demand."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from app.core.metrics import CountingConnection, CountingSyncConnection
from app.core.settings import RedisSettings


def make_async_redis(settings: RedisSettings) -> aioredis.Redis:
    """An asyncio client; connections are opened lazily and shared by the process."""
    return aioredis.Redis.from_url(
        settings.url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30,
        connection_class=CountingConnection,
    )


def make_redis(settings: RedisSettings) -> redis.Redis:
    """A blocking client, for workers, the scheduler and the CLI."""
    return redis.Redis.from_url(settings.url, socket_connect_timeout=3, socket_timeout=10,
                                connection_class=CountingSyncConnection)


class Keys:
    """Every Redis key and channel name Beacon uses, in one place."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def heartbeat(self, role: str) -> str:
        """Unix time of the last heartbeat of ``worker`` or ``scheduler``."""
        return f"{self.prefix}heartbeat:{role}"

    def scheduler_lock(self) -> str:
        """Held by the one scheduler allowed to enqueue periodic jobs."""
        return f"{self.prefix}scheduler:lock"

    def compute_detector(self, site_id: str, metric: str) -> str:
        """The compute service's stored anomaly detector of a site's hourly metric (services/compute/hourly.py)."""
        return f"{self.prefix}compute:detector:{site_id}:{metric}"

    def channel(self, name: str) -> str:
        """Pub/sub channel fanned out to WebSocket clients by the realtime service."""
        return f"{self.prefix}rt:{name}"

    def channel_pattern(self) -> str:
        return f"{self.prefix}rt:*"

    def channel_name(self, redis_channel: str) -> str:
        """Inverse of :meth:`channel`."""
        return redis_channel.removeprefix(f"{self.prefix}rt:")
