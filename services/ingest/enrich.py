"""What an event says beyond its body: source, campaign, browser, country, and whether a bot sent it.

Every table here comes from a maintained package, never from rules written by hand:
- referrer sources: Snowplow's referer list (``referer-parser``), the list Plausible also uses;
- referrer spam: Matomo's referrer-spam-list, vendored in ``data/`` (``python -m services.ingest.spamlist``
  refreshes it);
- browsers, OS and devices: uap-core's regexes (``ua-parser`` with ``ua-parser-builtins``), names mapped to
  those Plausible reports (it uses Matomo's Device Detector);
- crawlers: monperrus/crawler-user-agents (``crawler-user-agents``), plus headless-browser markers;
- countries: the IP ranges shipped inside ``geoip2fast`` (no network at run time).
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import crawleruseragents
from geoip2fast import GeoIP2Fast
from referer_parser import REFERERS, Referer
from ua_parser import parse as parse_user_agent

logger = logging.getLogger("beacon.ingest")

SPAM_LIST = Path(__file__).parent / "data" / "referrer-spam.txt"

MAX_UTM = 300

# Automation that presents itself as a normal browser apart from these tokens.
HEADLESS_MARKERS = ("HeadlessChrome", "PhantomJS", "Headless", "Lighthouse", "Puppeteer", "Playwright",
                    "Selenium", "SlimerJS", "Electron/")

# Browser names as Plausible reports them: it parses with UAInspector (Matomo Device Detector's rules) and
# folds mobile variants into the desktop name (its Ingestion.Event.browser_name). Keys are ua-parser's
# families; the right-hand names were read off Device Detector's answers for the same User-Agents
# (docs/benchmarks.md, "User-Agent parsers").
BROWSER_NAMES = {
    "Mobile Safari": "Safari", "Mobile Safari UI/WKWebView": "Mobile App", "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome", "Chrome Mobile WebView": "Mobile App", "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox", "Opera Mobile": "Opera", "Opera Mini": "Opera", "Edge": "Microsoft Edge",
    "Edge Mobile": "Microsoft Edge", "IE": "Internet Explorer", "IE Mobile": "IE Mobile",
    "Samsung Internet": "Samsung Browser", "Yandex Browser Lite": "Yandex Browser",
    "DuckDuckGo Mobile": "DuckDuckGo Privacy Browser",
}
# In-app browsers: Device Detector classifies them as "mobile app", which Plausible names so, without version.
APP_FAMILIES = frozenset({"Facebook", "Instagram", "Pinterest", "LinkedIn", "Snapchat", "WeChat", "Line",
                          "Twitter"})
BROWSER_NAMES.update(dict.fromkeys(APP_FAMILIES, "Mobile App"))
OS_NAMES = {"Mac OS X": "Mac", "Linux": "GNU/Linux"}
# Device Detector's OS families that are desktops (its device type for them is "desktop").
DESKTOP_OS = frozenset({"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "FreeBSD", "Debian",
                        "Linux Mint", "openSUSE", "Arch Linux", "OpenBSD", "NetBSD", "Solaris", "Red Hat"})

# Plausible's channels are Google Analytics 4's default channel group
# (https://support.google.com/analytics/answer/9756891), keyed by a source's category. Categories come from
# the referrer list's medium; GA4 lists video and shopping sites apart, which the referrer list does not.
VIDEO_SOURCES = frozenset({"youtube", "vimeo", "twitch", "dailymotion", "wistia", "ted", "netflix", "hulu",
                           "disney plus", "bilibili", "rumble", "odysee", "peertube"})
SHOPPING_SOURCES = frozenset({"amazon", "ebay", "etsy", "shopify", "walmart", "alibaba", "aliexpress",
                              "mercadolibre", "temu.com", "shopping.google.com", "idealo", "allegro"})
EMAIL_TAGS = ("email", "e-mail", "e_mail", "e mail", "newsletter")
SOCIAL_MEDIUMS = frozenset({"social", "social-network", "social-media", "sm", "social network", "social media"})
DISPLAY_MEDIUMS = frozenset({"display", "banner", "expandable", "interstitial", "cpm"})
PAID_MEDIUM = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")
SHOPPING_CAMPAIGN = re.compile(r"^(.*(([^a-df-z]|^)shop|shopping).*)$")
CLICK_IDS = (("gclid", "google"), ("msclkid", "bing"))


def _source_tables() -> tuple[dict[str, str], dict[str, str]]:
    """(lower-cased name -> the list's spelling, lower-cased name -> category) from the referrer list."""
    names: dict[str, str] = {}
    categories: dict[str, str] = {}
    for entry in REFERERS.values():
        name, medium = entry["name"], entry["medium"]
        key = name.lower()
        names.setdefault(key, name)
        if medium in ("search", "social", "email") and categories.get(key) != "search":
            categories[key] = medium  # "Google" is both "unknown" and "search" in the list: search wins
    for key in VIDEO_SOURCES:
        categories[key] = "video"
    for key in SHOPPING_SOURCES:
        categories[key] = "shopping"
    return names, categories


SOURCE_NAMES, SOURCE_CATEGORIES = _source_tables()


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
    """Plausible's screen-size names: "Desktop", "Mobile", "Tablet", or "" when the parser cannot tell."""
    if device_family == "iPad" or "Tablet" in user_agent or (os_family == "Android" and "Mobile" not in user_agent):
        return "Tablet"
    if "Mobi" in user_agent or os_family in ("iOS", "Android", "Windows Phone", "KaiOS"):
        return "Mobile"
    if os_family in DESKTOP_OS or "SMART-TV" in user_agent or "SmartTV" in user_agent:
        return "Desktop"  # Plausible counts TVs and consoles as desktops
    return ""


def browser_name(family: str) -> str:
    """ua-parser's browser family as Plausible names it ("Mobile Safari" -> "Safari"); "" when unknown."""
    if family == "Other":
        return ""
    return BROWSER_NAMES.get(family, family)[:80]


def os_name(family: str, device_family: str = "") -> str:
    """ua-parser's OS family as Plausible names it ("Mac OS X" -> "Mac", iPads -> "iPadOS"); "" when unknown."""
    if family == "Other":
        return ""
    if family == "iOS" and device_family == "iPad":
        return "iPadOS"
    return OS_NAMES.get(family, family)[:80]


@functools.lru_cache(maxsize=20_000)
def client(user_agent: str) -> Client:
    """Browser, OS and device of a User-Agent, named as Plausible reports them (versions: major.minor).

    Cached: a site sees the same few thousand User-Agents again and again.
    """
    if _is_bot(user_agent):
        return Client("", "", "", "", "bot", bot=True)
    result = parse_user_agent(user_agent)
    agent, os_, device = result.user_agent, result.os, result.device
    device_family = device.family if device else "Other"
    if device_family == "Spider":
        return Client("", "", "", "", "bot", bot=True)
    family = agent.family if agent else "Other"
    os_family = os_.family if os_ else "Other"
    return Client(
        browser=browser_name(family),
        browser_version=_version(agent.major, agent.minor) if agent and family not in APP_FAMILIES else "",
        os=os_name(os_family, device_family),
        os_version=_version(os_.major, os_.minor) if os_ else "",
        device=_device(user_agent, os_family, device_family),
        bot=False,
    )


UTM_COLUMNS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
UTM_KEYS = frozenset({"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "source", "ref",
                      "gclid", "msclkid"})


def utm(query: str) -> dict[str, str]:
    """The campaign parameters of a page URL's query, as Plausible reads them.

    Keys are exact (``UTM_SOURCE`` is not ``utm_source``) and a repeated one keeps its last value, as in a
    decoded query map. ``tag`` is the source tag: ``utm_source``, else ``source``, else ``ref``;
    ``click_id`` is ``gclid`` or ``msclkid`` when the URL carries one.
    """
    found: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=False):
        if key in UTM_KEYS:
            found[key] = value[:MAX_UTM]
    values: dict[str, str] = {key: found[key] for key in UTM_COLUMNS if key in found}
    tag = found.get("utm_source") or found.get("source") or found.get("ref")
    if tag:
        values["tag"] = tag
    click_id = "gclid" if "gclid" in found else "msclkid" if "msclkid" in found else ""
    if click_id:
        values["click_id"] = click_id
    return values


