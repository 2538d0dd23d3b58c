"""The realtime process (port 6001): ``/ws`` WebSocket endpoint backed by Redis pub/sub.

A connection is authenticated once, at the handshake, by one of:

- the signed-in user's session cookie (the same Redis session the api uses; the Origin must be ours);
- ``?share=<token>``: a site's public share link, which grants that site's room and nothing else;
- ``?token=<signed token>``: issued by the api with the rooms it grants (the dashboard page uses it).

Without one of them the handshake is refused with 403. Afterwards the client may send
``{"type": "join", "room": "site:<id>"}`` (checked against its access; a room it may not join and one
that does not exist get the same answer), ``{"type": "leave", "room": ...}``,
``{"type": "subscribe", "channel": ...}`` (signed-in users) and ``{"type": "pong"}``. The server sends a
ping every heartbeat interval and closes connections that stayed silent past the timeout (4408) or left
more than the send buffer limit unread (1013).

The process serves ``/ws`` and ``GET /health`` with :mod:`app.realtime.server` rather than Granian: see
there and docs/architecture.md for why.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import signal
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from litestar.stores.redis import RedisStore
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import select
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from app.core.health import health_body, redis_check, run_checks
from app.core.inputs import InvalidInput, NestedTooDeep, check_json_bytes
from app.core.metrics import exposition
from app.core.models import Membership, Site, User
from app.core.resources import Resources
from app.core.sentry import init_sentry
from app.core.sessions import SESSION_COOKIE, session_is_valid, valid_session_id
from app.core.settings import Settings
from app.core.tokens import WS_TOKEN_PURPOSE, token_hash, verify_token
from app.realtime.hub import Connection, Hub
from app.realtime.publish import is_channel, room_site_id, site_channel
from app.realtime.server import WebSocket, WebSocketServer, json_response

logger = logging.getLogger("beacon.realtime")

NO_ROOM = "no such room"
CLIENT_MESSAGE_MAX = 4096
CLIENT_MESSAGE_DEPTH = 4
"""Client messages are flat objects; deeper JSON closes the connection (1007)."""


@dataclass
class Grant:
    """What a connection may receive."""

    user_id: int | None = None
    rooms: frozenset[str] = frozenset()
    """Rooms granted up front (share link, signed token); joined at once."""
    share_site: int | None = None


def request_cookie(headers: Headers, name: str) -> str | None:
    for header in headers.get_all("Cookie"):
        for part in header.split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value.strip('"')
    return None


async def _session_user(headers: Headers, store: RedisStore, resources: Resources) -> int | None:
    """The user a browser session cookie signs in, under the api's rules (shape, lifetime, epoch)."""
    settings = resources.settings
    session_id = valid_session_id(request_cookie(headers, SESSION_COOKIE))
    if session_id is None:
        return None
    # Cookies ride along on cross-site WebSocket handshakes in some browsers: accept them from our origin only.
    expected = urlsplit(settings.server.base_url)
    origin = urlsplit(headers.get("Origin", ""))
    if (origin.scheme, origin.netloc) != (expected.scheme, expected.netloc):
        return None
    raw = await store.get(session_id)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not session_is_valid(data, settings.accounts.session_lifetime):
        return None
    return int(data["user_id"]) if await epoch_matches(resources, data["user_id"], data["epoch"]) else None


async def authenticate(resources: Resources, store: RedisStore, request: Request) -> Grant | None:
    settings = resources.settings
    query = {key: values[0] for key, values in parse_qs(urlsplit(request.path).query).items()}
    if share := query.get("share"):
        async with resources.sessions() as session:
            site_id = (await session.execute(select(Site.id).where(Site.share_token_hash == token_hash(share))
                                             )).scalar_one_or_none() if len(share) < 200 else None
        return Grant(rooms=frozenset({site_channel(site_id)}), share_site=site_id) if site_id else None
    if token := query.get("token"):
        payload = verify_token(settings.security.secret_key, WS_TOKEN_PURPOSE, token)
        channels = payload.get("channels") if payload else None
        if not isinstance(channels, list) or not channels or not payload:
            return None
        user_id = payload.get("user_id")
        rooms = frozenset(str(c) for c in channels)
        if not isinstance(user_id, int):
            return Grant(rooms=rooms)
        if not await epoch_matches(resources, user_id, payload.get("epoch")):
            return None  # the user's sessions ended after the token was issued
        # A user's token outlives changes of membership: the rooms still need the membership now.
        allowed = frozenset([room for room in rooms if await member_of(resources, user_id, room)])
        return Grant(user_id=user_id, rooms=allowed) if allowed else None
    user_id = await _session_user(request.headers, store, resources)
    return Grant(user_id=user_id) if user_id is not None else None


async def epoch_matches(resources: Resources, user_id: int, epoch: object) -> bool:
    """Whether ``epoch`` is the user's current session epoch (see app/domain/accounts/session.py)."""
    async with resources.sessions() as session:
        current = await session.scalar(select(User.session_epoch).where(User.id == user_id))
    return current is not None and current == epoch


async def member_of(resources: Resources, user_id: int, room: str) -> bool:
    site_id = room_site_id(room)
    if site_id is None:
        return False
    async with resources.sessions() as session:
        role = await session.scalar(select(Membership.role).where(
            Membership.site_id == site_id, Membership.user_id == user_id))
    return role is not None


