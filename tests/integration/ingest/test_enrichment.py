"""Enrichment, bot filtering and per-site exclusions, as stored by the real service."""

from __future__ import annotations

import json

import httpx
import pytest

from app.core.settings import Settings
from tests.integration.ingest.conftest import UA, sql

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Mobile/15E148 Safari/604.1")
IPAD = ("Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.0 "
        "Mobile/15E148 Safari/604.1")
FIREFOX_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/126.0.6478.71 Mobile Safari/537.36")


async def send(client: httpx.AsyncClient, user_agent: str = UA, ip: str = "198.51.100.7", path: str = "/",
               referrer: str | None = None, query: str = "") -> httpx.Response:
    return await client.post("/api/event", headers={"User-Agent": user_agent, "X-Forwarded-For": ip},
                             content=json.dumps({"name": "pageview", "url": f"https://example.com{path}{query}",
                                                 "domain": "example.com", "referrer": referrer}))


@pytest.mark.parametrize(("user_agent", "expected"), [
    pytest.param(IPHONE, ("Mobile Safari", "17.5", "iOS", "17.5", "mobile"), id="iphone"),
    pytest.param(IPAD, ("Mobile Safari", "16.0", "iOS", "16.0", "tablet"), id="ipad"),
    pytest.param(FIREFOX_WIN, ("Firefox", "128.0", "Windows", "10", "desktop"), id="firefox-windows"),
    pytest.param(ANDROID, ("Chrome Mobile", "126.0", "Android", "14", "mobile"), id="android"),
])
async def test_user_agent_is_parsed_and_not_stored(client: httpx.AsyncClient, settings: Settings, user_agent: str,
                                                  expected: tuple[str, ...]) -> None:
    """Browser, OS with versions and device type are stored; the User-Agent string is not."""
    assert 202 == (await send(client, user_agent)).status_code
    assert [expected] == sql(settings, "SELECT browser, browser_version, os, os_version, device FROM events")


@pytest.mark.parametrize(("referrer", "query", "expected"), [
    pytest.param("https://www.google.com/search?q=x", "", ("Google", "search", ""), id="search"),
    pytest.param("https://duckduckgo.com/", "", ("DuckDuckGo", "search", ""), id="search-2"),
    pytest.param("https://www.facebook.com/", "", ("Facebook", "social", ""), id="social"),
    pytest.param("https://mail.google.com/mail/u/0", "", ("Gmail", "email", ""), id="email"),
    pytest.param("https://blog.example.net/post", "", ("blog.example.net", "referral", ""), id="unknown-site"),
    pytest.param(None, "", ("", "direct", ""), id="direct"),
    pytest.param("https://example.com/previous", "", ("", "direct", ""), id="internal"),
    pytest.param("https://t.co/x", "?utm_source=twitter&utm_medium=cpc", ("Twitter", "paid", "twitter"),
                 id="paid-campaign"),
    pytest.param(None, "?ref=producthunt", ("producthunt", "referral", "producthunt"), id="ref-parameter"),
])
async def test_referrer_source_and_channel(client: httpx.AsyncClient, settings: Settings, referrer: str | None,
                                           query: str, expected: tuple[str, str, str]) -> None:
    """The referrer is classified from the referrer list; UTM parameters may override the channel."""
    assert 202 == (await send(client, referrer=referrer, query=query)).status_code
    assert [expected] == sql(settings, "SELECT referrer_source, channel, utm_source FROM events")


@pytest.mark.parametrize(("ip", "country"), [
    pytest.param("81.2.69.160", "GB", id="ipv4"),
    pytest.param("2001:4860:4860::8888", "US", id="ipv6"),
    pytest.param("10.1.2.3", "", id="private"),
])
async def test_country_from_ip_without_storing_it(client: httpx.AsyncClient, settings: Settings, ip: str,
                                                 country: str) -> None:
    """The country comes from the packaged dataset; the address itself is never stored."""
    assert 202 == (await send(client, ip=ip)).status_code
    assert [(country,)] == sql(settings, "SELECT country FROM events")
    assert ip not in json.dumps(sql(settings, "SELECT * FROM events"), default=str)


@pytest.mark.parametrize("user_agent", [
    pytest.param("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", id="googlebot"),
    pytest.param("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", id="bingbot"),
    pytest.param("python-requests/2.32.3", id="library"),
    pytest.param("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 "
                 "Safari/537.36", id="headless-chrome"),
    pytest.param("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
                 "Chrome/126.0.0.0 Safari/537.36 Chrome-Lighthouse", id="lighthouse"),
    pytest.param("", id="no-user-agent"),
])
async def test_bots_are_accepted_and_dropped(client: httpx.AsyncClient, settings: Settings, user_agent: str) -> None:
    """As Plausible does: a bot gets 202 and nothing is stored."""
    assert 202 == (await send(client, user_agent)).status_code
    assert [] == sql(settings, "SELECT id FROM events")


@pytest.mark.parametrize(("kind", "pattern", "ip", "path", "stored"), [
    pytest.param("ip", "203.0.113.0/24", "203.0.113.55", "/", False, id="ip-range-hit"),
    pytest.param("ip", "203.0.113.0/24", "203.0.114.1", "/", True, id="ip-range-miss"),
    pytest.param("ip", "2001:db8::/32", "2001:db8::1", "/", False, id="ipv6-range"),
    pytest.param("path", "/admin/**", "198.51.100.1", "/admin/users/1", False, id="path-deep-glob"),
    pytest.param("path", "/blog/*", "198.51.100.1", "/blog/a/b", True, id="path-glob-one-segment"),
    pytest.param("path", "/blog/*", "198.51.100.1", "/blog/a", False, id="path-glob-hit"),
])
async def test_site_exclusions(settings: Settings, sites: dict[str, int], kind: str, pattern: str, ip: str,
                               path: str, stored: bool) -> None:
    """A site's excluded IP ranges and path patterns are accepted and not stored."""
    from tests.integration.ingest.conftest import ingest_client

    sql(settings, "INSERT INTO site_exclusions (site_id, kind, pattern) VALUES (:site, :kind, :pattern)",
        {"site": sites["example.com"], "kind": kind, "pattern": pattern})
    async with ingest_client(settings) as client:
        assert 202 == (await send(client, ip=ip, path=path)).status_code
    assert stored == bool(sql(settings, "SELECT id FROM events"))
