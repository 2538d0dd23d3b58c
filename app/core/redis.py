"""Redis clients and Beacon's key naming, built from settings on demand."""

from __future__ import annotations

import socket
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.retry
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.connection import parse_url

from app.core.metrics import CountingConnection, CountingSyncConnection
from app.core.settings import RedisSettings


def _sentinel_options(settings: RedisSettings, retry_class: type[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options of the master's connections, options of the Sentinels' connections) from ``settings.url``.

    The URL keeps the password and database number; the Sentinels are asked for the master's address and
    are protected by the same password (``requirepass`` in sentinel.conf). Each Sentinel is asked once per
    discovery, without redis-py's default retries (~7 s with backoff for a Sentinel whose host is down): the
    client asks the next one instead. ``retry_class``: redis-py's Retry of the asyncio or the blocking client.
    """
    parsed = parse_url(settings.url)  # type: ignore[no-untyped-call]
    master = {key: parsed[key] for key in ("username", "password", "db") if parsed.get(key) is not None}
    password = parsed.get("password")
    sentinel = {"socket_connect_timeout": 1, "socket_timeout": 1, "retry": retry_class(NoBackoff(), 0),
                **({"password": password} if password else {})}
    return master, sentinel


FAILOVER_TIMEOUTS = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0}
"""Seconds to connect to and to wait for an answer from a master behind Sentinel. A Redis command of Beacon's
answers in well under a millisecond; a master that lost power answers never, and every request waiting on
it waits this long before the connection is dropped and the master asked of the Sentinels again."""

FAILOVER_KEEPALIVE = {socket.TCP_KEEPIDLE: 5, socket.TCP_KEEPINTVL: 2, socket.TCP_KEEPCNT: 3,
                      socket.TCP_USER_TIMEOUT: 10_000}
"""TCP keepalive of connections to a master behind Sentinel (tcp(7)): an idle connection to a host that lost
power is found dead after 5 + 3 x 2 s, and one with unacknowledged data after 10 s (``TCP_USER_TIMEOUT``, ms),
instead of the kernel's two hours and fifteen minutes."""


def _failover_retry(retry_class: type[Any]) -> Any:
    """Retries spanning a Sentinel failover (``down-after-milliseconds`` plus the election, ~5 s): up to 6,
    each after a random wait of up to 0.5, 1, 2, 2... s (redis-py's exponential backoff with full jitter). A
    retry reconnects, and a SentinelManagedConnection asks the Sentinels for the master when it connects."""
    return retry_class(ExponentialWithJitterBackoff(cap=2.0, base=0.5), 6)


def _failover_errors() -> list[type[Exception]]:
    """Errors retried besides redis-py's ConnectionError and TimeoutError. uvloop raises ``RuntimeError``
    ("unable to perform operation on <TCPTransport closed=True>; the handler is closed") for a write on a
    connection whose peer has gone (asyncio's own loop drops such a write silently and the read then fails
    with ConnectionError); redis-py has already dropped the connection then, so a retry reconnects."""
    return [RuntimeError]


class SentinelMasterConnection(redis.sentinel.SentinelManagedConnection):
    """A blocking connection to the master that asks the Sentinels for its address on every reconnect.

    redis-py (8.1) asks them only in ``connect()``, when the pool hands out a closed connection; a command's
    retry reconnects through ``connect_check_health()`` to the address of the previous connection, so every
    retry after a failover goes to the old master (redis-py issue #3874, open), and each connection of the
    pool spends a whole command's retries there before it is ever pointed at the new one.
    """

    def connect_to(self, address: tuple[str, int]) -> None:
        self.host, self.port = address
        super().connect_check_health(check_health=self.connection_pool.check_connection, retry_socket_connect=False)

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self._sock is None and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(check_health=check_health, retry_socket_connect=retry_socket_connect)


class AsyncSentinelMasterConnection(redis.asyncio.sentinel.SentinelManagedConnection):
    """:class:`SentinelMasterConnection` for the asyncio client."""

    async def connect_to(self, address: tuple[str, int]) -> None:
        self.host, self.port = address
        await super().connect_check_health(check_health=self.connection_pool.check_connection,
                                           retry_socket_connect=False)

    async def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if not self.is_connected and self.connection_pool.is_master:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super().connect_check_health(check_health=check_health, retry_socket_connect=retry_socket_connect)


def make_async_redis(settings: RedisSettings) -> aioredis.Redis:
    """An asyncio client; connections are opened lazily and shared by the process.

    With ``settings.sentinels`` the client asks the Sentinels for the current master on every new
    connection, so after a failover the next command reaches the promoted replica.
    """
    if settings.sentinels:
        master, sentinel_kwargs = _sentinel_options(settings, redis.asyncio.retry.Retry)
        sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(settings.sentinels), sentinel_kwargs=sentinel_kwargs, **FAILOVER_TIMEOUTS,
            socket_keepalive=True, socket_keepalive_options=FAILOVER_KEEPALIVE,
            retry=_failover_retry(redis.asyncio.retry.Retry), retry_on_error=_failover_errors(),
            health_check_interval=30, **master,
        )
        client: aioredis.Redis = sentinel.master_for(settings.sentinel_master,
                                                     connection_class=AsyncSentinelMasterConnection)
        return client
    return aioredis.Redis.from_url(
        settings.url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30,
        connection_class=CountingConnection,
    )


def make_redis(settings: RedisSettings) -> redis.Redis:
    """A blocking client, for workers, the scheduler and the CLI (through Sentinel when configured)."""
    if settings.sentinels:
        master, sentinel_kwargs = _sentinel_options(settings, redis.retry.Retry)
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(settings.sentinels), sentinel_kwargs=sentinel_kwargs, **FAILOVER_TIMEOUTS,
            socket_keepalive=True, socket_keepalive_options=FAILOVER_KEEPALIVE,
            retry=_failover_retry(redis.retry.Retry), **master,
        )
        client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            settings.sentinel_master, connection_class=SentinelMasterConnection)
        return client
    return redis.Redis.from_url(settings.url, socket_connect_timeout=3, socket_timeout=10,
                                connection_class=CountingSyncConnection)


def sentinel_master_address(settings: RedisSettings) -> tuple[str, int] | None:
    """The master's ``(host, port)`` as the Sentinels see it now; None without Sentinels (for `beacon check`).

    Raises ``redis.sentinel.MasterNotFoundError`` when no Sentinel answers with a master.
    """
    if not settings.sentinels:
        return None
    _, sentinel_kwargs = _sentinel_options(settings, redis.retry.Retry)
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
