"""The realtime process: /ws delivers what any process publishes to Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest
import redis.asyncio as aioredis
import websockets

from app.core.redis import Keys
from app.core.settings import Settings
from app.core.tokens import sign_token
from app.devstack import free_port
from app.realtime.publish import publish
from app.realtime.server import WebSocket, WebSocketServer


def token(settings: Settings, channels: list[str], ttl: float = 60) -> str:
    return sign_token(settings.security.secret_key, "ws", {"channels": channels}, ttl)


async def published(settings: Settings, channel: str, message: dict[str, object]) -> int:
    client = aioredis.Redis.from_url(settings.redis.url)
    try:
        return await publish(client, Keys(settings.redis.key_prefix), channel, message)
    finally:
        await client.aclose()


async def test_message_reaches_subscribed_client_only(settings: Settings, serve: Callable[[str], int]) -> None:
    """A client of site:1 gets site:1's message and not site:2's."""
    port = serve("realtime")
    url = f"ws://127.0.0.1:{port}/ws?token="
    async with websockets.connect(url + token(settings, ["site:1"])) as one, \
            websockets.connect(url + token(settings, ["site:2"])) as two:
        assert "hello" == json.loads(await one.recv())["type"]
        assert "hello" == json.loads(await two.recv())["type"]
        await published(settings, "site:2", {"type": "event", "n": 2})
        await published(settings, "site:1", {"type": "event", "n": 1})
        assert {"type": "event", "n": 1} == json.loads(await asyncio.wait_for(one.recv(), 5))
        assert {"type": "event", "n": 2} == json.loads(await asyncio.wait_for(two.recv(), 5))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(one.recv(), 0.3)


@pytest.mark.parametrize("bad", [
    pytest.param("", id="none"),
    pytest.param("garbage", id="garbage"),
    pytest.param("expired", id="expired"),
    pytest.param("forged", id="forged"),
])
async def test_connection_without_a_valid_token_is_refused(settings: Settings, serve: Callable[[str], int],
                                                           bad: str) -> None:
    """No valid token, no socket: the handshake is refused."""
    value = {"expired": token(settings, ["site:1"], ttl=-5),
             "forged": sign_token("not-the-secret", "ws", {"channels": ["site:1"]}, 60)}.get(bad, bad)
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(f"ws://127.0.0.1:{serve('realtime')}/ws?token={value}"):
            pass
    assert 403 == refused.value.response.status_code


async def test_health_counts_connections_and_other_paths_are_404(settings: Settings,
                                                                  serve: Callable[[str], int]) -> None:
    """GET /health answers from the WebSocket server itself, with the open connections; other paths 404."""
    port = serve("realtime")
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws?token=" + token(settings, ["site:1"])) as socket:
        await socket.recv()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            health, other = await client.get("/health"), await client.get("/nothing")
    assert (200, "ok", 1) == (health.status_code, health.json()["status"], health.json()["connections"])
    assert 404 == other.status_code


async def test_message_split_in_fragments_is_one_message(settings: Settings, serve: Callable[[str], int]) -> None:
    """A client message sent in several frames is handled once it is complete."""
    async with websockets.connect(f"ws://127.0.0.1:{serve('realtime')}/ws?token=" + token(settings, ["site:1"])
                                  ) as socket:
        await socket.recv()
        await socket.send(iter(['{"type":', '"ping"}']))
        assert {"type": "pong"} == json.loads(await asyncio.wait_for(socket.recv(), 5))


@pytest.mark.parametrize(("frame", "code"), [
    pytest.param("[" * 2000 + "]" * 2000, 1007, id="nested-2000"),
    pytest.param('{"type": "join", "room": [[[[[["x"]]]]]]}', 1007, id="nested-beyond-message-shape"),
])
async def test_pathological_frames_get_a_close_frame(settings: Settings, serve: Callable[[str], int], frame: str,
                                                      code: int) -> None:
    """JSON nested too deep ends the connection with a close frame that says why, never a dropped socket."""
    port = serve("realtime")
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws?token={token(settings, ['site:1'])}") as client:
        assert "hello" == json.loads(await client.recv())["type"]
        await client.send(frame)
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            await asyncio.wait_for(client.recv(), 5)
    assert closed.value.rcvd is not None
    assert (code, "message: JSON nested deeper than 4 levels") == (closed.value.rcvd.code, closed.value.rcvd.reason)


async def test_flat_garbage_is_answered_and_the_connection_stays(settings: Settings,
                                                                 serve: Callable[[str], int]) -> None:
    """Text that is not a JSON object gets an error message; the socket stays open for the next one."""
    port = serve("realtime")
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws?token={token(settings, ['site:1'])}") as client:
        assert "hello" == json.loads(await client.recv())["type"]
        for text in ("[[[", "not json", "[1, 2]"):
            await client.send(text)
            assert "error" == json.loads(await asyncio.wait_for(client.recv(), 5))["type"]
        await client.send('{"type": "ping"}')
        assert {"type": "pong"} == json.loads(await asyncio.wait_for(client.recv(), 5))


async def test_a_failing_handler_ends_the_connection_with_1011() -> None:
    """An exception in message handling is logged and answered with close 1011, not a silent drop."""
    class Failing(WebSocketServer):
        def received(self, socket: WebSocket, text: str) -> None:
            raise RecursionError(text[:10])

    port = free_port()
    server = Failing()
    await server.start("127.0.0.1", port)
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as client:
            await client.send("boom")
            with pytest.raises(websockets.ConnectionClosedError) as closed:
                await asyncio.wait_for(client.recv(), 5)
    finally:
        await server.stop()
    assert closed.value.rcvd is not None
    assert (1011, "internal error") == (closed.value.rcvd.code, closed.value.rcvd.reason)