def source_name(name: str) -> str:
    """A source folded to the referrer list's spelling, case-insensitively ("GOOGLE" -> "Google")."""
    return SOURCE_NAMES.get(name.lower(), name)[:120]


def referrer_host(referrer: str) -> str:
    """The referrer's host without ``www.``, "" when it is not an http(s) URL with a host."""
    try:
        parts = urlsplit(referrer)
        host = parts.hostname or ""
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https", "android-app"):
        return ""
    return host.removeprefix("www.")


@functools.lru_cache(maxsize=20_000)
def _referrer_source(referrer: str) -> str:
    ref = Referer(referrer)
    if ref.known and ref.referer:
        return str(ref.referer)[:120]
    return referrer_host(referrer)[:120]


def clean_referrer(referrer: str) -> str:
    """``visit:referrer`` as Plausible stores it: host without ``www.`` and path without trailing slash."""
    parts = urlsplit(referrer)
    prefix = "android-app://" if parts.scheme == "android-app" else ""
    return (prefix + referrer_host(referrer) + parts.path.rstrip("/"))[:2000]


def channel(source: str, medium: str, campaign: str, tagged_source: str, click_id: str = "") -> str:
    """Plausible's acquisition channel (GA4's default channel group, in GA4's order of precedence).

    Args:
        source: the visit's source (``referrer_source``), any case.
        medium, campaign, tagged_source: ``utm_medium``, ``utm_campaign`` and ``utm_source``.
        click_id: ``gclid`` or ``msclkid`` when the page URL carried one.
    Returns:
        One of "Cross-network", "Paid Shopping", "Paid Search", "Paid Social", "Paid Video", "Display",
        "Paid Other", "Organic Shopping", "Organic Social", "Organic Video", "Organic Search", "Email",
        "Affiliates", "Audio", "SMS", "Mobile Push Notifications", "Referral", "Direct".
    """
    source, medium, campaign, tagged = source.lower(), medium.lower(), campaign.lower(), tagged_source.lower()
    category = SOURCE_CATEGORIES.get(source, "")
    paid = bool(PAID_MEDIUM.match(medium))
    # Sources whose name says it is an ad (GA4 and Plausible treat "adwords", "facebook_ad" ... as paid).
    paid_tag = tagged == "adwords" or tagged.endswith(("ads", "ad"))
    shopping = category == "shopping" or bool(SHOPPING_CAMPAIGN.match(campaign))
    if "cross-network" in campaign:
        return "Cross-network"
    if shopping and paid:
        return "Paid Shopping"
    if (category == "search" and (paid or paid_tag)) or (click_id, source) in CLICK_IDS:
        return "Paid Search"
    if category == "social" and (paid or paid_tag):
        return "Paid Social"
    if category == "video" and (paid or paid_tag):
        return "Paid Video"
    if medium in DISPLAY_MEDIUMS:
        return "Display"
    if paid:
        return "Paid Other"
    if shopping:
        return "Organic Shopping"
    if category == "social" or medium in SOCIAL_MEDIUMS:
        return "Organic Social"
    if category == "video" or "video" in medium:
        return "Organic Video"
    if category == "search":
        return "Organic Search"
    if category == "email" or any(tag in tagged or tag in medium for tag in EMAIL_TAGS):
        return "Email"
    if medium == "affiliate":
        return "Affiliates"
    if medium == "audio":
        return "Audio"
    if tagged == "sms" or medium == "sms":
        return "SMS"
    if medium.endswith("push") or "mobile" in medium or "notification" in medium or source == "firebase":
        return "Mobile Push Notifications"
    if medium in ("referral", "app", "link") or source:
        return "Referral"
    return "Direct"


