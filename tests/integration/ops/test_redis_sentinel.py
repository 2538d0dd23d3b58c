"""Beacon's Redis clients through Sentinel: real redis-server processes (master, replica, Sentinel), a real failover.

Redis Sentinel is `redis-server --sentinel` (what Debian's redis-sentinel package runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.core.errors import ConfigError
from app.core.redis import make_async_redis, make_redis, sentinel_master_address
from app.core.settings import RedisSettings, _sentinels
from app.devstack import free_port
from tests.support.sentinel import sentinel_knows_replicas, start_redis, wait_ping

PASSWORD = secrets.token_hex(16)


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[dict[str, int]]:
    """A master, one replica and one Sentinel (quorum 1, 1 s down-after) on free loopback ports."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is required")
    ports = {"master": free_port(), "replica": free_port(), "sentinel": free_port()}
    common = f"bind 127.0.0.1\nrequirepass {PASSWORD}\nmasterauth {PASSWORD}\nsave \"\"\nappendonly no\n"
    processes = [
        start_redis(tmp_path / "master", "master", common + f"port {ports['master']}\n"),
        start_redis(tmp_path / "replica", "replica", common + f"port {ports['replica']}\n"
                                                          f"replicaof 127.0.0.1 {ports['master']}\n"),
    ]
    try:
        wait_ping(ports["master"], PASSWORD)
        wait_ping(ports["replica"], PASSWORD)
        processes.append(start_redis(tmp_path / "sentinel", "sentinel", sentinel=True, config=(
            f"bind 127.0.0.1\nport {ports['sentinel']}\nrequirepass {PASSWORD}\n"
            f"sentinel monitor beacon 127.0.0.1 {ports['master']} 1\n"
            f"sentinel auth-pass beacon {PASSWORD}\n"
            "sentinel down-after-milliseconds beacon 1000\nsentinel failover-timeout beacon 5000\n"
        )))
        wait_ping(ports["sentinel"], PASSWORD)
        deadline = time.monotonic() + 30
        while sentinel_knows_replicas(ports["sentinel"], PASSWORD, "beacon") < 1:
            assert time.monotonic() < deadline, "the Sentinel never learned of the replica"
            time.sleep(0.2)
        yield ports
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)


def _settings(ports: dict[str, int]) -> RedisSettings:
    # The URL's host and port point nowhere on purpose: with Sentinels only its password and db count.
    return RedisSettings(url=f"redis://:{PASSWORD}@127.0.0.1:1/3", sentinels=(("127.0.0.1", ports["sentinel"]),))


def test_sentinel_setting_is_parsed_and_rejected_when_malformed() -> None:
    assert (("10.0.0.1", 26379), ("redis-b", 26380)) == _sentinels(" 10.0.0.1:26379, redis-b:26380 ,")
    assert () == _sentinels("")
    with pytest.raises(ConfigError, match="'redis-b' is not host:port"):
        _sentinels("10.0.0.1:26379,redis-b")


def test_without_sentinels_the_url_is_used_as_before() -> None:
    settings = RedisSettings(url="redis://:pw@127.0.0.1:6390/2")
    assert sentinel_master_address(settings) is None
    kwargs = make_redis(settings).connection_pool.connection_kwargs
    assert (6390, 2) == (kwargs["port"], kwargs["db"])


def _sentinel_log(tmp_path: Path) -> str:
    """The Sentinel's own account of the failover, for an assertion message."""
    path = tmp_path / "sentinel" / "sentinel.log"
    return path.read_text()[-3000:] if path.exists() else "(no sentinel log)"


def test_clients_follow_the_master_through_a_failover(cluster: dict[str, int], tmp_path: Path) -> None:
    """Blocking and asyncio clients write to the master, and to the promoted replica after the master dies."""
    settings = _settings(cluster)
    assert ("127.0.0.1", cluster["master"]) == sentinel_master_address(settings)
    client = make_redis(settings)
    client.set("before", "1")
    # Replication is asynchronous: wait until the replica has the write (WAIT numreplicas timeout-ms).
    assert 1 == client.wait(1, 10_000)
    # db 3 from the URL, on the master's port.
    assert b"1" == redis.Redis(port=cluster["master"], password=PASSWORD, db=3).get("before")

    redis.Redis(port=cluster["master"], password=PASSWORD).shutdown(nosave=True)
    deadline = time.monotonic() + 60
    written = False
    while not written and time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            written = bool(client.set("after", "2"))
        time.sleep(0.2)
    assert written, f"no write reached a master within 60 s of the master's shutdown:\n{_sentinel_log(tmp_path)}"
    try:
        assert ("127.0.0.1", cluster["replica"]) == sentinel_master_address(settings)
    except redis.RedisError as error:
        raise AssertionError(f"{error!r}\n{_sentinel_log(tmp_path)}") from error
    replica = redis.Redis(port=cluster["replica"], password=PASSWORD, db=3)
    assert (b"1", b"2") == (replica.get("before"), replica.get("after"))

    async def async_round_trip() -> bytes | None:
        async_client = make_async_redis(settings)
        try:
            await async_client.set("async", "3")
            return await async_client.get("async")  # type: ignore[no-any-return]
        finally:
            await async_client.aclose()
            # The Sentinels' own connections belong to the pool's manager, not to the master's client.
            for sentinel in async_client.connection_pool.sentinel_manager.sentinels:  # type: ignore[attr-defined]
                await sentinel.aclose()

    assert b"3" == asyncio.run(async_round_trip())
