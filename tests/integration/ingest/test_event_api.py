"""The Events API against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import random
import string

import httpx
import pytest
import redis

from app.core.redis import Keys
from app.core.settings import Settings
from services.ingest.logic import MAX_PATH_BYTES, cut_utf8
from tests.support.ingest import UA, IngestProcesses, sql


def rows(settings: Settings, statement: str = "SELECT s.domain, e.name, e.hostname, e.pathname, e.props "
         "FROM events e JOIN sites s ON s.id = e.site_id ORDER BY s.domain") -> list[tuple[object, ...]]:
    return sql(settings, statement)


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


async def test_each_202_carries_its_own_headers_once(client: httpx.AsyncClient) -> None:
    """Headers added on the way out (request id, CORS) are not kept for the next answer: one of each per 202."""
    answers = []
    for number in range(3):
        response = await client.post("/api/event", headers={
            "User-Agent": UA, "Origin": "https://example.com", "X-Request-ID": f"event-request-{number:04d}"},
            content=json.dumps({"name": "pageview", "url": "https://example.com/", "domain": "example.com"}))
        answers.append((response.status_code, response.headers.get_list("x-request-id"),
                        response.headers.get_list("access-control-allow-origin")))
    assert [(202, [f"event-request-{number:04d}"], ["*"]) for number in range(3)] == answers


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
    data = json.loads(message["data"])
    assert {"type": "event", "site": "example.com", "name": "pageview", "pathname": "/live", "count": 1,
            "visitors": 1} == {k: v for k, v in data.items() if k != "at"}


@pytest.mark.parametrize(("body", "status"), [
    pytest.param(b"{oops", 400, id="malformed"),
    pytest.param(b'{"name": "x"}', 400, id="missing-fields"),
    pytest.param(b'{"name": "x", "url": "data:text/plain,x", "domain": "example.com"}', 400, id="data-url"),
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


async def test_every_field_is_stored(client: httpx.AsyncClient, settings: Settings) -> None:
    """name, url (path, query, UTM), referrer, props, revenue and interactive all reach the row."""
    response = await client.post("/api/event", headers={"User-Agent": UA, "X-Forwarded-For": "81.2.69.160"},
                                 content=json.dumps({
                                     "name": "Purchase", "url": "https://www.example.com/checkout?utm_source=news"
                                     "&utm_medium=email&utm_campaign=autumn&utm_term=shoes&utm_content=hero",
                                     "domain": "example.com", "referrer": "https://www.google.com/search?q=shoes",
                                     "props": {"plan": "pro", "seats": 3, "trial": False},
                                     "revenue": {"currency": "eur", "amount": "12.50"}, "interactive": False}))
    assert 202 == response.status_code
    stored = rows(settings, "SELECT name, hostname, pathname, referrer, referrer_source, channel, utm_source, "
                  "utm_medium, utm_campaign, utm_term, utm_content, props, revenue_amount::text, revenue_currency, "
                  "interactive, country, browser, os, device FROM events")
    assert [("Purchase", "example.com", "/checkout", "google.com/search", "news", "Email",
             "news", "email", "autumn", "shoes", "hero", {"plan": "pro", "seats": "3", "trial": "false"},
             "12.5000", "EUR", False, "GB", "Chrome", "GNU/Linux", "Desktop")] == stored


async def test_long_page_paths_are_stored_cut_to_fit_the_indexes(client: httpx.AsyncClient,
                                                                 settings: Settings) -> None:
    """Paths of up to 2,000 characters that do not compress (random letters; CJK characters, three bytes each)
    are stored cut to 1,000 bytes at a character boundary: a page path is a key of the events' page index and,
    as a visit's entry and exit page, included twice in the visits' start index, whose rows PostgreSQL limits to
    2,704 bytes. Uncut, the first event failed its whole batch and the visit's second one the trigger."""
    rng = random.Random(12)
    ascii_paths = ["/" + "".join(rng.choices(string.ascii_letters, k=1990)) for _ in range(2)]
    cjk_path = "/" + "".join(chr(0x4E00 + rng.randrange(20_000)) for _ in range(1990))
    for path in (*ascii_paths, cjk_path):
        response = await client.post("/api/event", headers={"User-Agent": UA, "X-Forwarded-For": "203.0.113.40"},
                                     content=json.dumps({"name": "pageview", "url": f"https://example.com{path}",
                                                         "domain": "example.com"}))
        assert 202 == response.status_code
    stored = [row[0] for row in rows(settings, "SELECT pathname FROM events ORDER BY timestamp, id")]
    assert [cut_utf8(path, MAX_PATH_BYTES) for path in (*ascii_paths, cjk_path)] == stored
    assert [1000, 1000, 1000] == [len(path.encode()) for path in stored]
    visit = rows(settings, "SELECT entry_page, exit_page, pageviews FROM sessions")
    assert [(stored[0], stored[2], 3)] == visit


async def test_tracker_short_form(client: httpx.AsyncClient, settings: Settings) -> None:
    """The tracker's short names: n, u, d, r, p, $ (revenue), h (hash routing), i (interactive)."""
    response = await client.post("/api/event", headers={"User-Agent": UA, "Content-Type": "text/plain"},
                                 content=json.dumps({"n": "Signup", "u": "https://example.com/app#/settings",
                                                     "d": "example.com", "r": None, "p": {"k": "v"},
                                                     "$": {"currency": "USD", "amount": 9}, "h": 1, "i": False}))
    assert 202 == response.status_code
    assert [("Signup", "/app#/settings", {"k": "v"}, "9.0000", "USD", False)] == rows(
        settings, "SELECT name, pathname, props, revenue_amount::text, revenue_currency, interactive FROM events")


