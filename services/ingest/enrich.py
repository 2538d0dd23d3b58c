"""What an event says beyond its body: source, campaign, browser, country, and whether a bot sent it.

Every table here comes from a maintained package, never from rules written by hand:
- referrer sources: Snowplow's referer list (``referer-parser``), the list Plausible also uses;
- browsers, OS and devices: uap-core's regexes (``ua-parser`` with ``ua-parser-builtins``);
- crawlers: monperrus/crawler-user-agents (``crawler-user-agents``), plus headless-browser markers;
- countries: the IP ranges shipped inside ``geoip2fast`` (no network at run time).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import crawleruseragents
from referer_parser import Referer
from ua_parser import parse as parse_user_agent

logger = logging.getLogger("beacon.ingest")

MAX_UTM = 300

# Automation that presents itself as a normal browser apart from these tokens.
HEADLESS_MARKERS = ("HeadlessChrome", "PhantomJS", "Headless", "Lighthouse", "Puppeteer", "Playwright",
                    "Selenium", "SlimerJS", "Electron/")

PAID_MEDIUMS = frozenset({"cpc", "ppc", "paid", "paidsearch", "paid_search", "paid-social", "paid_social",
                          "paidsocial", "cpm", "display", "banner", "retargeting"})
MEDIUM_TO_CHANNEL = {"search": "search", "social": "social", "email": "email", "paid": "paid"}


@dataclass(frozen=True)
class Client:
    browser: str
    browser_version: str
    os: str
    os_version: str
    device: str
    bot: bool


@dataclass(frozen=True)
class Source:
    referrer: str
    referrer_source: str
    channel: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    utm_term: str
    utm_content: str


def _version(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)[:40]


def _is_bot(user_agent: str) -> bool:
    if len(user_agent) < 8:  # missing or nonsense: no browser sends that
        return True
    if any(marker in user_agent for marker in HEADLESS_MARKERS):
        return True
    return bool(crawleruseragents.is_crawler(user_agent))


def _device(user_agent: str, os_family: str, device_family: str) -> str:
    if device_family == "iPad" or "Tablet" in user_agent or (os_family == "Android" and "Mobile" not in user_agent):
        return "tablet"
    if "Mobi" in user_agent or os_family in ("iOS", "Android", "Windows Phone", "KaiOS"):
        return "mobile"
    if os_family in ("Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "FreeBSD", "Debian"):
        return "desktop"
    return "other"


@functools.lru_cache(maxsize=20_000)
def client(user_agent: str) -> Client:
    """Browser, OS and device of a User-Agent (cached: a site sees the same few thousand UAs again and again)."""
    if _is_bot(user_agent):
        return Client("", "", "", "", "bot", bot=True)
    result = parse_user_agent(user_agent)
    agent, os_, device = result.user_agent, result.os, result.device
    device_family = device.family if device else "Other"
    if device_family == "Spider":
        return Client("", "", "", "", "bot", bot=True)
    browser = agent.family if agent else ""
    os_family = os_.family if os_ else ""
    return Client(
        browser=("" if browser == "Other" else browser)[:80],
        browser_version=_version(agent.major, agent.minor) if agent else "",
        os=("" if os_family == "Other" else os_family)[:80],
        os_version=_version(os_.major, os_.minor) if os_ else "",
        device=_device(user_agent, os_family, device_family),
        bot=False,
    )


def utm(query: str) -> dict[str, str]:
    """The campaign parameters of a page URL's query (``ref``/``source`` stand for utm_source, as in Plausible)."""
    values: dict[str, str] = {}
    for raw_key, value in parse_qsl(query, keep_blank_values=False):
        key = raw_key.lower()
        if key in ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content") and key not in values:
            values[key] = value[:MAX_UTM]
        elif key in ("ref", "source") and "utm_source" not in values:
            values["utm_source"] = value[:MAX_UTM]
    return values


@functools.lru_cache(maxsize=20_000)
def _classify_referrer(referrer: str) -> tuple[str, str]:
    ref = Referer(referrer)
    host = (urlsplit(referrer).hostname or "").removeprefix("www.")
    if ref.known and ref.referer:
        return ref.referer[:120], MEDIUM_TO_CHANNEL.get(ref.medium, "referral")
    return host[:120], "referral"


@functools.lru_cache(maxsize=50_000)
def source(referrer: str, hostname: str, query: str) -> Source:
    """Where the visit came from: the referrer's list entry and channel, and the UTM parameters.

    Cached: a site's traffic repeats the same few referrers, pages and campaign links.
    """
    campaign = utm(query)
    ref_host = ""
    try:
        ref_host = (urlsplit(referrer).hostname or "").removeprefix("www.") if referrer else ""
    except ValueError:
        referrer = ""
    if ref_host == hostname:  # a link inside the site is not a source
        referrer, ref_host = "", ""
    referrer_source, channel = _classify_referrer(referrer) if ref_host else ("", "direct")
    medium = campaign.get("utm_medium", "").lower()
    if medium in PAID_MEDIUMS:
        channel = "paid"
    elif medium in ("email", "e-mail", "newsletter"):
        channel = "email"
    elif channel == "direct" and campaign.get("utm_source"):
        channel = "referral"
    if not referrer_source and campaign.get("utm_source"):
        referrer_source = campaign["utm_source"][:120]
    return Source(
        referrer=referrer[:2000],
        referrer_source=referrer_source,
        channel=channel,
        utm_source=campaign.get("utm_source", ""),
        utm_medium=campaign.get("utm_medium", ""),
        utm_campaign=campaign.get("utm_campaign", ""),
        utm_term=campaign.get("utm_term", ""),
        utm_content=campaign.get("utm_content", ""),
    )


class Countries:
    """Country of an IP address from the dataset inside ``geoip2fast``; loaded once per process."""

    def __init__(self) -> None:
        from geoip2fast import GeoIP2Fast

        # The IPv6-capable file covers IPv4 too.
        self._db = GeoIP2Fast(verbose=False, geoip2fast_data_file="geoip2fast-ipv6.dat.gz")

    @functools.lru_cache(maxsize=50_000)  # noqa: B019 - one instance per process, lives as long as it
    def country(self, ip: str) -> str:
        # The dataset answers "--" for private, reserved and documentation ranges and "" for a non-address.
        code = str(self._db.lookup(ip).country_code or "")
        return code if len(code) == 2 and code.isalpha() and code.isupper() else ""


def warm_up() -> None:
    """Compile the parsers' regular expressions now rather than during the first visitor's request."""
    client.cache_clear()
    client("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 "
           "Safari/537.36")
    client.cache_clear()
    _classify_referrer("https://www.google.com/")
    _classify_referrer.cache_clear()
