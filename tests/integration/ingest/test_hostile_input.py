"""Hostile Events API bodies: each answered with a 400 that names the problem, and nothing is stored."""

from __future__ import annotations

import json

import httpx
import pytest

from app.core.settings import Settings
from tests.support.ingest import UA, sql

DEEP = "[" * 20_000 + "]" * 20_000
PAGE = {"name": "pageview", "url": "https://example.com/", "domain": "example.com"}


def body(**fields: object) -> bytes:
    return json.dumps({**PAGE, **fields}).encode()


@pytest.mark.parametrize(("content", "reason"), [
    pytest.param(json.dumps(PAGE).encode()[:-1] + b',"props":{"a":' + DEEP.encode() + b"}}", "nested deeper",
                 id="props-nested-20000"),
    pytest.param(json.dumps(PAGE).encode()[:-1] + b',"unknown":' + DEEP.encode() + b"}", "nested deeper",
                 id="unknown-field-nested-20000"),
    pytest.param(body(p=DEEP), "props: JSON nested deeper", id="p-string-nested"),
    pytest.param(body(revenue=DEEP), "revenue: JSON nested deeper", id="revenue-string-nested"),
    pytest.param(json.dumps({**PAGE, "$": DEEP}).encode(), "revenue: JSON nested deeper", id="dollar-string-nested"),
    pytest.param(b'{"name":"pageview","url":"https://example.com/","domain":"\xff"}', "not valid UTF-8",
                 id="invalid-utf8"),
    pytest.param(body(name="page\x00view"), "NUL", id="nul-name"),
    pytest.param(body(props={"k\x00": "v"}), "NUL", id="nul-prop-key"),
    pytest.param(body(p=json.dumps({"k": "\ud800"})), "not valid Unicode", id="lone-surrogate-in-p"),
    pytest.param(body(referrer="http://" + "a." * 995 + "com/"), "referrer's host name", id="referrer-995-labels"),
    pytest.param(body(referrer="http://" + "a" * 64 + ".com/"), "referrer's host name", id="referrer-long-label"),
])
async def test_hostile_bodies_are_refused(client: httpx.AsyncClient, settings: Settings, content: bytes,
                                          reason: str) -> None:
    """400 with the reason in a problem+json body; no row written."""
    response = await client.post("/api/event", headers={"User-Agent": UA, "Content-Type": "text/plain"},
                                 content=content)
    assert (400, "application/problem+json") == (response.status_code, response.headers["content-type"])
    assert reason in response.json()["detail"]
    assert [] == sql(settings, "SELECT id FROM events")


async def test_nesting_within_the_limit_is_still_parsed(client: httpx.AsyncClient, settings: Settings) -> None:
    """A flat event with brackets inside strings is stored: only real nesting counts."""
    path = "/" + "[" * 40
    response = await client.post("/api/event", headers={"User-Agent": UA},
                                 content=body(url=f"https://example.com{path}", props={"q": "{" * 40}))
    assert 202 == response.status_code, response.text
    assert [(path,)] == sql(settings, "SELECT pathname FROM events")
