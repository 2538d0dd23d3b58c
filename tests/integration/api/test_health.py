"""/api/health names exactly what is failing."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from litestar.testing import AsyncTestClient

from app.core.redis import Keys
from app.core.settings import Settings
from app.main import create_app
from tests.support.beacon import Services


async def test_health_is_503_and_names_failed_components(settings: Settings, redis_client: redis.Redis,
                                                         serve: Callable[[str], int], services: Services) -> None:
    """With analytics up and a fresh worker heartbeat, only the missing pieces are reported."""
    # The session's services outlive the tests that started them: stop the ones this test needs missing.
    services.stop("compute", "ingest", "integrations")
    serve("analytics")
    redis_client.set(Keys(settings.redis.key_prefix).heartbeat("worker"), time.time())
    redis_client.set(Keys(settings.redis.key_prefix).heartbeat("scheduler"), time.time() - 3600)
    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.get("/api/health")
    body = response.json()
    assert 503 == response.status_code
    assert ["compute", "ingest", "integrations", "scheduler"] == body["failed"]
    assert "ok" == body["checks"]["database"] == body["checks"]["redis"] == body["checks"]["analytics"]
    assert body["checks"]["scheduler"].startswith("last heartbeat")
    assert "unreachable" in body["checks"]["ingest"]


async def test_head_gives_the_same_status_without_a_body(settings: Settings, redis_client: redis.Redis,
                                                         serve: Callable[[str], int]) -> None:
    """Uptime monitors often send HEAD (RFC 9110 §9.3.2: a server supports it wherever it supports GET): the
    status is GET's, here 503 with services down, and no body."""
    serve("analytics")
    async with AsyncTestClient(app=create_app(settings)) as client:
        get, head = await client.get("/api/health"), await client.head("/api/health")
    assert 503 == get.status_code == head.status_code
    assert b"" == head.content


async def test_unknown_api_route_is_problem_json(settings: Settings) -> None:
    """API errors are application/problem+json, not HTML and never a traceback."""
    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.get("/api/nothing-here")
    assert 404 == response.status_code
    assert "application/problem+json" == response.headers["content-type"]
    assert 404 == response.json()["status"]


async def test_ui_errors_are_beacon_pages(settings: Settings) -> None:
    """A browser asking for a missing page gets a Beacon HTML page."""
    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.get("/no/such/page", headers={"Accept": "text/html"})
    assert 404 == response.status_code
    assert response.headers["content-type"].startswith("text/html")
    assert "Back to Beacon" in response.text
    assert "Traceback" not in response.text
