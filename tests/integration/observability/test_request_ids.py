"""X-Request-ID: answered back, in problem+json and error pages, on every log line, into Dramatiq jobs."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from litestar.testing import AsyncTestClient

from app.core.logging import JsonFormatter, request_id_var
from app.core.settings import Settings
from app.main import create_app as create_api
from services.compute.app import create_app as create_compute
from workers.broker import build_broker


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every record of the process as the JSON lines Circus would write to the log file."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_valid_id_is_answered_back_and_in_the_problem_body(settings: Settings, log_lines: io.StringIO) -> None:
    """The caller's id comes back as a header, in the problem+json body, and on the process's log line."""
    async with AsyncTestClient(app=create_compute(settings)) as client:
        answer = await client.get("/no-such-route", headers={"X-Request-ID": "trace-0001-abc"})
    assert (404, "trace-0001-abc") == (answer.status_code, answer.headers["x-request-id"])
    assert "trace-0001-abc" == answer.json()["request_id"]
    assert any(line.get("request_id") == "trace-0001-abc" and line["msg"] == "answered with an error"
               for line in records(log_lines))


@pytest.mark.parametrize("sent", [
    pytest.param(None, id="absent"),
    pytest.param("short", id="too-short"),
    pytest.param("has spaces in it", id="spaces"),
    pytest.param("x" * 129, id="too-long"),
    pytest.param("new\nline-injected", id="newline"),
])
async def test_a_missing_or_invalid_id_is_replaced(settings: Settings, sent: str | None) -> None:
    """Nothing a log line should not hold is taken over: a fresh 32-hex-digit id replaces it."""
    headers = {} if sent is None else {"X-Request-ID": sent}
    async with AsyncTestClient(app=create_compute(settings)) as client:
        answer = await client.get("/health", headers=headers)
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])


async def test_the_error_page_shows_the_request_id(settings: Settings) -> None:
    """A browser's error page names the request id, so a user can quote it."""
    async with AsyncTestClient(app=create_api(settings)) as client:
        page = await client.get("/no-such-page", headers={"X-Request-ID": "page-0001-xyz", "Accept": "text/html"})
    assert 404 == page.status_code
    assert "page-0001-xyz" in page.text


seen: list[str | None] = []


def logging_job() -> None:
    seen.append(request_id_var.get())
    logging.getLogger("beacon.test").info("job ran")


def declared(settings: Settings) -> tuple[RedisBroker, dramatiq.Actor[[], None]]:
    """A broker as the worker builds it, with :func:`logging_job` declared on it."""
    broker = build_broker(settings)
    return broker, dramatiq.actor(logging_job, broker=broker, queue_name="test_request_ids", max_retries=0,
                                  time_limit=10_000)


def test_a_job_enqueued_during_a_request_logs_with_its_id(settings: Settings, log_lines: io.StringIO) -> None:
    """The message carries the request's id; a real worker sets it, so the job's log line shows it."""
    broker, job = declared(settings)
    token = request_id_var.set("job-trace-0001")
    try:
        message = job.send()
    finally:
        request_id_var.reset(token)
    done = threading.Event()
    worker = dramatiq.Worker(broker, queues={"test_request_ids"}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        for _ in range(100):
            if seen:
                break
            done.wait(0.1)
    finally:
        worker.stop()
        broker.flush("test_request_ids")
        broker.close()
    assert "job-trace-0001" == message.options["request_id"]
    assert ["job-trace-0001"] == seen
    assert any(line["msg"] == "job ran" and line.get("request_id") == "job-trace-0001" for line in records(log_lines))


def test_a_job_enqueued_outside_a_request_gets_an_id_of_its_own(settings: Settings) -> None:
    """The scheduler's messages get a fresh id each, so a job's lines still belong together."""
    broker, job = declared(settings)
    first, second = job.send(), job.send()
    broker.flush("test_request_ids")
    broker.close()
    ids = {first.options["request_id"], second.options["request_id"]}
    assert 2 == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)
