"""Redis replicated and watched by Sentinel on loopback, as the data hosts run it: one redis-server and one
Sentinel (`redis-server --sentinel`, what Debian's redis-sentinel runs) per simulated host, on free ports.

A host is lost in one of two ways: ``kill`` (SIGKILL: the kernel resets its connections, new ones are refused)
and ``freeze`` (SIGSTOP: its connections stay open and nothing answers on them, as when a host loses power
and its packets are dropped; the kernel still accepts new connections into the backlog, which then hang too).
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from app.devstack import free_port


def start_redis(directory: Path, name: str, config: str, *, sentinel: bool = False) -> subprocess.Popen[bytes]:
    """redis-server (or, with ``sentinel``, a Sentinel) on ``config`` plus its log and directory, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.conf"
    # Sentinel rewrites its configuration file: it must be a file of its own, writable.
    path.write_text(config + f"logfile {directory / (name + '.log')}\ndir {directory}\n")
    argv = ["redis-server", str(path), *(["--sentinel"] if sentinel else [])]
    return subprocess.Popen(argv, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ping(port: int, password: str, deadline: float = 15) -> None:
    """Return once the Redis (or Sentinel) on ``port`` answers PING; AssertionError after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with contextlib.suppress(redis.RedisError):
            if redis.Redis(port=port, password=password, socket_timeout=1).ping():
                return
        time.sleep(0.1)
    raise AssertionError(f"redis on {port} did not answer")


def sentinel_knows_replicas(port: int, password: str, master_name: str) -> int:
    """How many replicas of ``master_name`` the Sentinel on ``port`` knows (its ``num-slaves``).

    A Sentinel learns the replicas from the master's INFO, some moments after it starts: a master lost
    before that cannot be failed over ("-failover-abort-no-good-slave"), so fixtures wait for this.
    """
    state = redis.Redis(port=port, password=password, socket_timeout=1,
                        decode_responses=True).sentinel_master(master_name)
    return int(state["num-slaves"])  # type: ignore[index]


@dataclass
class RedisHost:
    """One simulated data host: its redis-server and its Sentinel."""

    name: str
    port: int
    sentinel_port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def kill(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGKILL)
        for process in self.processes:
            process.wait(10)

    def freeze(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGSTOP)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                # A frozen process handles SIGTERM only once it runs again.
                process.send_signal(signal.SIGKILL)
                process.wait(10)


@dataclass
class SentinelGroup:
    """``len(hosts)`` hosts: the first one's redis-server is the master, the others replicate it; every host
    runs a Sentinel (quorum: a majority)."""

    password: str
    master_name: str
    hosts: list[RedisHost]

    def client(self, port: int, db: int = 0) -> redis.Redis:
        return redis.Redis(port=port, password=self.password, db=db, socket_timeout=2, socket_connect_timeout=2)

    def master_port(self, asked: RedisHost) -> int | None:
        """The master's port according to ``asked``'s Sentinel; None when it does not answer."""
        try:
            address = redis.Redis(port=asked.sentinel_port, password=self.password, socket_timeout=1,
                                  socket_connect_timeout=1).sentinel_get_master_addr_by_name(self.master_name)
        except redis.RedisError:
            return None
        return int(address[1]) if isinstance(address, (list, tuple)) else None

    def sentinels_setting(self) -> str:
        """``BEACON_REDIS_SENTINELS``, the host that will be lost first, as in an inventory's order."""
        return ",".join(f"127.0.0.1:{host.sentinel_port}" for host in self.hosts)

    def url(self, db: int) -> str:
        """``BEACON_REDIS_URL``: with Sentinels only its password and db count, its port points nowhere."""
        return f"redis://:{self.password}@127.0.0.1:1/{db}"

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()


def start_group(directory: Path, count: int = 3, down_after_ms: int = 1000) -> SentinelGroup:
    """Start ``count`` hosts under ``directory``; stop them with :meth:`SentinelGroup.stop`.

    ``down_after_ms`` is ``sentinel down-after-milliseconds``; the failover timeout is five times it.
    """
    if shutil.which("redis-server") is None:
        raise AssertionError("redis-server is required")
    password = secrets.token_hex(16)
    group = SentinelGroup(password, "beacon", [])
    common = f"bind 127.0.0.1\nrequirepass {password}\nmasterauth {password}\nsave \"\"\nappendonly no\n"
    try:
        for number in range(count):
            host = RedisHost(f"data{number + 1}", free_port(), free_port())
            group.hosts.append(host)
            replica = f"replicaof 127.0.0.1 {group.hosts[0].port}\n" if number else ""
            host.processes.append(start_redis(directory / host.name, "redis", common + f"port {host.port}\n" + replica))
            wait_ping(host.port, password)
        master = group.hosts[0].port
        for host in group.hosts:
            host.processes.append(start_redis(directory / host.name, "sentinel", (
                f"bind 127.0.0.1\nport {host.sentinel_port}\nrequirepass {password}\n"
                f"sentinel monitor beacon 127.0.0.1 {master} {count // 2 + 1}\n"
                f"sentinel auth-pass beacon {password}\n"
                f"sentinel down-after-milliseconds beacon {down_after_ms}\n"
                f"sentinel failover-timeout beacon {down_after_ms * 5}\n"
            ), sentinel=True))
            wait_ping(host.sentinel_port, password)
    except BaseException:
        group.stop()
        raise
    return group
