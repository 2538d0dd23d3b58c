"""The visitor's address from the sender's X-Forwarded-For, through the real Nginx site and ingest processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.core.settings import Settings
from app.devstack import Nginx, free_port
from tests.support.ingest import UA, IngestProcesses, sql

PAGEVIEW = json.dumps({"name": "pageview", "url": "https://example.com/", "domain": "example.com"})
SENDERS = ["8.8.8.8, 10.0.0.1", "2001:4860:4860::8888", "203.0.113.9, 8.8.8.8"]


@pytest.fixture
def through_nginx(environment: dict[str, str], ingest_processes: list[IngestProcesses], tmp_path: Path,
                  request: pytest.FixtureRequest) -> Iterator[str]:
    """Ingest processes (with the test's environment overrides) behind Nginx; the HTTPS base URL."""
    overrides: dict[str, str] = getattr(request, "param", {})
    processes = IngestProcesses(environment, count=1, **overrides)
    ingest_processes.append(processes)
    processes.start()
    unused = f"127.0.0.1:{free_port()}"
    nginx = Nginx(tmp_path / "nginx", free_port(), free_port(),
                  {"api": [unused], "realtime": [unused], "ingest": [f"127.0.0.1:{processes.port}"]})
    nginx.start()
    try:
        yield f"https://127.0.0.1:{nginx.https_port}"
    finally:
        nginx.stop()


def send(url: str, forwarded_for: list[str]) -> list[int]:
    with httpx.Client(base_url=url, verify=False, timeout=30) as client:  # the test Nginx's own certificate
        return [client.post("/api/event", content=PAGEVIEW,
                            headers={"User-Agent": UA, "X-Forwarded-For": value}).status_code
                for value in forwarded_for]


def test_first_address_of_the_header_is_the_visitor(through_nginx: str, settings: Settings,
                                                   sites: dict[str, int]) -> None:
    """Three senders behind one proxy address: 3 visitors, countries of their first valid addresses."""
    assert [202, 202, 202] == send(through_nginx, SENDERS)
    rows = sql(settings, "SELECT visitor_id, country FROM events ORDER BY id")
    assert 3 == len({visitor for visitor, _ in rows})
    assert ["US", "US", ""] == [country for _, country in rows]


@pytest.mark.parametrize("through_nginx", [{"BEACON_INGEST_HONOUR_FORWARDED_FOR": "0"}], indirect=True)
def test_header_can_be_ignored_per_installation(through_nginx: str, settings: Settings,
                                                sites: dict[str, int]) -> None:
    """With the setting off, every request counts under the address Nginx saw: one visitor."""
    assert [202, 202, 202] == send(through_nginx, SENDERS)
    assert 1 == len({visitor for (visitor,) in sql(settings, "SELECT visitor_id FROM events")})


@pytest.mark.parametrize("through_nginx", [{"BEACON_INGEST_RATE_PER_IP": "2"}], indirect=True)
def test_rate_limit_keys_on_the_address_nginx_saw(through_nginx: str, settings: Settings,
                                                  sites: dict[str, int]) -> None:
    """Made-up addresses in the header do not multiply the per-address limit."""
    assert [202, 202, 429] == send(through_nginx, SENDERS)
    assert 2 == len(sql(settings, "SELECT id FROM events"))
