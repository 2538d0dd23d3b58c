"""The realtime service's Python API, statistics, heartbeats and slow-client dropping, on real processes."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets

from app.core.redis import Keys
from app.core.sessions import SESSION_COOKIE
from app.core.tokens import sign_token
from app.realtime.publish import RealtimeStats, WebSocketService
from tests.support.accounts import Servers, World, signed_in
from tests.support.polling import wait_until_async


async def connect(servers: Servers, world: World, user_id: int | None, **kwargs: Any) -> Any:
    headers = {"Origin": servers.api}
    if user_id is not None:
        headers["Cookie"] = f"{SESSION_COOKIE}={world.session_for(user_id)}"
    socket = await websockets.connect(f"ws://127.0.0.1:{servers.realtime_port}/ws", additional_headers=headers,
                                      **kwargs)
    assert "hello" == json.loads(await socket.recv())["type"]
    return socket


async def next_message(socket: Any, timeout: float = 5) -> dict[str, Any]:
    """The next message other than a ping within ``timeout`` in all; pings are answered, as browsers do."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError
        message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), remaining))
        if message["type"] != "ping":
            return message
        await socket.send('{"type":"pong"}')


@pytest.fixture
async def service(servers: Servers) -> Any:
    client = aioredis.Redis.from_url(servers.settings.redis.url)
    yield WebSocketService(client, Keys(servers.settings.redis.key_prefix))
    await client.aclose()


async def test_send_to_user_reaches_all_of_their_connections_only(servers: Servers, world: World,
                                                                  service: WebSocketService) -> None:
    """send_to_user reaches both sockets of that user and not another user's."""
    alice, bob = world.user("alice@example.com"), world.user("bob@example.com")
    one, two, other = [await connect(servers, world, uid) for uid in (alice, alice, bob)]
    assert 1 <= await service.send_to_user(alice, {"type": "note", "n": 1})
    assert {"type": "note", "n": 1} == await next_message(one)
    assert {"type": "note", "n": 1} == await next_message(two)
    with pytest.raises(TimeoutError):
        await next_message(other, 0.3)
    for socket in (one, two, other):
        await socket.close()


async def test_broadcast_room_and_channel(servers: Servers, world: World, service: WebSocketService) -> None:
    """broadcast reaches everyone; a room only its members; a channel only its subscribers."""
    owner = world.user("o@example.com")
    site_id = world.site("rt.example", {owner: "owner"})
    member, stranger = await connect(servers, world, owner), await connect(servers, world, world.user("s@x.com"))
    await member.send(json.dumps({"type": "join", "room": f"site:{site_id}"}))
    assert "joined" == (await next_message(member))["type"]
    await stranger.send(json.dumps({"type": "subscribe", "channel": "news"}))
    assert "subscribed" == (await next_message(stranger))["type"]
    await service.broadcast({"type": "all"})
    assert "all" == (await next_message(member))["type"]
    assert "all" == (await next_message(stranger))["type"]
    await service.send_to_room(f"site:{site_id}", {"type": "room"})
    await service.send_to_channel("news", {"type": "channel"})
    assert "room" == (await next_message(member))["type"]
    assert "channel" == (await next_message(stranger))["type"]
    with pytest.raises(TimeoutError):
        await next_message(member, 0.3)
    await member.close()
    await stranger.close()


async def test_service_rejects_misaddressed_names(service: WebSocketService) -> None:
    """A room must be site:<id>; a channel may not pose as a room, a user or broadcast."""
    for call in (service.send_to_room("news", {}), service.send_to_channel("site:1", {}),
                 service.send_to_channel("user:1", {}), service.send_to_channel("broadcast", {})):
        with pytest.raises(ValueError, match="not a"):
            await call


