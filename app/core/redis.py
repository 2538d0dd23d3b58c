"""Redis clients and Beacon's key naming, built from settings on demand."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel
import redis.sentinel
from redis.connection import parse_url

from app.core.metrics import CountingConnection, CountingSyncConnection
from app.core.settings import RedisSettings


def _sentinel_options(settings: RedisSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options of the master's connections, options of the Sentinels' connections) from ``settings.url``.

    The URL keeps the password and database number; the Sentinels are asked for the master's address and
    are protected by the same password (``requirepass`` in sentinel.conf).
    """
    parsed = parse_url(settings.url)  # type: ignore[no-untyped-call]
    master = {key: parsed[key] for key in ("username", "password", "db") if parsed.get(key) is not None}
    password = parsed.get("password")
    sentinel = {"socket_connect_timeout": 1, "socket_timeout": 1, **({"password": password} if password else {})}
    return master, sentinel


def make_async_redis(settings: RedisSettings) -> aioredis.Redis:
    """An asyncio client; connections are opened lazily and shared by the process.

    With ``settings.sentinels`` the client asks the Sentinels for the current master on every new
    connection, so after a failover the next command reaches the promoted replica.
    """
    if settings.sentinels:
        master, sentinel_kwargs = _sentinel_options(settings)
        sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(settings.sentinels), sentinel_kwargs=sentinel_kwargs, socket_connect_timeout=3, socket_timeout=10,
            health_check_interval=30, **master,
        )
        client: aioredis.Redis = sentinel.master_for(settings.sentinel_master)
        return client
    return aioredis.Redis.from_url(
        settings.url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30,
        connection_class=CountingConnection,
    )


def make_redis(settings: RedisSettings) -> redis.Redis:
    """A blocking client, for workers, the scheduler and the CLI (through Sentinel when configured)."""
    if settings.sentinels:
        master, sentinel_kwargs = _sentinel_options(settings)
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(settings.sentinels), sentinel_kwargs=sentinel_kwargs, socket_connect_timeout=3, socket_timeout=10,
            **master,
        )
        client: redis.Redis = sentinel.master_for(settings.sentinel_master)  # type: ignore[no-untyped-call]
        return client
    return redis.Redis.from_url(settings.url, socket_connect_timeout=3, socket_timeout=10,
                                connection_class=CountingSyncConnection)


def sentinel_master_address(settings: RedisSettings) -> tuple[str, int] | None:
    """The master's ``(host, port)`` as the Sentinels see it now; None without Sentinels (for `beacon check`).

    Raises ``redis.sentinel.MasterNotFoundError`` when no Sentinel answers with a master.
    """
    if not settings.sentinels:
        return None
    _, sentinel_kwargs = _sentinel_options(settings)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(settings.sentinels), sentinel_kwargs=sentinel_kwargs
    )
    host, port = sentinel.discover_master(settings.sentinel_master)  # type: ignore[no-untyped-call]
    return str(host), int(port)


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
