"""The realtime process (port 6001): ``/ws`` WebSocket endpoint backed by Redis pub/sub.

A connection is authenticated once, at the handshake, by one of:

- the signed-in user's session cookie (the same Redis session the api uses; the Origin must be ours);
- ``?share=<token>``: a site's public share link, which grants that site's room and nothing else;
- ``?token=<signed token>``: issued by the api with the rooms it grants (the dashboard page uses it).

Without one of them the handshake is refused with 403. Afterwards the client may send
``{"type": "join", "room": "site:<id>"}`` (checked against its access; a room it may not join and one
that does not exist get the same answer), ``{"type": "leave", "room": ...}``,
``{"type": "subscribe", "channel": ...}`` (signed-in users) and ``{"type": "pong"}``. The server sends a
ping after each idle heartbeat interval and closes connections that stayed silent past the timeout
(4408) or whose queue overflowed because they read too slowly (1013).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from litestar import Litestar, Request, Response, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.stores.redis import RedisStore
from sqlalchemy import select

from app.core.health import health_response, redis_check, run_checks
from app.core.models import Membership, Site
from app.core.resources import Resources
from app.core.service import create_service_app
from app.core.settings import Settings, get_settings
from app.core.tokens import verify_token
from app.domain.sites.services import token_hash
from app.realtime.hub import Connection, Hub
from app.realtime.publish import is_channel, room_site_id, site_channel

WS_TOKEN_PURPOSE = "ws"
SESSION_COOKIE = "beacon_session"
NO_ROOM = "no such room"
CLIENT_MESSAGE_MAX = 4096


@dataclass
class Grant:
    """What a connection may receive."""

    user_id: int | None = None
    rooms: frozenset[str] = frozenset()
    """Rooms granted up front (share link, signed token); joined at once."""
    share_site: int | None = None


async def _session_user(socket: WebSocket[Any, Any, Any], store: RedisStore, settings: Settings) -> int | None:
    session_id = socket.cookies.get(SESSION_COOKIE)
    if not session_id or session_id == "null":
        return None
    # Cookies ride along on cross-site WebSocket handshakes in some browsers: accept them from our origin only.
    expected = urlsplit(settings.server.base_url)
    origin = urlsplit(socket.headers.get("origin", ""))
    if (origin.scheme, origin.netloc) != (expected.scheme, expected.netloc):
        return None
    raw = await store.get(session_id)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    user_id = data.get("user_id") if isinstance(data, dict) else None
    return user_id if isinstance(user_id, int) else None


async def authenticate(socket: WebSocket[Any, Any, Any]) -> Grant | None:
    resources: Resources = socket.app.state.resources
    settings = resources.settings
    if share := socket.query_params.get("share"):
        async with resources.sessions() as session:
            site_id = (await session.execute(select(Site.id).where(Site.share_token_hash == token_hash(share))
                                             )).scalar_one_or_none() if len(share) < 200 else None
        return Grant(rooms=frozenset({site_channel(site_id)}), share_site=site_id) if site_id else None
    if token := socket.query_params.get("token"):
        payload = verify_token(settings.security.secret_key, WS_TOKEN_PURPOSE, token)
        channels = payload.get("channels") if payload else None
        if not isinstance(channels, list) or not channels or not payload:
            return None
        user_id = payload.get("user_id")
        rooms = frozenset(str(c) for c in channels)
        if not isinstance(user_id, int):
            return Grant(rooms=rooms)
        # A user's token outlives changes of membership: the rooms still need the membership now.
        allowed = frozenset([room for room in rooms if await member_of(resources, user_id, room)])
        return Grant(user_id=user_id, rooms=allowed) if allowed else None
    user_id = await _session_user(socket, socket.app.state.session_store, settings)
    return Grant(user_id=user_id) if user_id is not None else None


async def member_of(resources: Resources, user_id: int, room: str) -> bool:
    site_id = room_site_id(room)
    if site_id is None:
        return False
    async with resources.sessions() as session:
        role = await session.scalar(select(Membership.role).where(
            Membership.site_id == site_id, Membership.user_id == user_id))
    return role is not None


async def may_join(socket: WebSocket[Any, Any, Any], grant: Grant, room: str) -> bool:
    if grant.user_id is None:
        return room in grant.rooms
    return await member_of(socket.app.state.resources, grant.user_id, room)


async def handle_client_message(socket: WebSocket[Any, Any, Any], hub: Hub, conn: Connection, grant: Grant,
                                raw: str) -> None:
    try:
        message = json.loads(raw) if len(raw) <= CLIENT_MESSAGE_MAX else None
    except ValueError:
        message = None
    if not isinstance(message, dict):
        await socket.send_text(json.dumps({"type": "error", "detail": "messages are JSON objects"}))
        return
    kind = message.get("type")
    if kind in ("pong", "ping"):
        if kind == "ping":
            await socket.send_text('{"type":"pong"}')
        return
    if kind in ("join", "leave"):
        room = message.get("room")
        if not isinstance(room, str):
            await socket.send_text(json.dumps({"type": "error", "detail": "room: required"}))
        elif kind == "leave":
            hub.leave(conn, room)
            await socket.send_text(json.dumps({"type": "left", "room": room}))
        elif await may_join(socket, grant, room):
            hub.join(conn, room)
            await socket.send_text(json.dumps({"type": "joined", "room": room}))
        else:
            await socket.send_text(json.dumps({"type": "error", "room": room, "detail": NO_ROOM}))
        return
    if kind == "subscribe":
        channel = message.get("channel")
        if grant.user_id is None or not isinstance(channel, str) or not is_channel(channel):
            await socket.send_text(json.dumps({"type": "error", "channel": channel, "detail": "no such channel"}))
        else:
            hub.join(conn, channel)
            await socket.send_text(json.dumps({"type": "subscribed", "channel": channel}))
        return
    await socket.send_text(json.dumps({"type": "error", "detail": f"type: unknown message type {kind!r}"}))


@websocket("/ws")
async def ws_endpoint(socket: WebSocket[Any, Any, Any]) -> None:
    """Deliver what the connection is granted, until either side closes or the client is dead or too slow."""
    resources: Resources = socket.app.state.resources
    hub: Hub = socket.app.state.hub
    config = resources.settings.realtime
    grant = await authenticate(socket)
    if grant is None:
        # Closing before accept answers the handshake with 403.
        await socket.close(code=4403, reason="sign in, or use a valid share link or token")
        return
    await socket.accept()
    conn = Connection(user_id=grant.user_id, names=set(grant.rooms), queue=asyncio.Queue(config.queue_limit),
                      share_site=grant.share_site)
    hub.add(conn)
    close_code = 1000
    client_gone = True

    async def pump() -> None:
        nonlocal close_code
        while True:
            try:
                data = await asyncio.wait_for(conn.queue.get(), config.heartbeat_interval)
            except TimeoutError:
                if time.monotonic() - conn.last_seen > config.heartbeat_timeout:
                    hub.dropped_dead += 1
                    close_code = 4408
                    return
                data = '{"type":"ping"}'
            await socket.send_text(data)

    async def receive() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                raw = await socket.receive_text()
                conn.last_seen = time.monotonic()
                await handle_client_message(socket, hub, conn, grant, raw)

    conn.pump = asyncio.create_task(pump())
    reader = asyncio.create_task(receive())
    try:
        await socket.send_text(json.dumps({"type": "hello", "channels": sorted(conn.names),
                                           "user": grant.user_id is not None}))
        await asyncio.wait([conn.pump, reader], return_when=asyncio.FIRST_COMPLETED)
        client_gone = reader.done()
    finally:
        hub.remove(conn)
        for task in (conn.pump, reader):
            task.cancel()
        await asyncio.gather(conn.pump, reader, return_exceptions=True)
        if conn.close_code is not None:
            close_code = conn.close_code
        if not client_gone:
            with contextlib.suppress(Exception):
                await socket.close(code=close_code, reason={
                    1013: "client too slow", 4408: "no heartbeat", 4403: "access revoked"}.get(close_code, ""))


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
    hub = Hub(resources.redis, resources.keys, stats_interval=resources.settings.realtime.stats_interval)
    app.state.hub = hub
    app.state.session_store = RedisStore(resources.redis, namespace=f"{resources.keys.prefix}sessions")
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