async def test_statistics_are_aggregated_and_shown_to_admins_only(servers: Servers, world: World,
                                                                   service: WebSocketService) -> None:
    """The admin endpoint counts connections in total, per room and per process; others may not see it."""
    admin, user = world.user("admin@example.com", admin=True), world.user("u@example.com")
    site_id = world.site("stats.example", {user: "viewer"})
    sockets = [await connect(servers, world, user) for _ in range(3)]
    await sockets[0].send(json.dumps({"type": "join", "room": f"site:{site_id}"}))
    await next_message(sockets[0])
    async def counted() -> RealtimeStats | None:
        stats = await service.stats()
        return stats if stats.connections == 3 and stats.rooms.get(f"site:{site_id}") == 1 else None

    stats = await wait_until_async(counted, 5, "the three connections in the statistics")
    assert (3, {f"site:{site_id}": 1}, 1) == (stats.connections, stats.rooms, len(stats.processes))
    with signed_in(servers, world, admin) as client:
        shown = client.get("/api/admin/realtime")
    with signed_in(servers, world, user) as client:
        refused = client.get("/api/admin/realtime")
    anonymous = httpx.get(f"{servers.api}/api/admin/realtime")
    assert (200, 403, 401) == (shown.status_code, refused.status_code, anonymous.status_code)
    assert 3 == shown.json()["connections"]
    for socket in sockets:
        await socket.close()


async def test_cookie_from_another_origin_is_refused(servers: Servers, world: World) -> None:
    """A session cookie on a cross-site handshake does not authenticate (cross-site WebSocket hijacking)."""
    session_id = world.session_for(world.user("a@x.com"))
    headers = {"Origin": "https://evil.example", "Cookie": f"{SESSION_COOKIE}={session_id}"}
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(f"ws://127.0.0.1:{servers.realtime_port}/ws", additional_headers=headers):
            pass
    assert 403 == refused.value.response.status_code


async def test_silent_client_is_closed_and_answering_one_is_kept(servers: Servers, world: World) -> None:
    """Heartbeats: no pong for the timeout (5 s here) closes with 4408; a client that answers stays."""
    user = world.user("hb@example.com")
    silent = await connect(servers, world, user, ping_interval=None)
    alive = await connect(servers, world, user, ping_interval=None)

    async def answer_pings() -> None:
        async for raw in alive:
            if json.loads(raw)["type"] == "ping":
                await alive.send('{"type":"pong"}')

    responder = asyncio.create_task(answer_pings())
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(silent.recv(), 10)
    assert 4408 == closed.value.rcvd.code
    assert not responder.done()
    responder.cancel()
    await alive.close()


async def test_slow_client_is_dropped_instead_of_buffering(servers: Servers, world: World,
                                                           service: WebSocketService) -> None:
    """A client that stops reading is closed with 1013 once it leaves more than the limit (256 KiB here) unread."""
    user = world.user("slow@example.com")
    slow = await connect(servers, world, user, max_queue=1, ping_interval=None)
    blob = "x" * 200_000
    for n in range(200):
        await service.send_to_user(user, {"type": "big", "n": n, "blob": blob})

    async def dropped() -> int:
        return sum(p.dropped_slow for p in (await service.stats()).processes)

    dropped_slow = await wait_until_async(dropped, 10, "the realtime server to count a dropped slow client")
    code = None
    try:
        while True:
            await asyncio.wait_for(slow.recv(), 5)
    except websockets.exceptions.ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
    assert 1013 == code
    assert 1 <= dropped_slow


