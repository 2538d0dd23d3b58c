"""The Events API against real PostgreSQL and Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import redis
from sqlalchemy import text

from app.core.db import make_engine
from app.core.redis import Keys
from app.core.settings import Settings
from services.ingest.app import create_app

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


@pytest.fixture
async def client(settings: Settings, db: None, redis_client: redis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    from litestar.testing import AsyncTestClient

    engine = make_engine(settings.database)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sites (domain) VALUES ('example.com'), ('second.org')"))
    engine.dispose()
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


def rows(settings: Settings, sql: str = "SELECT s.domain, e.name, e.hostname, e.pathname, e.props "
         "FROM events e JOIN sites s ON s.id = e.site_id ORDER BY s.domain") -> list[tuple[object, ...]]:
    engine = make_engine(settings.database)
    with engine.connect() as conn:
        result = [tuple(row) for row in conn.execute(text(sql))]
    engine.dispose()
    return result


@pytest.mark.parametrize("content_type", ["text/plain", "application/json"])
async def test_event_is_stored_before_202(client: httpx.AsyncClient, settings: Settings, content_type: str) -> None:
    """Both body encodings are accepted; the row exists when 202 arrives."""
    response = await client.post("/api/event", headers={"Content-Type": content_type, "User-Agent": UA,
                                                         "X-Forwarded-For": "203.0.113.9",
                                                         "Origin": "https://example.com"},
                                 content=json.dumps({"name": "pageview", "url": "https://example.com/pricing",
                                                     "domain": "example.com", "props": {"plan": "pro"}}))
    assert 202 == response.status_code
    assert "*" == response.headers["access-control-allow-origin"]
    assert [("example.com", "pageview", "example.com", "/pricing", {"plan": "pro"})] == rows(settings)


async def test_several_domains_store_one_event_each(client: httpx.AsyncClient, settings: Settings) -> None:
    """domain=a,b stores the event for each known site."""
    response = await client.post("/api/event", headers={"User-Agent": UA}, content=json.dumps(
        {"name": "signup", "url": "https://example.com/", "domain": "example.com,second.org"}))
    assert 202 == response.status_code
    assert ["example.com", "second.org"] == [row[0] for row in rows(settings)]


async def test_unknown_domain_is_accepted_and_dropped(client: httpx.AsyncClient, settings: Settings) -> None:
    """As Plausible does: 202, nothing stored."""
    response = await client.post("/api/event", headers={"User-Agent": UA}, content=json.dumps(
        {"name": "pageview", "url": "https://nope.net/", "domain": "nope.net"}))
    assert 202 == response.status_code
    assert [] == rows(settings)


async def test_visitor_id_is_stable_and_nothing_personal_is_stored(client: httpx.AsyncClient,
                                                                   settings: Settings) -> None:
    """Same IP and UA on the same day: same visitor; no IP or UA anywhere in the row."""
    for path in ("/a", "/b"):
        await client.post("/api/event", headers={"User-Agent": UA, "X-Forwarded-For": "198.51.100.4"},
                          content=json.dumps({"name": "pageview", "url": f"https://example.com{path}",
                                              "domain": "example.com"}))
    await client.post("/api/event", headers={"User-Agent": UA, "X-Forwarded-For": "198.51.100.5"},
                      content=json.dumps({"name": "pageview", "url": "https://example.com/c", "domain": "example.com"}))
    visitors = rows(settings, "SELECT visitor_id FROM events ORDER BY id")
    assert visitors[0] == visitors[1] != visitors[2]
    dump = json.dumps(rows(settings, "SELECT * FROM events"), default=str)
    assert "198.51.100" not in dump and "Mozilla" not in dump


async def test_accepted_event_is_published_live(client: httpx.AsyncClient, settings: Settings,
                                                redis_client: redis.Redis) -> None:
    """The site's live channel receives the event."""
    site_id = rows(settings, "SELECT id FROM sites WHERE domain = 'example.com'")[0][0]
    pubsub = redis_client.pubsub()
    pubsub.subscribe(Keys(settings.redis.key_prefix).channel(f"site:{site_id}"))
    pubsub.get_message(timeout=1)  # subscription confirmation
    await client.post("/api/event", headers={"User-Agent": UA}, content=json.dumps(
        {"name": "pageview", "url": "https://example.com/live", "domain": "example.com"}))
    message = pubsub.get_message(timeout=5)
    pubsub.close()
    assert message is not None
    assert {"type": "event", "site": "example.com", "name": "pageview", "pathname": "/live"} == {
        k: v for k, v in json.loads(message["data"]).items() if k != "at"}


@pytest.mark.parametrize(("body", "status"), [
    pytest.param(b"{oops", 400, id="malformed"),
    pytest.param(b'{"name": "x"}', 400, id="missing-fields"),
    pytest.param(b'{"name": "x", "url": "https://example.com/", "domain": "example.com", "props": "[1,2]"}',
                 400, id="props-not-object"),
    pytest.param(b'{"name": "\xff", "url": "https://example.com/", "domain": "example.com"}', 400, id="bad-utf8"),
    pytest.param(b"x" * (65 * 1024), 413, id="oversized"),
])
async def test_bad_input_gets_a_clear_4xx_and_stores_nothing(client: httpx.AsyncClient, settings: Settings,
                                                            body: bytes, status: int) -> None:
    """Bad bodies get 400 (or 413) with a problem+json reason; no row is written."""
    response = await client.post("/api/event", headers={"User-Agent": UA}, content=body)
    assert status == response.status_code
    assert response.json()["detail"]
    assert [] == rows(settings)


async def test_cors_preflight(client: httpx.AsyncClient) -> None:
    """Browsers may post events from any origin."""
    response = await client.options("/api/event", headers={"Origin": "https://example.com",
                                                           "Access-Control-Request-Method": "POST"})
    assert 204 == response.status_code
    assert "*" == response.headers["access-control-allow-origin"]
