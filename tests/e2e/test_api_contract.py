"""The API contract on the running stack, through Nginx: the OpenAPI document fuzzed, hostile corpora, the docs page.

- schemathesis generates requests for every operation of ``/api/docs/openapi.json`` (valid and invalid data,
  authenticated with a Bearer key and an admin's session cookie) and checks for server errors, undeclared
  status codes, undeclared content types and bodies that do not match their declared schema. The number of
  examples per operation is bounded (``FUZZ_EXAMPLES``) so the module takes about two minutes here.
- A hand-made hostile corpus for ``POST /api/event`` (answered 202 or 4xx, never 5xx) and for the WebSocket
  (answered with a message or a close frame, never a dropped connection).
- ``/api/docs`` renders in Chromium under the CSP Nginx sends (no CDN, no inline script).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import websockets
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks as st_checks
from schemathesis.core.failures import FailureGroup
from sqlalchemy import text

from app.core.db import make_engine
from app.core.sessions import SESSION_COOKIE
from tests.support.browser import launch, screenshot, watch
from tests.support.stack import ADMIN_EMAIL, ADMIN_PASSWORD, Stack

FUZZ_EXAMPLES = int(os.environ.get("BEACON_FUZZ_EXAMPLES", "40"))
"""Examples per operation and generation mode (valid and invalid data); raise it for a longer run."""
FUZZ_EMAIL = "fuzz@e2e.test"
FUZZ_SITE = "fuzz.e2e.example"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def _session_cookie(stack: Stack) -> str:
    """The admin's session cookie, from signing in through the form (with its CSRF token)."""
    with stack.client() as client:
        page = client.get("/login")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert token is not None, page.text
        answer = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": "/",
                                             "_csrf_token": token.group(1)})
        assert 303 == answer.status_code, answer.text
        cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    return cookie


@pytest.fixture(scope="module")
def fuzz_key(running: Stack) -> Iterator[str]:
    """A stats:read + sites:write key of a user of its own, whose sites are deleted afterwards."""
    password = secrets.token_urlsafe(16)
    assert 0 == running.beacon("createuser", "--email", FUZZ_EMAIL, "--password-stdin",
                               stdin=password + "\n").returncode
    created = running.beacon("apikey", "create", "--email", FUZZ_EMAIL, "--name", "fuzz",
                             "--scope", "stats:read", "--scope", "sites:write")
    assert 0 == created.returncode, created.stderr
    key = created.stdout.strip()
    with running.client(headers={"Authorization": f"Bearer {key}"}) as client:
        assert 200 == client.post("/api/v1/sites", json={"domain": FUZZ_SITE}).status_code
    yield key
    engine = make_engine(running.settings.database)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM sites WHERE id IN (SELECT m.site_id FROM memberships m JOIN users u "
                          "ON u.id = m.user_id WHERE u.email = :e)"), {"e": FUZZ_EMAIL})
    engine.dispose()


@pytest.fixture(scope="module")
def api_schema(running: Stack, fuzz_key: str) -> Any:
    """The OpenAPI document the running api serves, aimed at Nginx, with both kinds of credentials."""
    with running.client() as client:
        answer = client.get("/api/docs/openapi.json")
    assert 200 == answer.status_code, answer.text
    assert "/api/event" in answer.json()["paths"], "the Events API is part of the public document"
    schema = schemathesis.openapi.from_dict(answer.json())
    schema.config.update(base_url=running.base_url, tls_verify=str(running.cert), request_timeout=30,
                         headers={"Authorization": f"Bearer {fuzz_key}", "User-Agent": UA},
                         suppress_health_check=list(HealthCheck),
                         # A real site in query strings, so the Stats API's other parameters reach analytics;
                         # path and body site ids stay generated (unknown sites must be 404s).
                         parameters={"query.site_id": FUZZ_SITE})
    return schema


CHECKS = [st_checks.not_a_server_error, st_checks.status_code_conformance, st_checks.content_type_conformance,
          st_checks.response_schema_conformance]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


