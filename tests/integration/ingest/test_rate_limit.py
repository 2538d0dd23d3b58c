"""Rate limits per IP and per site hold exactly under concurrency across two ingest processes."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx
import pytest

from app.core.settings import Settings
from tests.support.ingest import UA, IngestProcesses, sql

CONCURRENT = 40


async def burst(url: str, ips: list[str]) -> tuple[Counter[int], set[str]]:
    body = json.dumps({"name": "pageview", "url": "https://example.com/", "domain": "example.com"})
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 limits=httpx.Limits(max_connections=CONCURRENT)) as client:
        responses = await asyncio.gather(*(
            client.post("/api/event", headers={"User-Agent": UA, "X-Forwarded-For": ip}, content=body)
            for ip in ips))
    return (Counter(r.status_code for r in responses),
            {r.headers.get("retry-after", "") for r in responses if r.status_code == 429})


@pytest.mark.parametrize(("overrides", "ips", "allowed"), [
    pytest.param({"BEACON_INGEST_RATE_PER_IP": "5"}, ["203.0.113.1"] * CONCURRENT, 5, id="per-ip"),
    pytest.param({"BEACON_INGEST_RATE_PER_SITE": "7"}, [f"203.0.113.{i}" for i in range(CONCURRENT)], 7,
                 id="per-site"),
])
def test_exactly_the_limit_gets_through(environment: dict[str, str], settings: Settings, sites: dict[str, int],
                                        ingest_processes: list[IngestProcesses], overrides: dict[str, str],
                                        ips: list[str], allowed: int) -> None:
    """40 concurrent requests against a limit of N: exactly N stored with 202, the rest 429 with Retry-After."""
    processes = IngestProcesses(environment, count=2, **overrides)
    ingest_processes.append(processes)
    processes.start()
    statuses, retry_after = asyncio.run(burst(processes.url, ips))
    assert {202: allowed, 429: CONCURRENT - allowed} == dict(statuses)
    assert allowed == len(sql(settings, "SELECT id FROM events"))
    assert all(value.isdigit() and 0 < int(value) <= 61 for value in retry_after)
