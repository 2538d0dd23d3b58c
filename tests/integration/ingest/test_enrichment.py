"""Enrichment, bot filtering and per-site exclusions, as stored by the real service."""

from __future__ import annotations

import json

import httpx
import pytest

from app.core.settings import Settings
from tests.support.ingest import UA, ingest_client, sql

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


MAC_SAFARI = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/17.5 Safari/605.1.15")
IOS_CHROME = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1")
EDGE = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
        "Safari/537.36 Edg/126.0.2592.87")
ANDROID_TABLET = ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/126.0.0.0 Safari/537.36")
FACEBOOK_APP = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                "Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.34.109]")


@pytest.mark.parametrize(("user_agent", "expected"), [
    pytest.param(IPHONE, ("Safari", "17.5", "iOS", "17.5", "Mobile"), id="iphone"),
    pytest.param(IPAD, ("Safari", "16.0", "iPadOS", "16.0", "Tablet"), id="ipad"),
    pytest.param(FIREFOX_WIN, ("Firefox", "128.0", "Windows", "10", "Desktop"), id="firefox-windows"),
    pytest.param(ANDROID, ("Chrome", "126.0", "Android", "14", "Mobile"), id="android"),
    pytest.param(MAC_SAFARI, ("Safari", "17.5", "Mac", "10.15", "Desktop"), id="mac-safari"),
    pytest.param(UA, ("Chrome", "126.0", "GNU/Linux", "", "Desktop"), id="linux-chrome"),
    pytest.param(IOS_CHROME, ("Chrome", "126.0", "iOS", "17.5", "Mobile"), id="ios-chrome"),
    pytest.param(EDGE, ("Microsoft Edge", "126.0", "Windows", "10", "Desktop"), id="edge"),
    pytest.param(ANDROID_TABLET, ("Chrome", "126.0", "Android", "13", "Tablet"), id="android-tablet"),
    pytest.param(FACEBOOK_APP, ("Mobile App", "", "iOS", "17.5", "Mobile"), id="in-app-browser"),
])
async def test_user_agent_is_parsed_and_not_stored(client: httpx.AsyncClient, settings: Settings, user_agent: str,
                                                  expected: tuple[str, ...]) -> None:
    """Browser, OS, versions and device are stored under Plausible's names; the User-Agent string is not."""
    assert 202 == (await send(client, user_agent)).status_code
    assert [expected] == sql(settings, "SELECT browser, browser_version, os, os_version, device FROM events")