def _fuzz(operation: Any, mode: Any, admin_cookie: str, found: list[str]) -> None:
    """One hypothesis run of ``operation`` in ``mode``; up to three failures are kept in ``found``."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        try:
            case.call_and_validate(checks=CHECKS, cookies={SESSION_COOKIE: admin_cookie})
        except (AssertionError, FailureGroup) as exc:
            if len(found) < 3:
                found.append(f"{case.method} {case.formatted_path} query={case.query} "
                             f"body={str(case.body)[:200]}: {str(exc)[:600]}")

    try:
        run()
    except Unsatisfiable:
        # An operation without parameters or body (GET /api/health) has no invalid input to make.
        assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label


def test_every_operation_holds_its_contract(api_schema: Any, admin_cookie: str) -> None:
    """No 5xx, and every status code, content type and body as the document declares it, for every operation.

    One hypothesis run per operation and generation mode, driven here rather than by schemathesis' pytest
    plugin (whose lazy loader sets ``Function._nodeid``, which pytest 9 no longer has). Failures are
    collected, not raised at once, so one run reports every operation that breaks its contract.
    """
    failures: dict[str, list[str]] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        for mode in MODES:
            _fuzz(operation, mode, admin_cookie, failures.setdefault(f"{operation.label} ({mode.value})", []))
    failures = {label: found for label, found in failures.items() if found}
    assert {} == failures


EXPORT = "GET /api/v1/sites/{domain}/export"


def test_the_export_operation_is_covered_and_holds(api_schema: Any, admin_cookie: str, fuzz_key: str) -> None:
    """The export route is in the fuzzed document with its error answers declared, holds its contract under
    fuzzing, and answers a real site's valid and invalid ranges as declared (a zip, or problem+json)."""
    operations = {result.ok().label: result.ok() for result in api_schema.get_all_operations()}
    assert EXPORT in operations
    operation = operations[EXPORT]
    declared = set(operation.definition.raw["responses"])
    assert {"200", "400", "401", "404"} <= declared
    failures: dict[str, list[str]] = {}
    for mode in MODES:
        _fuzz(operation, mode, admin_cookie, failures.setdefault(mode.value, []))
    assert {} == {label: found for label, found in failures.items() if found}
    for date_range, status in (("7d", 200), ("2026-02-30,2026-03-01", 400), ("someday", 400)):
        case = operation.Case(path_parameters={"domain": FUZZ_SITE}, query={"date_range": date_range},
                              headers={"Authorization": f"Bearer {fuzz_key}", "User-Agent": UA})
        response = case.call_and_validate(checks=CHECKS)
        assert status == response.status_code, response.text[:300]


@pytest.fixture(scope="module")
def admin_cookie(running: Stack) -> str:
    return _session_cookie(running)


def _page(url: str) -> bytes:
    return json.dumps({"name": "pageview", "url": url, "domain": FUZZ_SITE}).encode()


DEEP = b"[" * 20_000 + b"]" * 20_000
EVENT_CORPUS: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not-json", b"hello"),
    ("json-null", b"null"),
    ("json-array", b"[]"),
    ("json-number", b"1e999999"),
    ("truncated", b'{"name":"pageview","url":"https://'),
    ("invalid-utf8", b'{"name":"pageview","url":"https://x.example/","domain":"\xff\xfe"}'),
    ("lone-surrogate", b'{"name":"pageview","url":"https://x.example/\\ud800","domain":"x"}'),
    ("nul-escape", b'{"name":"page\\u0000view","url":"https://x.example/","domain":"x"}'),
    ("raw-nul", b'{"name":"page\x00view","url":"https://x.example/","domain":"x"}'),
    ("deep-props", b'{"name":"pageview","url":"https://x.example/","domain":"x","props":{"a":' + DEEP + b"}}"),
    ("deep-unknown", b'{"name":"pageview","url":"https://x.example/","domain":"x","zz":' + DEEP + b"}"),
    ("deep-p-string", json.dumps({"n": "pageview", "u": "https://x.example/", "d": "x",
                                  "p": DEEP.decode()}).encode()),
    ("deep-revenue", json.dumps({"n": "pageview", "u": "https://x.example/", "d": "x",
                                 "$": DEEP.decode()}).encode()),
    ("unclosed-deep", b'{"props":' + b"[" * 50_000),
    ("huge-int", b'{"name":"pageview","url":"https://x.example/","domain":"x","h":' + b"9" * 5000 + b"}"),
    ("huge-float-revenue", json.dumps({"name": "Purchase", "url": "https://x.example/", "domain": FUZZ_SITE,
                                       "revenue": {"currency": "EUR", "amount": "1e400"}}).encode()),
    ("nan-revenue", json.dumps({"name": "Purchase", "url": "https://x.example/", "domain": FUZZ_SITE,
                                "revenue": {"currency": "EUR", "amount": "NaN"}}).encode()),
    ("long-url", _page("https://x.example/" + "a" * 70_000)),
    ("referrer-995-labels", json.dumps({"name": "pageview", "url": f"https://{FUZZ_SITE}/", "domain": FUZZ_SITE,
                                        "referrer": "http://" + "a." * 995 + "com/"}).encode()),
    ("bad-ipv6-url", _page("http://[::1/")),
    ("bad-ipv6-referrer", json.dumps({"name": "pageview", "url": f"https://{FUZZ_SITE}/", "domain": FUZZ_SITE,
                                      "referrer": "http://[fe80::1%zz/"}).encode()),
    ("many-domains", json.dumps({"name": "pageview", "url": "https://x.example/",
                                 "domain": ",".join(f"d{i}.example" for i in range(5000))}).encode()),
    ("many-props", json.dumps({"name": "pageview", "url": f"https://{FUZZ_SITE}/", "domain": FUZZ_SITE,
                               "props": {f"k{i}": i for i in range(5000)}}).encode()),
    ("wrong-types", b'{"name":1,"url":[],"domain":{},"props":"x","interactive":"yes"}'),
    ("valid", _page(f"https://{FUZZ_SITE}/ok")),
]


