"""Where the memory of an idle WebSocket goes: RSS per connection of bare WebSocket servers.

    .venv/bin/python -m tests.benchmarks.bench_ws_memory [--connections 3000] [variant ...]

Each variant is a server that completes the handshake and then only waits, started as its own process
(``--serve <variant> <port>``); the benchmark opens ``--connections`` connections to it with a minimal raw
handshake (so the client costs little CPU) and prints the growth of the server's RSS per connection,
measured after 100 warm-up connections. Environment variables of a variant (``MALLOC_ARENA_MAX``,
Granian's jemalloc ``_RJEM_MALLOC_CONF``) are set for the server process only. Variants:

- ``granian-litestar``: Granian embedded, ASGI, a Litestar ``@websocket`` handler (what Beacon ran);
- ``granian-asgi``: Granian embedded, a raw ASGI app; ``-asyncio`` suffix: without uvloop;
- ``granian-rsgi``: Granian embedded, RSGI (Granian's own protocol); ``-asyncio`` suffix: without uvloop;
- ``granian-rsgi-small-buffers``: RSGI with ``http1_settings.max_buffer_size`` 8 KiB and backpressure 64;
- ``granian-rsgi-threads2``: RSGI with 2 Rust runtime threads;
- ``granian-rsgi-arena2``, ``granian-rsgi-jemalloc``: RSGI with ``MALLOC_ARENA_MAX=2`` and with jemalloc
  told to return freed memory at once;
- ``websockets``: the ``websockets`` package's asyncio server (one handler task per connection);
- ``beacon``: Beacon's WebSocket server (``app/realtime/server.py``) without Beacon's authorisation and hub
  (``tests.benchmarks.bench_realtime`` measures the whole realtime process).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import resource
import secrets
import subprocess
import sys
import time
from typing import Any

import psutil

from app.devstack import free_port, wait_for_port

ENV: dict[str, dict[str, str]] = {
    "granian-rsgi-arena2": {"MALLOC_ARENA_MAX": "2"},
    "granian-rsgi-jemalloc": {"_RJEM_MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0,narenas:1"},
}
VARIANTS = ["granian-litestar", "granian-asgi", "granian-asgi-asyncio", "granian-rsgi", "granian-rsgi-asyncio",
            "granian-rsgi-small-buffers", "granian-rsgi-threads2", "granian-rsgi-arena2", "granian-rsgi-jemalloc",
            "websockets", "beacon"]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


class RSGIApp:
    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto == "http":
            protocol.response_empty(404, [])
            return
        transport = await protocol.accept()
        while (await transport.receive()).kind != 0:  # 0: close
            pass


def serve_granian(variant: str, port: int) -> None:
    from granian.constants import HTTPModes, Interfaces  # noqa: PLC0415 - the child imports only the server it measures
    from granian.http import HTTP1Settings  # noqa: PLC0415 - the child imports only the server it measures
    from granian.log import LogLevels  # noqa: PLC0415 - the child imports only the server it measures
    from granian.server.embed import Server  # noqa: PLC0415 - the child imports only the server it measures

    target: Any
    if variant == "granian-litestar":
        from litestar import Litestar, WebSocket, websocket  # noqa: PLC0415 - the child imports only the server it measures

        @websocket("/ws")
        async def handler(socket: WebSocket[Any, Any, Any]) -> None:
            await socket.accept()
            while (await socket.receive())["type"] != "websocket.disconnect":
                pass

        target = Litestar([handler], debug=False, logging_config=None, openapi_config=None)
    else:
        target = asgi_app if "asgi" in variant else RSGIApp()
    options: dict[str, Any] = {}
    if variant.endswith("small-buffers"):
        options = {"http1_settings": HTTP1Settings(max_buffer_size=8192), "backpressure": 64}
    if variant.endswith("threads2"):
        options = {"runtime_threads": 2}
    server = Server(target, address="127.0.0.1", port=port, backlog=2048, http=HTTPModes.http1, websockets=True,
                    interface=Interfaces.RSGI if "rsgi" in variant else Interfaces.ASGI,
                    log_level=LogLevels.warning, **options)
    if variant.endswith("-asyncio"):
        asyncio.run(server.serve())
    else:
        import uvloop  # noqa: PLC0415 - the child imports only the server it measures

        uvloop.run(server.serve())


def serve(variant: str, port: int) -> None:
    if variant.startswith("granian"):
        serve_granian(variant, port)
        return
    import uvloop  # noqa: PLC0415 - the child imports only the server it measures

    async def main() -> None:
        if variant == "websockets":
            from websockets.asyncio.server import ServerConnection  # noqa: PLC0415 - the child imports only the server it measures
            from websockets.asyncio.server import serve as ws_serve  # noqa: PLC0415 - the child imports only the server it measures

            async def handler(connection: ServerConnection) -> None:
                await connection.wait_closed()

            async with ws_serve(handler, "127.0.0.1", port, ping_interval=None, compression=None, backlog=2048):
                await asyncio.Future()
        else:
            from app.realtime.server import WebSocketServer  # noqa: PLC0415 - the child imports only the server it measures

            server = WebSocketServer()
            await server.start("127.0.0.1", port)
            await asyncio.Future()

    uvloop.run(main())


async def open_raw(port: int, count: int, batch: int = 250) -> list[asyncio.StreamWriter]:
    """Open ``count`` WebSockets with a hand-written handshake (cheap for the client); return the writers."""
    writers: list[asyncio.StreamWriter] = []

    async def one() -> asyncio.StreamWriter:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4096)
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        writer.write(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.decode(errors="replace"))
        return writer

    for start in range(0, count, batch):
        writers.extend(await asyncio.gather(*(one() for _ in range(min(batch, count - start)))))
    return writers


async def measure(variant: str, connections: int) -> str:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.benchmarks.bench_ws_memory", "--serve", variant,
                             str(port)], env={**os.environ, **ENV.get(variant, {})})
    try:
        wait_for_port(port, 30)
        server = psutil.Process(proc.pid)
        warm = await open_raw(port, 100)
        await asyncio.sleep(1)
        before = server.memory_info().rss
        started = time.perf_counter()
        idle = await open_raw(port, connections)
        took = time.perf_counter() - started
        await asyncio.sleep(2)
        after = server.memory_info().rss
        for writer in [*warm, *idle]:
            writer.close()
        return (f"| {variant} | {connections} | {took:.1f} s | {before / 2**20:.0f} → {after / 2**20:.0f} MiB | "
                f"**{(after - before) / connections / 1024:.1f} KiB** |")
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", nargs=2, metavar=("VARIANT", "PORT"))
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("variants", nargs="*", default=VARIANTS, help=", ".join(VARIANTS))
    args = parser.parse_args()
    if unknown := set(args.variants) - set(VARIANTS):
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores")
    print("| server | connections | opened in | RSS | per connection |\n| --- | --- | --- | --- | --- |")
    for variant in args.variants:
        print(asyncio.run(measure(variant, args.connections)), flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
