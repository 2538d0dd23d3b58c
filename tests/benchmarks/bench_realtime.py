"""Realtime benchmark: delivery latency of one message to 1,000 WebSocket clients through Nginx, and memory
per idle connection of one realtime process holding 10,000 connections.

    .venv/bin/python -m tests.benchmarks.bench_realtime [--clients 1000] [--rounds 20] [--idle 10000]
        [--client-processes 2]

Starts its own Redis, one ``beacon serve realtime`` process and Nginx (the project's site template, TLS) on
free ports in a temporary directory, and stops them at the end. Clients authenticate with signed tokens for
one room; each message carries the time it was published, and latency is measured on receipt. The 10,000
idle connections go straight to the realtime process (Nginx's dev config allows 4,096 connections per
worker, and through Nginx every client costs two). Prints a Markdown table.

Latency is measured three ways, because on 2 shared cores the clients' own work is part of each figure:
``websockets`` clients in this process (each delivery decoded by the library, then ``json.loads``), the same
spread over ``--client-processes`` processes, and lean clients in this process: plain asyncio TLS
connections that take the time when the frame arrives (``data_received``) and read the frame header by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import secrets
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import redis.asyncio as aioredis
import uvloop
import websockets

from app.core.redis import Keys
from app.core.settings import CODE_DIR, DEFAULT_PORTS, load_settings
from app.core.tokens import sign_token
from app.devstack import Nginx, Redis, beacon_environment, free_port, wait_for_port
from app.realtime.publish import WebSocketService

ROOM = "site:1"


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def open_clients(url: str, count: int, ssl_context: ssl.SSLContext | None, batch: int = 200) -> list[Any]:
    sockets: list[Any] = []

    async def one() -> Any:
        socket = await websockets.connect(url, ssl=ssl_context, ping_interval=None, max_queue=64,
                                          open_timeout=60, compression=None)
        await socket.recv()  # hello
        return socket

    for start in range(0, count, batch):
        sockets.extend(await asyncio.gather(*(one() for _ in range(min(batch, count - start)))))
    return sockets


async def latency(service: WebSocketService, sockets: list[Any], rounds: int) -> list[float]:
    samples: list[float] = []

    async def receive(socket: Any) -> float:
        while True:
            message = json.loads(await socket.recv())
            if message.get("type") == "bench":
                return time.time() - float(message["t"])

    for _ in range(rounds):
        waiting = [asyncio.create_task(receive(s)) for s in sockets]
        await asyncio.sleep(0.05)
        await service.send_to_room(ROOM, {"type": "bench", "t": time.time()})
        samples.extend(await asyncio.wait_for(asyncio.gather(*waiting), 60))
        await asyncio.sleep(0.2)
    return samples


def _client_process(url: str, cafile: str | None, count: int, rounds: int, conn: Any) -> None:
    """A child process holding ``count`` clients: reports ready, then the latency of each delivery."""
    raise_fd_limit()
    context = ssl.create_default_context(cafile=cafile) if cafile else None

    async def main() -> list[float]:
        sockets = await open_clients(url, count, context)
        conn.send("ready")
        samples: list[float] = []

        async def receive(socket: Any) -> None:
            got = 0
            while got < rounds:
                message = json.loads(await socket.recv())
                if message.get("type") == "bench":
                    samples.append(time.time() - float(message["t"]))
                    got += 1

        await asyncio.wait_for(asyncio.gather(*(receive(s) for s in sockets)), 120)
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
        return samples


    conn.send(uvloop.run(main()))


async def latency_multiprocess(service: WebSocketService, url: str, cafile: str | None, clients: int,
                               rounds: int, processes: int) -> list[float]:
    """Like :func:`latency`, with the clients spread over ``processes`` child processes."""
    ctx = multiprocessing.get_context("spawn")
    pipes, children = [], []
    for index in range(processes):
        parent, child = ctx.Pipe()
        share = clients // processes + (1 if index < clients % processes else 0)
        proc = ctx.Process(target=_client_process, args=(url, cafile, share, rounds, child))
        proc.start()
        pipes.append(parent)
        children.append(proc)
    for pipe in pipes:
        assert "ready" == await asyncio.to_thread(pipe.recv)
    for _ in range(rounds):
        await asyncio.sleep(0.3)
        await service.send_to_room(ROOM, {"type": "bench", "t": time.time()})
    samples: list[float] = []
    for pipe in pipes:
        samples.extend(await asyncio.to_thread(pipe.recv))
    for proc in children:
        proc.join(30)
    return samples


class LeanClient(asyncio.Protocol):
    """A WebSocket client reduced to what the measurement needs: handshake, then unmasked text frames."""

    def __init__(self, samples: list[float]) -> None:
        self.samples = samples
        self.buffer = b""
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        if not self.opened.done():
            head, found, self.buffer = self.buffer.partition(b"\r\n\r\n")
            if not found:
                self.buffer = head
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(RuntimeError(head.decode(errors="replace")))
                return
            self.opened.set_result(None)
        while len(self.buffer) >= 2:
            size, start = self.buffer[1] & 0x7F, 2
            if size == 126:
                size, start = int.from_bytes(self.buffer[2:4]), 4
            elif size == 127:
                size, start = int.from_bytes(self.buffer[2:10]), 10
            if len(self.buffer) < start + size:
                return
            payload, self.buffer = self.buffer[start:start + size], self.buffer[start + size:]
            if b'"bench"' in payload:
                self.samples.append(now - float(json.loads(payload)["t"]))


async def latency_lean(service: WebSocketService, host: str, port: int, path: str, context: ssl.SSLContext,
                       clients: int, rounds: int) -> list[float]:
    """Like :func:`latency`, with :class:`LeanClient` connections."""
    loop = asyncio.get_running_loop()
    samples: list[float] = []
    request = (f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    connections: list[LeanClient] = []

    async def one() -> LeanClient:
        _transport, client = await loop.create_connection(lambda: LeanClient(samples), host, port, ssl=context,
                                                          server_hostname="localhost")
        assert client.transport is not None
        client.transport.write(request)
        await asyncio.wait_for(client.opened, 60)
        return client

    for start in range(0, clients, 200):
        connections.extend(await asyncio.gather(*(one() for _ in range(min(200, clients - start)))))
    for round_ in range(rounds):
        await asyncio.sleep(0.3)
        await service.send_to_room(ROOM, {"type": "bench", "t": time.time()})
        deadline = time.monotonic() + 60
        while len(samples) < (round_ + 1) * clients and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    for client in connections:
        if client.transport is not None:
            client.transport.close()
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> dict[str, str]:
    results: dict[str, str] = {}
    state = Path(tempfile.mkdtemp(prefix="beacon-bench-"))
    redis_server = Redis(state / "redis", free_port(), secrets.token_urlsafe(16))
    ports = {name: free_port() for name in DEFAULT_PORTS}
    env = beacon_environment(home=CODE_DIR, state=state, database_url="postgresql://bench:bench@127.0.0.1:1/bench",
                             redis_url="", secret_key=secrets.token_urlsafe(32), internal_token="bench",
                             base_url="https://localhost", ports=ports)
    nginx = Nginx(state / "nginx", free_port(), free_port(),
                  {"api": ["127.0.0.1:1"], "ingest": ["127.0.0.1:1"], "realtime": [f"127.0.0.1:{ports['realtime']}"]})
    realtime: subprocess.Popen[bytes] | None = None
    redis_server.start()
    try:
        env["BEACON_REDIS_URL"] = redis_server.url(0)
        settings = load_settings(env)
        (state / "log").mkdir(exist_ok=True)
        with (state / "log" / "realtime.log").open("ab") as log:
            realtime = subprocess.Popen([str(Path(sys.prefix) / "bin" / "beacon"), "serve", "realtime"],
                                        env={**os.environ, **env}, stdout=log, stderr=log)
        wait_for_port(ports["realtime"], 30)
        nginx.start()
        token = sign_token(settings.security.secret_key, "ws", {"channels": [ROOM]}, 3600)
        client = aioredis.Redis.from_url(settings.redis.url)
        service = WebSocketService(client, Keys(settings.redis.key_prefix))
        proc = psutil.Process(realtime.pid)

        # 1. One message to N clients through Nginx (TLS).
        cafile = str(state / "nginx" / "tls" / "cert.pem")
        tls = ssl.create_default_context(cafile=cafile)
        wss = f"wss://localhost:{nginx.https_port}/ws?token={token}"
        started = time.perf_counter()
        sockets = await open_clients(wss, args.clients, tls)
        results["connect"] = f"{args.clients} clients via Nginx connected in {time.perf_counter() - started:.1f} s"
        samples = await latency(service, sockets, args.rounds)
        results["latency, clients in 1 process"] = (
            f"{len(samples)} deliveries ({args.rounds} messages x {args.clients} clients): "
                              f"p50 {percentile(samples, 0.5) * 1000:.1f} ms, "
                              f"p99 {percentile(samples, 0.99) * 1000:.1f} ms, "
                              f"max {max(samples) * 1000:.1f} ms, mean {statistics.mean(samples) * 1000:.1f} ms")
        await asyncio.gather(*(s.close() for s in sockets))
        await asyncio.sleep(2)
        samples = await latency_multiprocess(service, wss, cafile, args.clients, args.rounds, args.client_processes)
        results[f"latency, clients in {args.client_processes} processes"] = (
            f"{len(samples)} deliveries: p50 {percentile(samples, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(samples, 0.99) * 1000:.1f} ms, max {max(samples) * 1000:.1f} ms")
        await asyncio.sleep(2)
        samples = await latency_lean(service, "127.0.0.1", nginx.https_port, f"/ws?token={token}", tls,
                                     args.clients, args.rounds)
        results["latency, lean clients in 1 process"] = (
            f"{len(samples)} deliveries: p50 {percentile(samples, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(samples, 0.99) * 1000:.1f} ms, max {max(samples) * 1000:.1f} ms")
        await asyncio.sleep(2)

        # 2. Memory per idle connection, straight to the realtime process.
        warm = await open_clients(f"ws://127.0.0.1:{ports['realtime']}/ws?token={token}", 100, None)
        await asyncio.sleep(1)
        before = proc.memory_info().rss
        started = time.perf_counter()
        idle = await open_clients(f"ws://127.0.0.1:{ports['realtime']}/ws?token={token}", args.idle, None)
        took = time.perf_counter() - started
        await asyncio.sleep(3)
        after = proc.memory_info().rss
        stats = await service.stats()
        results["idle"] = (f"{args.idle} idle connections opened in {took:.1f} s; RSS {before / 2**20:.0f} MiB -> "
                           f"{after / 2**20:.0f} MiB: {(after - before) / args.idle / 1024:.1f} KiB per connection "
                           f"(stats report {stats.connections} connections)")
        samples = await latency(service, idle[:1000], 5)
        results["idle-latency"] = (f"with {args.idle + 100} connected, 1,000 of them measured: "
                                   f"p50 {percentile(samples, 0.5) * 1000:.1f} ms, "
                                   f"p99 {percentile(samples, 0.99) * 1000:.1f} ms")
        await asyncio.gather(*(s.close() for s in [*warm, *idle]), return_exceptions=True)
        await client.aclose()
    finally:
        if realtime is not None:
            realtime.send_signal(signal.SIGTERM)
            try:
                realtime.wait(30)
            except subprocess.TimeoutExpired:
                realtime.kill()
        nginx.stop()
        redis_server.stop()
        shutil.rmtree(state, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--client-processes", type=int, default=2)
    args = parser.parse_args()
    limit = raise_fd_limit()
    if limit < args.idle + 1000:
        raise SystemExit(f"the hard limit of open files is {limit}; {args.idle + 1000} are needed")
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} cores")

    for name, line in uvloop.run(run(args)).items():
        print(f"| {name} | {line} |")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