def _error(detail: str, **fields: Any) -> str:
    return json.dumps({"type": "error", **fields, "detail": detail})


class RealtimeServer(WebSocketServer):
    """Beacon's ``/ws``: authorisation at the handshake, the client's messages, the hub's fan-out."""

    connection_class = Connection

    def __init__(self, resources: Resources) -> None:
        config = resources.settings.realtime
        super().__init__(send_buffer_limit=config.send_buffer_limit, max_message=64 * 1024)
        self.resources = resources
        self.store = RedisStore(resources.redis, namespace=f"{resources.keys.prefix}sessions")
        self.hub = Hub(resources.redis, resources.keys, stats_interval=config.stats_interval,
                       heartbeat_interval=config.heartbeat_interval, heartbeat_timeout=config.heartbeat_timeout)

    async def authorise(self, socket: WebSocket, request: Request) -> bool:
        assert isinstance(socket, Connection)
        grant = await authenticate(self.resources, self.store, request)
        if grant is None:
            return False
        socket.user_id, socket.share_site = grant.user_id, grant.share_site
        socket.granted, socket.names = grant.rooms, set(grant.rooms)
        return True

    def opened(self, socket: WebSocket) -> None:
        assert isinstance(socket, Connection)
        self.hub.add(socket)
        socket.send(json.dumps({"type": "hello", "channels": sorted(socket.names), "user": socket.user_id is not None}))

    def closed(self, socket: WebSocket) -> None:
        assert isinstance(socket, Connection)
        self.hub.remove(socket)

    def received(self, socket: WebSocket, text: str) -> None:
        assert isinstance(socket, Connection)
        try:
            # The depth is checked on the bytes first: json.loads raises RecursionError on deep input.
            check_json_bytes(text.encode(), "message", max_depth=CLIENT_MESSAGE_DEPTH)
            message = json.loads(text) if len(text) <= CLIENT_MESSAGE_MAX else None
        except NestedTooDeep as exc:
            socket.close(1007, exc.detail[:120])
            return
        except (InvalidInput, ValueError):
            message = None
        if not isinstance(message, dict):
            socket.send(_error("messages are JSON objects"))
            return
        kind = message.get("type")
        if kind == "pong":
            return
        if kind == "ping":
            socket.send('{"type":"pong"}')
        elif kind in ("join", "leave"):
            room = message.get("room")
            if not isinstance(room, str):
                socket.send(_error("room: required"))
            elif kind == "leave":
                self.hub.leave(socket, room)
                socket.send(json.dumps({"type": "left", "room": room}))
            elif socket.user_id is None:
                self._join(socket, room, room in socket.granted)
            else:
                self.spawn(self._join_member(socket, socket.user_id, room))
        elif kind == "subscribe":
            channel = message.get("channel")
            if socket.user_id is None or not isinstance(channel, str) or not is_channel(channel):
                socket.send(_error("no such channel", channel=channel))
            else:
                self.hub.join(socket, channel)
                socket.send(json.dumps({"type": "subscribed", "channel": channel}))
        else:
            socket.send(_error(f"type: unknown message type {kind!r}"))

    def _join(self, socket: Connection, room: str, allowed: bool) -> None:
        if allowed:
            self.hub.join(socket, room)
            socket.send(json.dumps({"type": "joined", "room": room}))
        else:
            socket.send(_error(NO_ROOM, room=room))

    async def _join_member(self, socket: Connection, user_id: int, room: str) -> None:
        allowed = await member_of(self.resources, user_id, room)
        if socket.active:
            self._join(socket, room, allowed)

    async def http(self, request: Request) -> Response:
        path = urlsplit(request.path).path
        if path == "/metrics":
            self.hub.snapshot()  # brings this process's gauges up to date
            exposed = exposition()
            return Response(200, "OK", Headers({
                "Date": email.utils.formatdate(usegmt=True), "Connection": "close", "Content-Type": CONTENT_TYPE_LATEST,
                "Content-Length": str(len(exposed))}), exposed)
        if path != "/health":
            return await super().http(request)

        async def subscription() -> str | None:
            return None if self.hub.ready.is_set() else "not subscribed to Redis"

        results = await run_checks({"redis": redis_check(self.resources), "subscription": subscription})
        status, body = health_body(results, connections=self.hub.connections)
        return json_response(status, body, {"Cache-Control": "no-store"})


async def run(settings: Settings) -> None:
    """Serve ``/ws`` and ``GET /health`` on the realtime port until SIGTERM or SIGINT."""
    init_sentry("realtime", settings)
    resources = Resources.open(settings, "realtime")
    server = RealtimeServer(resources)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        loop.add_signal_handler(sig, stop.set)
    server.hub.start()
    try:
        await server.start(settings.server.bind_host, settings.server.ports["realtime"])
        logger.info("serving", extra={"port": settings.server.ports["realtime"], "host": settings.server.bind_host,
                                      "pid": os.getpid()})
        await stop.wait()
        await server.stop(1001, "server restarting")
    finally:
        await server.hub.stop()
        await resources.close()
