"""Inputs Plausible keeps are kept, as Plausible keeps them, by the real ingest service (issue: Plausible fidelity)."""

from __future__ import annotations

import json

import httpx
import pytest

from app.core.settings import Settings
from tests.support.ingest import UA, sql


async def post(client: httpx.AsyncClient, **fields: object) -> httpx.Response:
    event = {"name": "pageview", "url": "https://example.com/", "domain": "example.com", **fields}
    return await client.post("/api/event", headers={"User-Agent": UA, "X-Forwarded-For": "198.51.100.9",
                                                    "Content-Type": "text/plain"}, content=json.dumps(event))


@pytest.mark.parametrize(("props", "expected"), [
    pytest.param({"plan": "pro", "address": {"city": "Oslo"}, "tags": ["a"]}, {"plan": "pro"}, id="nested-dropped"),
    pytest.param({f"k{i:02}": str(i) for i in range(40)}, {f"k{i:02}": str(i) for i in range(30)}, id="30-kept"),
    pytest.param({"k" * 301: "v", "long": "v" * 2001, "ok": "v"}, {"ok": "v"}, id="over-long-dropped"),
    pytest.param({"n": 3, "b": True, "empty": "", "null": None}, {"n": "3", "b": "true"}, id="scalars"),
    pytest.param("[1, 2]", {}, id="not-an-object"),
])
async def test_props_are_kept_as_plausible_keeps_them(client: httpx.AsyncClient, settings: Settings, props: object,
                                                      expected: dict[str, str]) -> None:
    """Props Plausible drops are dropped one by one; the event itself is stored."""
    assert 202 == (await post(client, name="Signup", props=props)).status_code
    assert [(expected,)] == sql(settings, "SELECT props FROM events")


@pytest.mark.parametrize(("revenue", "expected"), [
    pytest.param({"currency": "EUR", "amount": "12.50"}, ("12.5000", "EUR"), id="known"),
    pytest.param({"currency": "XYZ", "amount": 10}, (None, None), id="unknown-currency"),
    pytest.param({"currency": "EUR", "amount": "NaN"}, (None, None), id="nan-amount"),
    pytest.param({"currency": "EUR", "amount": "99999999999999.99995"}, (None, None), id="too-large-once-rounded"),
    pytest.param({"currency": "EUR", "amount": "99999999999999.9999"}, ("99999999999999.9999", "EUR"),
                 id="largest-storable"),
])
async def test_unusable_revenue_leaves_the_event_without_revenue(client: httpx.AsyncClient, settings: Settings,
                                                                 revenue: object,
                                                                 expected: tuple[str | None, str | None]) -> None:
    """A revenue Plausible would not record: the event is stored without it."""
    assert 202 == (await post(client, name="Purchase", revenue=revenue)).status_code
    assert [("Purchase", *expected)] == sql(settings, "SELECT name, revenue_amount::text, revenue_currency FROM events")


@pytest.mark.parametrize(("fields", "expected"), [
    pytest.param({"url": "/app/login"}, ("pageview", "(none)", "/app/login"), id="url-without-host"),
    # Not a URL at all: Plausible's URI parser reads the whole text as a path, and stores it under (none) too.
    pytest.param({"url": "nota url"}, ("pageview", "(none)", "nota url"), id="not-a-url"),
    pytest.param({"url": "ftp://example.com/file"}, ("pageview", "example.com", "/file"), id="other-scheme"),
    pytest.param({"name": 404}, ("404", "example.com", "/"), id="numeric-name"),
    pytest.param({"url": "https://www.example.com/", "domain": "www.example.com"}, ("pageview", "example.com", "/"),
                 id="www-domain"),
    pytest.param({"url": "https://example.com/bl%C3%A5b%C3%A6r"}, ("pageview", "example.com", "/blåbær"),
                 id="decoded-path"),
    pytest.param({"url": "https://example.com/%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82"},
                 ("pageview", "example.com", "/привет"), id="decoded-cyrillic"),
    pytest.param({"url": "https://example.com/a%20b"}, ("pageview", "example.com", "/a b"), id="decoded-space"),
    pytest.param({"url": "https://example.com/#/caf%C3%A9", "h": 1}, ("pageview", "example.com", "/#/café"),
                 id="decoded-hash-route"),
])
async def test_inputs_plausible_keeps(client: httpx.AsyncClient, settings: Settings, fields: dict[str, object],
                                      expected: tuple[str, str, str]) -> None:
    """Each is answered 202 and stored with Plausible's name, hostname and decoded path."""
    assert 202 == (await post(client, **fields)).status_code
    assert [expected] == sql(settings, "SELECT name, hostname, pathname FROM events")