@pytest.mark.parametrize(("referrer", "query", "expected"), [
    pytest.param("https://www.google.com/search?q=x", "", ("Google", "Organic Search", ""), id="search"),
    pytest.param("https://duckduckgo.com/", "", ("DuckDuckGo", "Organic Search", ""), id="search-2"),
    pytest.param("https://www.facebook.com/", "", ("Facebook", "Organic Social", ""), id="social"),
    pytest.param("https://news.ycombinator.com/item?id=1", "", ("Hacker News", "Organic Social", ""), id="hn"),
    pytest.param("https://mail.google.com/mail/u/0", "", ("Gmail", "Email", ""), id="email"),
    pytest.param("https://www.youtube.com/watch?v=1", "", ("Youtube", "Organic Video", ""), id="video"),
    pytest.param("https://blog.example.net/post", "", ("blog.example.net", "Referral", ""), id="unknown-site"),
    pytest.param(None, "", ("", "Direct", ""), id="direct"),
    pytest.param("https://example.com/previous", "", ("", "Direct", ""), id="internal"),
    pytest.param("https://www.example.com/previous", "", ("", "Direct", ""), id="internal-www"),
    pytest.param("http://localhost:3000/", "", ("", "Direct", ""), id="localhost-ignored"),
    pytest.param("https://t.co/x", "?utm_source=twitter&utm_medium=cpc", ("Twitter", "Paid Social", "twitter"),
                 id="paid-social"),
    pytest.param(None, "?utm_source=google&utm_medium=cpc", ("Google", "Paid Search", "google"), id="paid-search"),
    pytest.param("https://www.google.com/", "?gclid=abc", ("Google", "Paid Search", ""), id="gclid"),
    pytest.param(None, "?utm_source=GOOGLE", ("Google", "Organic Search", "GOOGLE"), id="tag-case-folded"),
    pytest.param("https://news.ycombinator.com/item?id=1", "?utm_source=newsletter-xyz",
                 ("newsletter-xyz", "Email", "newsletter-xyz"), id="tag-wins-over-referrer"),
    pytest.param(None, "?utm_source=partner&utm_medium=email", ("partner", "Email", "partner"), id="email-medium"),
    pytest.param(None, "?utm_source=x&utm_medium=display", ("x", "Display", "x"), id="display"),
    pytest.param(None, "?utm_source=x&utm_medium=paid", ("x", "Paid Other", "x"), id="paid-other"),
    pytest.param(None, "?utm_source=x&utm_medium=affiliate", ("x", "Affiliates", "x"), id="affiliates"),
    pytest.param(None, "?utm_source=sms", ("sms", "SMS", "sms"), id="sms"),
    pytest.param(None, "?utm_source=x&utm_campaign=cross-network", ("x", "Cross-network", "x"), id="cross-network"),
    pytest.param(None, "?utm_source=x&utm_campaign=summer-shopping", ("x", "Organic Shopping", "x"), id="shopping"),
    pytest.param(None, "?ref=producthunt", ("producthunt", "Referral", ""), id="ref-parameter"),
    pytest.param(None, "?source=Reddit&ref=x", ("Reddit", "Organic Social", ""), id="source-parameter"),
    pytest.param("https://www.google.com/", "?UTM_SOURCE=x", ("Google", "Organic Search", ""), id="keys-exact"),
])
async def test_referrer_source_and_channel(client: httpx.AsyncClient, settings: Settings, referrer: str | None,
                                           query: str, expected: tuple[str, str, str]) -> None:
    """Plausible's attribution: a source tag wins over the referrer, sources take the list's spelling, and the
    channel follows GA4's default channel group."""
    assert 202 == (await send(client, referrer=referrer, query=query)).status_code
    assert [expected] == sql(settings, "SELECT referrer_source, channel, utm_source FROM events")


@pytest.mark.parametrize(("referrer", "expected"), [
    pytest.param("https://www.blog.example.net/posts/1/?utm=x#top", "blog.example.net/posts/1", id="cleaned"),
    pytest.param("https://news.ycombinator.com/", "news.ycombinator.com", id="root"),
    pytest.param("android-app://com.slack/", "android-app://com.slack", id="android-app"),
])
async def test_referrer_is_stored_as_plausible_does(client: httpx.AsyncClient, settings: Settings, referrer: str,
                                                    expected: str) -> None:
    """``visit:referrer`` keeps host (without www.) and path, without query, fragment or trailing slash."""
    assert 202 == (await send(client, referrer=referrer)).status_code
    assert [(expected,)] == sql(settings, "SELECT referrer FROM events")


@pytest.mark.parametrize(("referrer", "stored"), [
    pytest.param("https://0n-line.tv/", False, id="listed"),
    pytest.param("http://www.0n-line.tv/page", False, id="listed-www"),
    pytest.param("https://sub.0n-line.tv/", True, id="subdomain-not-listed"),
    pytest.param("https://not-0n-line.tv/", True, id="similar-name"),
])
async def test_referrer_spam_is_dropped(client: httpx.AsyncClient, settings: Settings, referrer: str,
                                        stored: bool) -> None:
    """Referrals from Matomo's spam list are accepted and not stored, counted under reason "spam"."""
    token = {"X-Beacon-Internal-Token": settings.security.internal_token}
    before = (await client.get("/internal/dropped", headers=token)).json().get("spam", 0)
    assert 202 == (await send(client, referrer=referrer)).status_code
    assert stored == bool(sql(settings, "SELECT id FROM events"))
    assert (0 if stored else 1) == (await client.get("/internal/dropped", headers=token)).json().get("spam", 0) - before
    assert 401 == (await client.get("/internal/dropped")).status_code


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
    sql(settings, "INSERT INTO site_exclusions (site_id, kind, pattern) VALUES (:site, :kind, :pattern)",
        {"site": sites["example.com"], "kind": kind, "pattern": pattern})
    async with ingest_client(settings) as client:
        assert 202 == (await send(client, ip=ip, path=path)).status_code
    assert stored == bool(sql(settings, "SELECT id FROM events"))
