"""The realtime process (port 6001): ``/ws`` WebSocket endpoint backed by Redis pub/sub."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Request, Response, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect

from app.core.health import health_response, redis_check, run_checks
from app.core.resources import Resources
from app.core.service import create_service_app
from app.core.settings import Settings, get_settings
from app.core.tokens import verify_token
from app.realtime.hub import Connection, Hub

WS_TOKEN_PURPOSE = "ws"
PING_INTERVAL = 25.0


@websocket("/ws")
async def ws_endpoint(socket: WebSocket[Any, Any, Any]) -> None:
    """Deliver the messages of the channels the connection's token grants, until either side closes."""
    resources: Resources = socket.app.state.resources
    hub: Hub = socket.app.state.hub
    token = socket.query_params.get("token", "")
    grant = verify_token(resources.settings.security.secret_key, WS_TOKEN_PURPOSE, token)
    channels = grant.get("channels") if grant else None
    if not isinstance(channels, list) or not channels:
        # Closing before accept answers the handshake with 403.
        await socket.close(code=4403, reason="invalid or expired token")
        return
    await socket.accept()
    conn = Connection(channels=frozenset(str(c) for c in channels))
    hub.add(conn)

    async def pump() -> None:
        while True:
            try:
                data = await asyncio.wait_for(conn.queue.get(), PING_INTERVAL)
            except TimeoutError:
                data = '{"type":"ping"}'
            await socket.send_text(data)

    async def drain_client() -> None:
        # Client messages are not used yet; reading them detects a closed connection.
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await socket.receive_text()

    tasks = [asyncio.create_task(pump()), asyncio.create_task(drain_client()),
             asyncio.create_task(conn.overflowed.wait())]
    try:
        await socket.send_text(json.dumps({"type": "hello", "channels": sorted(conn.channels)}))
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.remove(conn)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if conn.overflowed.is_set():
            with contextlib.suppress(Exception):
                await socket.close(code=1013, reason="client too slow")


@get("/health", include_in_schema=False)
async def realtime_health(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    resources: Resources = request.app.state.resources
    hub: Hub = request.app.state.hub

    async def subscription() -> str | None:
        return None if hub.ready.is_set() else "not subscribed to Redis"

    results = await run_checks({"redis": redis_check(resources), "subscription": subscription})
    return health_response(results, connections=hub.connections)


@contextlib.asynccontextmanager
async def hub_lifespan(app: Litestar) -> AsyncIterator[None]:
    resources: Resources = app.state.resources
    hub = Hub(resources.redis, resources.keys)
    app.state.hub = hub
    hub.start()
    try:
        yield
    finally:
        await hub.stop()


def create_app(settings: Settings | None = None) -> Litestar:
    return create_service_app(
        "realtime",
        settings or get_settings(),
        [ws_endpoint, realtime_health],
        health_route=False,
        lifespan=[hub_lifespan],
    )