@pytest.mark.parametrize(("body", "reason"), [
    pytest.param(b"", "not valid JSON", id="empty"),
    pytest.param(b"[1]", "Expected `object`", id="array"),
    pytest.param(b'{"name": "x", "url": "https://example.com/"}', "domain is required", id="no-domain"),
    pytest.param(b'{"name": "x", "domain": "example.com"}', "url is required", id="no-url"),
    pytest.param(b'{"url": "https://example.com/", "domain": "example.com"}', "name is required", id="no-name"),
    pytest.param(b'{"name": "x", "url": "https://[::1/", "domain": "example.com"}', "not a valid URL",
                 id="broken-url"),
    pytest.param(json.dumps({"name": "x", "url": "https://example.com/" + "a" * 2001, "domain": "example.com"})
                 .encode(), "page path is longer than", id="long-url"),
    pytest.param(json.dumps({"name": "x", "url": "https://example.com/", "domain": "example.com",
                             "interactive": "no"}).encode(), "Expected `bool", id="interactive-type"),
    pytest.param(json.dumps({"name": "x", "url": "https://example.com/", "domain": ",".join(
        f"s{i}.com" for i in range(11))}).encode(), "1 to 10 sites", id="too-many-domains"),
    pytest.param(b'{"name": "x", "url": "https://example.com/", "domain": "example.com"}garbage', "JSON",
                 id="trailing-garbage"),
    pytest.param(b'{"name": "x\\u0000", "url": "https://example.com/", "domain": "example.com"}', "NUL",
                 id="nul-in-name"),
    pytest.param(b'{"name": "x", "url": "https://example.com/", "domain": "example.com", "props": {"k": "\\u0000"}}',
                 "NUL", id="nul-in-prop"),
    pytest.param(json.dumps({"name": "x", "url": f"https://{'a' * 250}.example.com/", "domain": "example.com"})
                 .encode(), "253", id="long-host"),
    pytest.param(b'{"name": "x\\ud800", "url": "https://example.com/", "domain": "example.com"}', "JSON",
                 id="lone-surrogate"),
    pytest.param(b'{"name": {"a": 1}, "url": "https://example.com/", "domain": "example.com"}', "Expected `int",
                 id="name-not-scalar"),
    pytest.param(b'{"name": "x", "url": "data:text/plain,x", "domain": "example.com"}', "not allowed", id="data-url"),
    pytest.param(json.dumps({"name": "x", "url": "https://example.com/", "domain": "example.com",
                             "referrer": "https://r.example/" + "a" * 2000}).encode(), "referrer is longer",
                 id="long-referrer"),
])
async def test_bad_input_reason_is_given(client: httpx.AsyncClient, settings: Settings, body: bytes,
                                         reason: str) -> None:
    """Each bad body: 400, problem+json with the reason, nothing stored."""
    response = await client.post("/api/event", headers={"User-Agent": UA, "Content-Type": "text/plain"},
                                 content=body)
    assert (400, "application/problem+json") == (response.status_code, response.headers["content-type"])
    assert reason in response.json()["detail"]
    assert [] == rows(settings)


async def test_cors_is_open_on_the_event_endpoint_only_for_post(client: httpx.AsyncClient) -> None:
    """The preflight allows POST with Content-Type from any origin; GET is not an Events API method."""
    preflight = await client.options("/api/event", headers={"Origin": "https://example.com",
                                                            "Access-Control-Request-Method": "POST",
                                                            "Access-Control-Request-Headers": "content-type"})
    get = await client.get("/api/event")
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert 405 == get.status_code


def test_a_refused_row_fails_only_its_own_request(environment: dict[str, str], settings: Settings,
                                                  sites: dict[str, int],
                                                  ingest_processes: list[IngestProcesses]) -> None:
    """A value PostgreSQL refuses (here: a CHECK added for the test, then an index whose row the event's
    properties make longer than PostgreSQL's 2,704 bytes) gets 400; its batch-mates are stored."""
    processes = IngestProcesses(environment, count=1, BEACON_INGEST_BATCH_WAIT_MS="200")
    ingest_processes.append(processes)
    processes.start()

    async def burst(props: dict[str, dict[str, str]] | None = None) -> list[int]:
        async with httpx.AsyncClient(base_url=processes.url, timeout=30) as http:
            responses = await asyncio.gather(*(
                http.post("/api/event", headers={"User-Agent": UA}, content=json.dumps(
                    {"name": "pageview", "url": f"https://example.com{path}", "domain": "example.com",
                     "props": (props or {}).get(path, {})}))
                for path in ("/a", "/poison", "/b", "/c")))
        return [r.status_code for r in responses]

    sql(settings, "ALTER TABLE events ADD CONSTRAINT test_poison CHECK (pathname <> '/poison')")
    try:
        statuses = asyncio.run(burst())
    finally:
        sql(settings, "ALTER TABLE events DROP CONSTRAINT test_poison")
    assert [202, 400, 202, 202] == statuses
    assert [("/a",), ("/b",), ("/c",)] == sql(settings, "SELECT pathname FROM events ORDER BY pathname")
    refused = [json.loads(line) for line in processes.log.read_text().splitlines() if "batch refused" in line]
    assert 4 == refused[0]["events"]  # the four requests did share one batch

    rng = random.Random(54)
    big = {f"k{n}": "".join(rng.choices(string.ascii_letters, k=1500)) for n in range(3)}
    sql(settings, "DELETE FROM events")
    sql(settings, "CREATE INDEX test_props_text ON events ((props::text))")
    try:
        statuses = asyncio.run(burst({"/poison": big}))
    finally:
        sql(settings, "DROP INDEX test_props_text")
    assert [202, 400, 202, 202] == statuses
    assert [("/a",), ("/b",), ("/c",)] == sql(settings, "SELECT pathname FROM events ORDER BY pathname")

