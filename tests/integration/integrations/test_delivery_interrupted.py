"""A delivery attempt stopped by the job's time limit still counts, so a receiver that never answers runs
out of attempts instead of being sent the delivery again and again."""

from __future__ import annotations

import ctypes
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dramatiq.middleware.time_limit import TimeLimitExceeded

from app.devstack import Postgres, Redis
from services.integrations import delivery
from tests.support.integrations import Stack, make_site, start_stack


@pytest.fixture(scope="module")
def database_only(postgres: Postgres, redis_server: Redis, state_dir: Path) -> Iterator[Stack]:
    """The migrated database and settings (loopback destinations allowed); no process runs, so no worker
    claims the delivery before the test does."""
    running = start_stack(postgres, redis_server, state_dir / "integrations-interrupted", "beacon_interrupted", 7,
                          {"BEACON_WEBHOOKS_ALLOW_PRIVATE": "1"}, ())
    yield running
    running.stop()
    running.engine.dispose()


@pytest.fixture
def slow_headers() -> Iterator[int]:
    """A receiver on 127.0.0.1 that sends its status line, then one byte of a header every 0.1 s for a minute:
    every read comes within the read timeout, the answer never ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            for _ in range(600):
                if stop.is_set():
                    return
                try:
                    conn.sendall(b"a")
                except OSError:
                    return
                time.sleep(0.1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()


def test_an_attempt_stopped_by_the_time_limit_is_recorded_as_failed(database_only: Stack, slow_headers: int) -> None:
    """Dramatiq's time limit raises TimeLimitExceeded in the job's thread: the attempt is stored as failed and
    the delivery waits for its next retry, with its lease released."""
    stack = database_only
    site = make_site(stack)
    endpoint = stack.sql("INSERT INTO webhook_endpoints (site_id, url, event_types, secret) VALUES "
                         "(:s, :u, ARRAY['webhook.test'], 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw') RETURNING id",
                         s=site.id, u=f"http://127.0.0.1:{slow_headers}/in")[0][0]
    stack.sql("INSERT INTO webhook_deliveries (msg_id, endpoint_id, site_id, event_type, payload) "
              "VALUES ('msg_slow', :e, :s, 'webhook.test', '{\"type\": \"webhook.test\", \"data\": {}}')",
              e=endpoint, s=site.id)
    [(delivery_id, token)] = delivery.claim_due(stack.engine, stack.settings.integrations)
    raised: list[BaseException] = []

    def job() -> None:
        try:
            delivery.deliver(stack.engine, stack.settings.integrations, delivery_id, token)
        except BaseException as exc:  # what the job's thread saw is the result
            raised.append(exc)

    worker = threading.Thread(target=job)
    worker.start()
    time.sleep(1.0)
    # What dramatiq's TimeLimit middleware does once a job is over its time_limit.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident or 0), ctypes.py_object(TimeLimitExceeded))
    worker.join(30)
    try:
        assert not worker.is_alive()
        assert [TimeLimitExceeded] == [type(exc) for exc in raised]
        assert [(None, "interrupted (the receiver kept the attempt open)")] == stack.sql(
            "SELECT status_code, error FROM webhook_attempts WHERE delivery_id = :d", d=delivery_id)
        assert [("pending", 1, None)] == stack.sql(
            "SELECT status, attempts, lease_token FROM webhook_deliveries WHERE id = :d", d=delivery_id)
    finally:
        stack.sql("TRUNCATE users, sites, webhook_endpoints RESTART IDENTITY CASCADE")
