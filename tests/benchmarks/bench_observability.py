"""What the request-id and HTTP-metrics wrappers cost per request, against the same ASGI app without them.

Run: ``pytest tests/benchmarks/bench_observability.py -s -p no:randomly`` (prints figures, asserts nothing about
speed), or ``python -m tests.benchmarks.bench_observability`` for one mode. The wrappers are timed in
prometheus-client's single-process mode and in its multiprocess mode (what every watcher runs under Circus:
each sample is a write into an mmap'ed file), each against the bare app in the same process and run.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from app.core.metrics import HttpMetricsMiddleware
from app.core.request_id import RequestIdMiddleware

CALLS = 100_000


async def _bare(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 202, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _time(app: Any, calls: int) -> float:
    scope = {"type": "http", "method": "POST", "path": "/api/event", "path_template": "/api/event",
             "headers": [(b"x-request-id", b"0123456789abcdef0123456789abcdef")]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    started = time.perf_counter()
    for _ in range(calls):
        await app(scope, receive, send)
    return (time.perf_counter() - started) / calls * 1e6


def measure(calls: int = CALLS) -> tuple[float, float]:
    """Microseconds per request: (bare app, app wrapped as in every Beacon HTTP process)."""
    wrapped = RequestIdMiddleware(HttpMetricsMiddleware(_bare))
    asyncio.run(_time(wrapped, calls // 10))  # warm up
    bare = asyncio.run(_time(_bare, calls))
    full = asyncio.run(_time(wrapped, calls))
    return bare, full


def test_wrapper_cost_per_request() -> None:
    """Prints the cost in both prometheus-client modes, each with its same-run baseline."""
    with tempfile.TemporaryDirectory() as directory:
        for mode, extra in (("single-process", {}), ("multiprocess", {"PROMETHEUS_MULTIPROC_DIR": directory})):
            env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
            result = subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_observability"],
                                    env={**env, **extra}, capture_output=True, text=True, check=True, timeout=300)
            print(f"{mode}: {result.stdout.strip()}")


if __name__ == "__main__":
    bare_us, full_us = measure()
    print(f"bare {bare_us:.2f} µs/request; with request id + HTTP metrics {full_us:.2f} µs/request "
          f"(+{full_us - bare_us:.2f} µs)")