async def test_removed_member_loses_the_room_at_once_and_on_reconnect(servers: Servers, world: World,
                                                                      service: WebSocketService) -> None:
    """Removing a member takes the room from their open socket; their dashboard token no longer opens it."""
    owner, viewer = world.user("owner@example.com"), world.user("viewer@example.com")
    site_id = world.site("revoke.example", {owner: "owner", viewer: "viewer"})
    with signed_in(servers, world, viewer) as client:
        page = client.get("/sites/revoke.example")
    found = re.search(r'data-ws-url="([^"]+)"', page.text)
    assert found is not None
    url = f"ws://127.0.0.1:{servers.realtime_port}{found.group(1).replace('&amp;', '&')}"
    socket = await websockets.connect(url)
    assert [f"site:{site_id}"] == json.loads(await socket.recv())["channels"]
    with signed_in(servers, world, owner) as client:
        assert 303 == client.form(f"/sites/revoke.example/members/{viewer}/remove").status_code
    assert {"type": "left", "room": f"site:{site_id}", "reason": "access revoked"} == await next_message(socket)
    await service.send_to_room(f"site:{site_id}", {"type": "event"})
    with pytest.raises(TimeoutError):
        await next_message(socket, 0.5)
    await socket.close()
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(url):
            pass
    assert 403 == refused.value.response.status_code


async def test_revoked_share_link_closes_its_sockets(servers: Servers, world: World) -> None:
    """Revoking the share link closes the WebSockets it opened (4403) and refuses new ones."""
    owner = world.user("owner@example.com")
    world.site("shared.example", {owner: "owner"})
    with signed_in(servers, world, owner) as client:
        page = client.form("/sites/shared.example/share")
        token = re.search(r'id="share-url" href="[^"]*/share/([^"]+)"', page.text)
        assert token is not None
        url = f"ws://127.0.0.1:{servers.realtime_port}/ws?share={token.group(1)}"
        socket = await websockets.connect(url)
        await socket.recv()
        assert 303 == client.form("/sites/shared.example/share/revoke").status_code
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd is not None and 4403 == closed.value.rcvd.code
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(url):
            pass


async def test_session_ended_by_sign_out_everywhere_no_longer_opens_a_socket(servers: Servers,
                                                                             world: World) -> None:
    """The WebSocket handshake applies the api's session rules: once the user's epoch moves on, 403."""
    user_id = world.user("epoch@example.com")
    headers = {"Origin": servers.api, "Cookie": f"{SESSION_COOKIE}={world.session_for(user_id)}"}
    async with websockets.connect(f"ws://127.0.0.1:{servers.realtime_port}/ws", additional_headers=headers) as ok:
        assert {"type": "hello", "channels": [], "user": True} == json.loads(await ok.recv())
    world.sql("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = :u", u=user_id)
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(f"ws://127.0.0.1:{servers.realtime_port}/ws", additional_headers=headers):
            pass
    assert 403 == refused.value.response.status_code


async def test_sign_out_everywhere_closes_the_users_sockets_and_voids_their_tokens(servers: Servers,
                                                                                   world: World) -> None:
    """Sessions ending closes the user's open WebSockets (4401), and dashboard tokens issued before no longer
    open one; another user's socket stays."""
    alice, bob = world.user("alice@example.com"), world.user("bob@example.com")
    site = world.site("live.example", {alice: "owner"})
    token = sign_token(servers.settings.security.secret_key, "ws",
                       {"channels": [f"site:{site}"], "user_id": alice, "epoch": 0}, 600)
    by_token = f"ws://127.0.0.1:{servers.realtime_port}/ws?token={token}"
    by_cookie, bobs = await connect(servers, world, alice), await connect(servers, world, bob)
    tokened = await websockets.connect(by_token)
    assert "hello" == json.loads(await tokened.recv())["type"]
    with signed_in(servers, world, alice) as client:
        page = client.get("/account")
        found = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert found is not None
        assert 303 == client.post("/account/sessions/end", data={"_csrf_token": found.group(1)}).status_code
    codes = []
    for socket in (by_cookie, tokened):
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(socket.recv(), 5)
        codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
    assert [4401, 4401] == codes
    await bobs.send(json.dumps({"type": "join", "room": f"site:{site}"}))
    assert "error" == (await next_message(bobs))["type"]  # still connected: answered, not closed
    await bobs.close()
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(by_token):
            pass
    assert 403 == refused.value.response.status_code