@pytest.mark.parametrize(("name", "body"), [pytest.param(n, b, id=n) for n, b in EVENT_CORPUS])
def test_event_api_shrugs_off_hostile_bodies(running: Stack, name: str, body: bytes) -> None:
    """202 or a 4xx with a reason, never a 5xx, through Nginx."""
    with running.client() as client:
        answer = client.post("/api/event", content=body, headers={"Content-Type": "text/plain", "User-Agent": UA})
    assert answer.status_code == 202 or 400 <= answer.status_code < 500, (name, answer.status_code, answer.text)
    if answer.status_code == 400:
        assert answer.json()["detail"].startswith("invalid event:"), answer.text


WS_CORPUS: list[tuple[str, str | bytes]] = [
    ("nested-2000", "[" * 2000 + "]" * 2000),
    ("nested-objects", '{"a":' * 500 + "1" + "}" * 500),
    ("unclosed", "[" * 3000),
    ("not-json", "hello"),
    ("nul", '{"type":"join","room":"a\\u0000"}'),
    ("join-huge-room", json.dumps({"type": "join", "room": "r" * 4000})),
    ("subscribe-odd", json.dumps({"type": "subscribe", "channel": ["site:1"]})),
    ("binary", b"\x00\x01\x02"),
    ("too-long", "x" * 70_000),
]


@pytest.mark.parametrize(("name", "frame"), [pytest.param(n, f, id=n) for n, f in WS_CORPUS])
def test_websocket_answers_hostile_frames(running: Stack, admin_cookie: str, name: str,
                                          frame: str | bytes) -> None:
    """Each frame gets a message or a close frame with a code; the connection is never just dropped."""
    with running.client(cookies={SESSION_COOKIE: admin_cookie}) as client:
        page = client.get("/sites/e2e.example")
    ws_path = re.search(r'data-ws-url="([^"]+)"', page.text)
    assert ws_path is not None, page.text[:300]
    url = running.base_url.replace("https://", "wss://") + ws_path.group(1).replace("&amp;", "&")

    async def scenario() -> tuple[str, object]:
        async with websockets.connect(url, ssl=running.ssl_context(), max_size=None) as socket:
            assert "hello" == json.loads(await socket.recv())["type"]
            await socket.send(frame)
            try:
                while True:
                    message = json.loads(await asyncio.wait_for(socket.recv(), 10))
                    if message.get("type") != "ping":
                        return "message", message.get("type")
            except websockets.ConnectionClosed as closed:
                return "closed", closed.rcvd.code if closed.rcvd else None

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        kind, detail = pool.submit(asyncio.run, scenario()).result()
    assert detail is not None, (name, kind)
    if kind == "closed":
        assert detail in (1003, 1007, 1008, 1009), (name, detail)
    else:
        assert "error" == detail, (name, detail)


def test_api_docs_render_under_the_csp(running: Stack, playwright: Any) -> None:
    """Swagger UI loads from Beacon's own static files, lists every operation, and breaks no CSP rule."""
    with running.client() as client:
        docs = client.get("/api/docs")
        operations = sum(len(item) for item in client.get("/api/docs/openapi.json").json()["paths"].values())
    assert "script-src 'self'" in docs.headers["content-security-policy"]
    assert "cdn" not in docs.text
    browser = launch(playwright)
    try:
        page = browser.new_context(ignore_https_errors=True).new_page()
        problems = watch(page)
        page.goto(running.base_url + "/api/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
        page.wait_for_selector(".opblock-summary", timeout=20_000)
        title = page.inner_text(".swagger-ui .info .title")
        shown = page.locator(".opblock-summary").count()
        screenshot(page, "api-docs")
    finally:
        browser.close()
    assert title.startswith("Beacon API")
    assert operations == shown
    assert [] == problems.all()
