"""Webhook delivery throughput and latency: the outbox through one worker process (BEACON_WORKER_THREADS
threads) to a receiver on loopback, against a same-run baseline of the same POSTs sent straight from here.

Run: ``make bench PYTEST_ARGS=tests/benchmarks/bench_webhooks.py`` (``BENCH_WEBHOOKS=<n>``, default 500).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import httpx

from app.devstack import Postgres, Redis
from services.integrations.delivery import dumps, tls_context
from services.integrations.webhooks import ENQUEUE_FOR_ENDPOINTS, envelope, render, sign_headers
from tests.support.integrations import Receiver, make_site, start_stack
from tests.support.polling import wait_until


def test_delivery_throughput(postgres: Postgres, redis_server: Redis, state_dir: Path) -> None:
    count = int(os.environ.get("BENCH_WEBHOOKS", "500"))
    receiver = Receiver()
    stack = start_stack(postgres, redis_server, state_dir / "bench-webhooks", "beacon_bench_webhooks", 7,
                        {"BEACON_WEBHOOKS_ALLOW_PRIVATE": "1", "BEACON_WORKER_THREADS": "4"}, ("worker", "scheduler"))
    try:
        site = make_site(stack, "bench-hooks.example")
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        endpoint = stack.sql("INSERT INTO webhook_endpoints (site_id, url, event_types, secret) VALUES "
                             "(:s, :u, ARRAY['webhook.test'], :k) RETURNING id",
                             s=site.id, u=receiver.url("/ok"), k=secret)[0][0]
        payload = envelope("webhook.test", {"site": site.domain, "message": "benchmark"})

        # Baseline: the same signed POSTs, one new connection each (as the worker does), from this process.
        body = render("generic", payload)
        started = time.perf_counter()
        for n in range(count):
            with httpx.Client(timeout=10, verify=tls_context()) as client:
                client.post(receiver.url("/ok"), content=body, headers=sign_headers(secret, f"msg_base_{n}", body))
        baseline = time.perf_counter() - started
        receiver.clear()

        started = time.perf_counter()
        with stack.engine.begin() as conn:
            for _ in range(count):
                conn.execute(ENQUEUE_FOR_ENDPOINTS, {"site_id": site.id, "endpoint_ids": [endpoint],
                                                     "event_type": "webhook.test", "payload": dumps(payload)})
        wait_until(lambda: stack.sql("SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'")[0][0]
                 == count, 600, "every delivery")
        elapsed = time.perf_counter() - started
        latencies = sorted(float(row[0]) for row in stack.sql(
            "SELECT extract(epoch FROM finished_at - created_at) * 1000 FROM webhook_deliveries"))
        print(f"\nwebhooks: {count} deliveries through 1 worker process (4 threads) in {elapsed:.2f} s = "
              f"{count / elapsed:.0f}/s; commit → delivered p50 {statistics.median(latencies):.0f} ms, "
              f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.0f} ms; "
              f"baseline: the same POSTs from one thread here {count / baseline:.0f}/s; "
              f"load {os.getloadavg()[0]:.1f}")
        assert count == len({r.headers["webhook-id"] for r in receiver.on("/ok")})
    finally:
        stack.stop()
        stack.engine.dispose()
        receiver.close()
