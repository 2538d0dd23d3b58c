"""The api's service client retries only calls that never reached the service, and passes on why a service
refused; against real loopback HTTP servers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from app.core.errors import ServiceUnavailable
from app.core.http import ServiceClient
from app.core.settings import HttpClientSettings, Settings, load_settings
from tests.support.settings import BASE

Answer = Callable[[], tuple[float, int, dict[str, str], bytes]]


@asynccontextmanager
async def server(answer: Answer) -> AsyncIterator[tuple[int, list[float]]]:
    """A loopback HTTP server answering every request with ``answer()``: (delay, status, headers, body);
    yields its port and the list of the times requests arrived."""
    hits: list[float] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            hits.append(asyncio.get_running_loop().time())
            delay, status, headers, body = answer()
            await asyncio.sleep(delay)
            head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "Content-Length": str(len(body))}.items())
            writer.write(f"HTTP/1.1 {status} X\r\n{head}\r\n".encode() + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield listening.sockets[0].getsockname()[1], hits
    finally:
        listening.close()


def client_for(port: int, timeout: float = 0.5) -> ServiceClient:
    settings: Settings = load_settings(BASE | {"BEACON_ANALYTICS_URL": f"http://127.0.0.1:{port}"})
    settings = dataclasses.replace(settings, http_client=HttpClientSettings(timeout=timeout, retries=2))
    return ServiceClient(settings)


async def test_a_slow_call_is_not_repeated() -> None:
    """A read timeout is not retried, for GET as for POST: the first attempt may still be running."""
    async with server(lambda: (2.0, 200, {}, b"{}")) as (port, hits):
        client = client_for(port)
        try:
            for method in ("GET", "POST"):
                with pytest.raises(ServiceUnavailable, match="timed out"):
                    await client.json("analytics", method, "/v1/aggregate")
        finally:
            await client.aclose()
    assert 2 == len(hits)


async def test_a_5xx_answer_is_not_repeated_and_its_reason_passed_on() -> None:
    """A 503 with a problem detail (a query over its budget) reaches the caller as it is, after one attempt."""
    detail = "the query ran longer than its budget of 4 s and was stopped"
    body = json.dumps({"status": 503, "title": "Query over budget", "detail": detail}).encode()
    async with server(lambda: (0, 503, {"Content-Type": "application/problem+json"}, body)) as (port, hits):
        client = client_for(port)
        try:
            with pytest.raises(ServiceUnavailable, match=detail):
                await client.json("analytics", "GET", "/v1/aggregate")
        finally:
            await client.aclose()
    assert 1 == len(hits)


async def test_a_refused_connection_is_retried() -> None:
    """Nothing listening at first: the call is retried, and succeeds once the service is up."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = client_for(port)
    hits: list[float] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        hits.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    async def start_late() -> asyncio.Server:
        await asyncio.sleep(0.12)  # after two attempts (at 0 and 0.1 s), before the last (at 0.3 s)
        return await asyncio.start_server(handle, "127.0.0.1", port)

    late = asyncio.create_task(start_late())
    try:
        assert {} == await client.json("analytics", "POST", "/query", json={})
    finally:
        await client.aclose()
        (await late).close()
    assert 1 == len(hits)