def attribution(referrer: str, hostname: str, tagged_source: str, medium: str, campaign: str,
                click_id: str = "", utm_source: str | None = None) -> tuple[str, str, str]:
    """(``visit:referrer``, ``visit:source``, ``visit:channel``) as Plausible attributes a visit.

    A source tag (``tagged_source``: utm_source, else source, else ref) wins over the referrer; a referrer
    from the site itself (``hostname``) or from ``localhost`` is no source. Sources are folded to the
    referrer list's spelling; the channel follows :func:`channel` (given ``utm_source`` itself, by default
    the tag).
    """
    ref_host = referrer_host(referrer) if referrer else ""
    if ref_host in (hostname, "localhost"):  # a link inside the site, or a developer's machine
        ref_host = ""
    if tagged_source:
        referrer_source = source_name(tagged_source)
    elif ref_host:
        referrer_source = source_name(_referrer_source(referrer))
    else:
        referrer_source = ""
    return (clean_referrer(referrer) if ref_host else "", referrer_source,
            channel(referrer_source, medium, campaign, tagged_source if utm_source is None else utm_source, click_id))


@functools.lru_cache(maxsize=50_000)
def source(referrer: str, hostname: str, query: str) -> Source:
    """Where the visit came from (:func:`attribution`) and its campaign parameters.

    Cached: a site's traffic repeats the same few referrers, pages and campaign links.
    """
    campaign = utm(query)
    clean, referrer_source, visit_channel = attribution(
        referrer, hostname, campaign.get("tag", ""), campaign.get("utm_medium", ""), campaign.get("utm_campaign", ""),
        campaign.get("click_id", ""), campaign.get("utm_source", ""))
    return Source(
        referrer=clean,
        referrer_source=referrer_source,
        channel=visit_channel,
        utm_source=campaign.get("utm_source", ""),
        utm_medium=campaign.get("utm_medium", ""),
        utm_campaign=campaign.get("utm_campaign", ""),
        utm_term=campaign.get("utm_term", ""),
        utm_content=campaign.get("utm_content", ""),
    )


class SpamList:
    """Matomo's referrer-spam list (``data/referrer-spam.txt``, public domain): hosts whose referrals are spam."""

    def __init__(self, path: Path = SPAM_LIST) -> None:
        lines = path.read_text(encoding="utf-8").splitlines()
        self._hosts = frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))

    def __len__(self) -> int:
        return len(self._hosts)

    @functools.lru_cache(maxsize=20_000)  # noqa: B019 - one instance per process, lives as long as it
    def is_spam(self, referrer: str) -> bool:
        """Whether the referrer's host (without ``www.``) is on the list: exactly, as Plausible matches it."""
        return bool(referrer) and referrer_host(referrer).lower() in self._hosts


class Countries:
    """Country of an IP address from the dataset inside ``geoip2fast``; loaded once per process."""

    def __init__(self) -> None:
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
    _referrer_source("https://www.google.com/")
    _referrer_source.cache_clear()
