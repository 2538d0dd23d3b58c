"""An actor's ``time_limit`` is enforced by the worker as ``beacon worker`` starts it (real Redis broker)."""

from __future__ import annotations

import threading
import time

import dramatiq
from dramatiq.middleware import TimeLimitExceeded

from app.core.settings import Settings
from workers.broker import build_broker
from workers.worker import start_worker

QUEUE = "test_time_limits"


def test_an_actor_running_past_its_time_limit_is_interrupted(settings: Settings) -> None:
    """An actor that would sleep 30 s with a 300 ms time limit gets Dramatiq's ``TimeLimitExceeded``."""
    broker = build_broker(settings)
    outcome: list[str] = []
    finished = threading.Event()

    def overrunning() -> None:
        try:
            until = time.monotonic() + 30
            # Short sleeps: Dramatiq raises the interrupt in the thread when it next runs Python code.
            while time.monotonic() < until:
                time.sleep(0.05)
            outcome.append("ran to the end")
        except TimeLimitExceeded:
            outcome.append("interrupted")
            raise
        finally:
            finished.set()

    actor = dramatiq.actor(overrunning, broker=broker, queue_name=QUEUE, max_retries=0, time_limit=300)
    worker = start_worker(broker, threads=1, worker_timeout=100)
    try:
        actor.send()
        finished.wait(25)
    finally:
        worker.stop()
        broker.flush(QUEUE)
        broker.close()
    assert ["interrupted"] == outcome
