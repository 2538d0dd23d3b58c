"""Errors reach Sentry: the DSN points at a real HTTP receiver on loopback, and each kind of process sends."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dramatiq
import pytest
import sentry_sdk
from litestar import get
from litestar.testing import AsyncTestClient
from sentry_sdk.integrations.dramatiq import SentryMiddleware
from websockets.http11 import Request, Response

from app.core.logging import request_id_var
from app.core.resources import Resources
from app.core.sentry import init_sentry
from app.core.settings import ObservabilitySettings, Settings
from app.devstack import free_port
from app.main import create_app as create_api
from app.realtime.app import RealtimeServer
from services.compute.app import create_app as create_compute
from workers.broker import build_broker


class Receiver:
    """A Sentry ingestion endpoint: keeps every envelope item of type ``event``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        received = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                lines = body.split(b"\n")
                # An envelope: a header line, then item header and payload lines in pairs.
                for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                    if json.loads(header).get("type") == "event":
                        received.append(json.loads(payload))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.dsn = f"http://public@127.0.0.1:{self.server.server_port}/1"

    def event_for(self, request_id: str, timeout: float = 10) -> dict[str, Any]:
        """The first event tagged with ``request_id``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sentry_sdk.flush(2)
            for event in self.events:
                if dict(_tags(event)).get("request_id") == request_id:
                    return event
            time.sleep(0.1)
        raise AssertionError(f"no event with request id {request_id}: {self.events}")


def _tags(event: dict[str, Any]) -> list[tuple[str, str]]:
    tags = event.get("tags") or {}
    return list(tags.items()) if isinstance(tags, dict) else [tuple(pair) for pair in tags]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiving = Receiver()
    yield receiving
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # back to no client: later tests send nothing
    receiving.server.shutdown()
    receiving.server.server_close()


@pytest.fixture
def sentry_settings(settings: Settings, receiver: Receiver) -> Settings:
    return dataclasses.replace(settings, observability=dataclasses.replace(
        ObservabilitySettings(), sentry_dsn=receiver.dsn, release="beacon@test-release", sentry_environment="test"))


class Boom(RuntimeError):
    """Raised on purpose by a test route."""


@get("/boom", sync_to_thread=False)
def boom() -> None:
    raise Boom("raised on purpose")


def exception_types(event: dict[str, Any]) -> list[str]:
    return [value.get("type", "") for value in (event.get("exception") or {}).get("values", [])]


@pytest.mark.parametrize("process", ["api", "compute"])
async def test_error_in_an_http_process_reaches_sentry_with_its_request_id(
        sentry_settings: Settings, receiver: Receiver, process: str) -> None:
    """An exception in a route of the api or a service: the 500 and an event tagged with the request id."""
    create_app = create_api if process == "api" else create_compute
    assert init_sentry(process, sentry_settings)
    app = create_app(sentry_settings)
    app.register(boom)
    request_id = f"sentry-{process}-0001"
    async with AsyncTestClient(app=app) as client:
        answer = await client.get("/boom", headers={"X-Request-ID": request_id, "Accept": "application/json"})
    assert (500, request_id) == (answer.status_code, answer.json()["request_id"])
    event = receiver.event_for(request_id)
    assert "Boom" in exception_types(event)
    assert ("beacon@test-release", process) == (event["release"], dict(_tags(event))["process"])
    assert "cookies" not in event.get("request", {})  # send_default_pii is off


async def test_unreadable_json_is_a_400_with_sentry_on(sentry_settings: Settings, receiver: Receiver) -> None:
    """Sentry's Litestar integration reads a request's body before its handler: JSON that does not decode is the
    client's error there too (a 400 in Plausible's shape under the Stats and Sites APIs), not a 500 sent to
    Sentry."""
    assert init_sentry("api", sentry_settings)
    async with AsyncTestClient(app=create_api(sentry_settings)) as client:
        for path, body, detail in (
                ("/api/v2/query", b'{"metrics": ["visitors"', "JSON is malformed: the body ends before the JSON does"),
                ("/api/v2/query", b'{"metrics": x}', "JSON is malformed: invalid character (byte 12)"),
                ("/api/v1/sites", b"{", "JSON is malformed: the body ends before the JSON does")):
            request_id = f"sentry-json-{len(body)}-{path.count('/')}"
            answer = await client.post(path, content=body, headers={
                "content-type": "application/json", "Authorization": "Bearer nothing", "X-Request-ID": request_id})
            assert (400, {"error": detail}) == (answer.status_code, answer.json()), path
    sentry_sdk.flush(2)
    assert not [event for event in receiver.events if "sentry-json" in str(dict(_tags(event)).get("request_id"))]


async def test_error_in_realtime_reaches_sentry_with_its_request_id(
        sentry_settings: Settings, receiver: Receiver) -> None:
    """An exception while the realtime process answers a request: a 500 and an event with the request id."""

    class FailingServer(RealtimeServer):
        async def http(self, request: Request) -> Response:
            raise Boom("raised on purpose")

    assert init_sentry("realtime", sentry_settings)
    resources = Resources.open(sentry_settings, "realtime")
    server = FailingServer(resources)
    port = free_port()
    await server.start("127.0.0.1", port)
    try:
        # A plain socket, read to the end and closed: the server closes its side when it sees that.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /boom HTTP/1.1\r\nHost: localhost\r\nX-Request-ID: sentry-rt-0001\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.1)
    finally:
        await server.stop()
        await resources.close()
    assert answer.startswith(b"HTTP/1.1 500 ")
    event = receiver.event_for("sentry-rt-0001")
    assert "realtime" == dict(_tags(event))["process"]


def failing_job() -> None:
    raise Boom("raised on purpose")


def test_error_in_a_worker_reaches_sentry_with_the_request_id_of_its_message(
        sentry_settings: Settings, receiver: Receiver) -> None:
    """A job enqueued during a request fails in a real worker: the event carries the request's id."""
    assert init_sentry("worker", sentry_settings)
    # Built after Sentry started, as ``beacon worker`` does: Sentry's integration adds its middleware itself.
    broker = build_broker(sentry_settings)
    assert any(isinstance(middleware, SentryMiddleware) for middleware in broker.middleware)
    job = dramatiq.actor(failing_job, broker=broker, queue_name="test_observability", max_retries=0,
                         time_limit=10_000)
    token = request_id_var.set("sentry-job-0001")
    try:
        job.send()
    finally:
        request_id_var.reset(token)
    worker = dramatiq.Worker(broker, queues={"test_observability"}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        event = receiver.event_for("sentry-job-0001")
    finally:
        worker.stop()
        broker.flush("test_observability")
        broker.close()
    assert "Boom" in exception_types(event)
    assert "worker" == dict(_tags(event))["process"]
