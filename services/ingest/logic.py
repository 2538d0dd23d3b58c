"""Turning an accepted event into a stored row and a live message."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
import json
import logging
import re
import socket
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote, urlsplit

import msgspec
import pycountry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import salts as daily_salts
from app.core.errors import ClientError
from app.core.inputs import InvalidInput, check_json_bytes, check_text
from services.ingest.schemas import EventIn

logger = logging.getLogger("beacon.ingest")

MAX_PROPS = 30
MAX_PROP_KEY = 300
MAX_PROP_VALUE = 2000
MAX_NAME = 120
MAX_DOMAINS = 10


MAX_URL = 2000
MAX_PATH_BYTES = 1000
"""A page path is stored cut to this many bytes of UTF-8 (at a character boundary): it is a key of the events'
page index and, as entry and exit page, included twice in the visits' start index, and a page pair's rollup value
holds two paths; PostgreSQL refuses an index row over 2,704 bytes, and one such row would fail a whole batch."""
MAX_REVENUE = Decimal("1e14")
NO_HOSTNAME = "(none)"
"""Plausible's hostname for a url without a host (``/app/login``)."""
DISALLOWED_SCHEMES = frozenset({"data"})
CURRENCIES = frozenset(currency.alpha_3 for currency in pycountry.currencies)
"""ISO 4217 codes (pycountry's copy of the standard): Plausible records revenue only in a known currency."""


@dataclass(frozen=True, slots=True)
class CleanEvent:
    name: str
    domains: list[str]
    hostname: str
    pathname: str
    referrer: str
    props: dict[str, str]
    query: str = ""
    """The page URL's query string (campaign parameters are read from it)."""
    interactive: bool = True
    revenue_amount: Decimal | None = None
    revenue_currency: str | None = None
    scroll_depth: int | None = None
    """An engagement event's deepest scroll, percent 0-100 (None: unknown)."""
    engagement_time: int = 0
    """An engagement event's engaged time, milliseconds."""


ENGAGEMENT = "engagement"
"""The name of Plausible's engagement events (scroll depth and engaged time, never counted as events)."""
MAX_ENGAGEMENT_TIME = 2**31 - 1


def parse_event(body: bytes) -> CleanEvent:
    """Validate a raw request body with Plausible's acceptance rules; raise :class:`ClientError` with a reason.

    Refused (400), as Plausible refuses them: a body that is not a JSON object; no name, url or domain; a url
    with the ``data`` scheme; a page path or referrer longer than 2000 characters. Refused by Beacon alone:
    an event name longer than 120 characters (the longest goal name) and more than 10 domains. Everything else is kept
    the way Plausible's ``Ingestion.Request`` keeps it: props that are not scalars are dropped, a url without
    a host is stored under the hostname ``(none)``, an unusable revenue leaves the event without revenue.
    """
    try:
        check_json_bytes(body)  # before decoding: msgspec recurses without a limit
        raw = msgspec.json.decode(body, type=EventIn)
    except InvalidInput as exc:
        raise ClientError(f"invalid event: {exc.detail}") from None
    except msgspec.ValidationError as exc:
        raise ClientError(f"invalid event: {exc}") from None
    except msgspec.DecodeError:
        raise ClientError("invalid event: body is not valid JSON") from None
    except UnicodeDecodeError:
        raise ClientError("invalid event: body is not valid UTF-8") from None
    # The tracker's short field is read before the long one, as Plausible does (inline: this is the hot path).
    name = raw.n if raw.n is not None else raw.name
    url = raw.u if raw.u is not None else raw.url
    domain = raw.d if raw.d is not None else raw.domain
    referrer = (raw.r if raw.r is not None else raw.referrer) or ""
    props = (raw.m if raw.m is not None else raw.meta if raw.meta is not None else
             raw.p if raw.p is not None else raw.props)
    if name is None or name == "":
        raise ClientError("invalid event: name is required")
    name = _number_text(name) if not isinstance(name, str) else name
    if len(name) > MAX_NAME:  # a goal's event name is at most 120 characters (Plausible's limit for goals)
        raise ClientError(f"invalid event: name is longer than {MAX_NAME} characters")
    if not url:
        raise ClientError("invalid event: url is required")
    if not domain or not domain.strip():
        raise ClientError("invalid event: domain is required")
    _check_texts(name=name, url=url, domain=domain, referrer=referrer)
    try:
        parts = urlsplit(url)
        hostname = parts.hostname or ""
    except ValueError:
        raise ClientError("invalid event: url is not a valid URL") from None
    if parts.scheme.lower() in DISALLOWED_SCHEMES:
        raise ClientError(f"invalid event: the url scheme {parts.scheme!r} is not allowed")
    hostname = hostname.strip().removeprefix("www.") or NO_HOSTNAME
    if len(hostname) > 253:
        raise ClientError("invalid event: the url's host name is longer than 253 characters")
    hash_mode = raw.h if raw.h is not None else raw.hashMode
    pathname = _pathname(parts.path, parts.fragment if hash_mode == 1 else "")
    if len(pathname) > MAX_URL:
        raise ClientError(f"invalid event: the page path is longer than {MAX_URL} characters")
    pathname = cut_utf8(pathname, MAX_PATH_BYTES)
    if len(referrer) > MAX_URL:
        raise ClientError(f"invalid event: referrer is longer than {MAX_URL} characters")
    domains = [d.strip().lower().removeprefix("www.") for d in domain.split(",") if d.strip()]
    if not domains or len(domains) > MAX_DOMAINS or any(len(d) > 253 for d in domains):
        raise ClientError(f"invalid event: domain must name 1 to {MAX_DOMAINS} sites")
    amount, currency = (_clean_revenue(raw.r_revenue if raw.r_revenue is not None else raw.revenue)
                        if raw.r_revenue is not None or raw.revenue is not None else (None, None))
    return _with_engagement(raw, CleanEvent(
        name=name,
        domains=list(dict.fromkeys(domains)),
        hostname=hostname.lower(),
        pathname=pathname,
        referrer=referrer,
        props=_clean_props(props) if props is not None else {},
        query=parts.query,
        interactive=raw.interactive if raw.i is None else raw.i,
        revenue_amount=amount,
        revenue_currency=currency,
    ))


def _with_engagement(raw: EventIn, event: CleanEvent) -> CleanEvent:
    """An engagement event with its ``sd`` and ``e``: an integer scroll depth is clamped to 0-100 and anything
    else is unknown; an engaged time that is not a non-negative integer counts 0 ms. An engagement is never an
    interaction and carries no revenue. Other events as they are."""
    if event.name != ENGAGEMENT:
        return event
    depth = raw.sd if isinstance(raw.sd, int) and not isinstance(raw.sd, bool) else None
    time_ms = raw.e if isinstance(raw.e, int) and not isinstance(raw.e, bool) else 0
    return dataclasses.replace(
        event, scroll_depth=None if depth is None else min(max(depth, 0), 100),
        engagement_time=min(max(time_ms, 0), MAX_ENGAGEMENT_TIME), interactive=False, revenue_amount=None,
        revenue_currency=None)


def _check_texts(**fields: str) -> None:
    """Every text field storable (no NUL, valid Unicode), and the referrer's host a valid host name."""
    try:
        for where, value in fields.items():
            check_text(value, where)
    except InvalidInput as exc:
        raise ClientError(f"invalid event: {exc.detail}") from None
    _check_referrer(fields.get("referrer", ""))


def _check_referrer(referrer: str) -> None:
    """A referrer's host must be a host name DNS allows (253 characters, 63 per label) before parsing it."""
    if not referrer:
        return
    try:
        host = urlsplit(referrer[:MAX_URL]).hostname or ""
    except ValueError:
        return  # not a URL: enrichment treats it as no referrer
    if len(host) > 253 or any(len(label) > 63 for label in host.split(".")):
        raise ClientError("invalid event: the referrer's host name is not a valid host name")


def _number_text(value: int | float) -> str:
    """A numeric event name as text, as JSON wrote it (``404``, ``1.5``)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def cut_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, at a character boundary (unchanged when it fits)."""
    encoded = text.encode()
    return text if len(encoded) <= limit else encoded[:limit].decode("utf-8", "ignore")


def decode_path(text: str) -> str:
    """Percent-decoded, as Plausible stores paths (``/bl%C3%A5b%C3%A6r`` -> ``/blåbær``).

    ``+`` stays ``+``; a sequence that is not UTF-8, or one that would decode to a NUL, leaves the text as sent.
    """
    if "%" not in text:
        return text
    try:
        decoded = unquote(text, errors="strict")
    except UnicodeDecodeError:
        return text
    return text if "\x00" in decoded else decoded


def _pathname(path: str, fragment: str) -> str:
    """The page path, decoded; with hash-based routing (``h``) the fragment is part of it, as in Plausible."""
    pathname = decode_path(path or "/").rstrip()
    if fragment:
        pathname = f"{pathname}#{decode_path(fragment)}"
    return pathname


def _decode_json_text(value: object, where: str) -> object:
    """A string holding JSON (the tracker sends props and revenue so) as its value; None if it is not JSON."""
    if not isinstance(value, str):
        return value
    try:
        check_json_bytes(value.encode("utf-8", "surrogatepass"), where)  # json.loads recurses unbounded
    except InvalidInput as exc:
        raise ClientError(f"invalid event: {exc.detail}") from None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _clean_revenue(revenue: object) -> tuple[Decimal | None, str | None]:
    """Plausible's ``revenue``: ``{"currency": "EUR", "amount": 12.5}`` (amount may be a numeric string).

    A currency that is not an ISO 4217 code, or an amount that is not a finite number in range, leaves the
    event without revenue (Plausible records the event and drops the revenue).
    """
    revenue = _decode_json_text(revenue, "revenue")
    if not isinstance(revenue, dict):
        return None, None
    currency, amount = revenue.get("currency"), revenue.get("amount")
    if not isinstance(currency, str) or currency.upper() not in CURRENCIES:
        return None, None
    if isinstance(amount, bool) or not isinstance(amount, int | float | str):
        return None, None
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        return None, None
    if not value.is_finite() or abs(value) >= MAX_REVENUE:
        return None, None
    # Rounded to the column's 4 places first: 99999999999999.99995 rounds up to 1e14, which numeric(18, 4) refuses.
    value = value.quantize(Decimal("0.0001"))
    return (value, currency.upper()) if abs(value) < MAX_REVENUE else (None, None)


def _clean_props(props: object) -> dict[str, str]:
    """Plausible's custom properties: scalars only, empty values dropped, at most 30 kept (the first ones).

    Keys longer than 300 characters and values longer than 2000 are dropped (Plausible's documented limits);
    anything that is not an object gives no props. Booleans are stored as ``true``/``false``.
    """
    props = _decode_json_text(props, "props")
    if not isinstance(props, dict):
        return {}
    clean: dict[str, str] = {}
    for key, value in props.items():
        if value is None or value == "" or isinstance(value, dict | list):
            continue
        text_value = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if not key or len(key) > MAX_PROP_KEY or len(text_value) > MAX_PROP_VALUE:
            continue
        try:  # PostgreSQL text cannot hold NUL or lone surrogates
            check_text(key, "props")
            check_text(text_value, f"prop {key!r}")
        except InvalidInput as exc:
            raise ClientError(f"invalid event: {exc.detail}") from None
        clean[key] = text_value
        if len(clean) == MAX_PROPS:
            break
    return clean


@functools.lru_cache(maxsize=1024)
def _is_global(peer: str) -> bool:
    try:
        return ipaddress.ip_address(peer).is_global
    except ValueError:
        return False  # not an address (an in-process test client): nothing to distrust


def _address(text: str) -> str | None:
    """``text`` as the canonical form of an IP address, or None."""
    try:
        socket.inet_pton(socket.AF_INET, text)  # dotted quad without leading zeros: already canonical
        return text
    except OSError:
        pass
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_ip(forwarded_for: str | None, peer: str | None) -> str:
    """The address our own Nginx saw: the last hop it wrote into X-Forwarded-For, else the peer.

    The header is believed only from a peer on loopback or a private network (our Nginx); a request that
    reaches the process from anywhere else is counted under its own address.
    """
    if peer is not None and _is_global(peer):
        return peer
    if forwarded_for:
        for candidate in reversed(forwarded_for.split(",")):
            address = _address(candidate.strip())
            if address is not None:
                return address
    return peer or "0.0.0.0"  # noqa: S104 - an address to hash, not to bind


def first_address(header_value: str | None) -> str | None:
    """The first valid IPv4 or IPv6 address in an X-Forwarded-For value (Plausible's rule), or None.

    Ports and the brackets around an IPv6 address are removed, as Plausible removes them.
    """
    if not header_value:
        return None
    for candidate in header_value.split(","):
        address = _address(_without_port(candidate.strip()))
        if address is not None:
            return address
    return None


def _without_port(text: str) -> str:
    """``1.2.3.4:80`` -> ``1.2.3.4``, ``[2001:db8::1]:443`` -> ``2001:db8::1`` (proxies write both)."""
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    if text.count(":") == 1:
        return text.split(":", 1)[0]
    return text


def client_addresses(forwarded_for: str | None, original_forwarded_for: str | None, peer: str | None,
                     honour_client_header: bool = True) -> tuple[str, str]:
    """(the visitor's address, the address our Nginx saw).

    Plausible's Events API lets server-side senders and proxies name the visitor in ``X-Forwarded-For``: the
    first valid address in it. Nginx passes what the client sent as ``X-Original-Forwarded-For`` and the
    address it saw as ``X-Forwarded-For``. The visitor's address gives the visitor id, the country and site
    exclusions; the address Nginx saw keys rate limits, so a client cannot spread itself over many made-up
    addresses. With ``honour_client_header`` off, the visitor is the address Nginx saw.
    """
    edge = client_ip(forwarded_for, peer)
    if honour_client_header:
        visitor = first_address(original_forwarded_for)
        if visitor is not None:
            return visitor, edge
    return edge, edge


def visitor_id(salt: bytes, domain: str, ip: str, user_agent: str) -> int:
    """A keyed hash of (salt, site, IP, User-Agent) as a signed 64-bit integer; nothing reversible."""
    digest = hashlib.blake2b(f"{domain}\x00{ip}\x00{user_agent}".encode(), key=salt, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class Salts:
    current: bytes
    previous: bytes | None
    """Yesterday's salt while it exists (48 hours at most): visits that began under it go on."""


class SaltCache:
    """Today's and yesterday's salts, read from PostgreSQL at most once a minute per process."""

    def __init__(self, ttl: float = 60.0) -> None:
        self._salts: Salts | None = None
        self._read_at = 0.0
        self._ttl = ttl

    async def get(self, session_factory: async_sessionmaker[AsyncSession]) -> Salts:
        if self._salts is not None and time.monotonic() - self._read_at < self._ttl:
            return self._salts
        async with session_factory.begin() as session:
            salts = await read_salts(session)
        self._salts, self._read_at = salts, time.monotonic()
        return salts


async def read_salts(session: AsyncSession) -> Salts:
    """Today's salt (created if the newest one is older than a day, one creator at a time) and the one before."""
    rows: list[tuple[bytes, bool]] = [(bytes(r[0]), bool(r[1])) for r in await session.execute(daily_salts.RECENT)]
    if not rows or not rows[0][1]:
        await session.execute(daily_salts.LOCK)
        await session.execute(*daily_salts.create_if_stale())
        rows = [(bytes(r[0]), bool(r[1])) for r in await session.execute(daily_salts.RECENT)]
    return Salts(bytes(rows[0][0]), bytes(rows[1][0]) if len(rows) > 1 else None)


@dataclass(frozen=True)
class Site:
    id: int
    domain: str
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    """Excluded client address ranges."""
    paths: tuple[re.Pattern[str], ...] = ()
    """Excluded page paths (globs: ``*`` within a segment, ``**`` across segments)."""

    def excludes(self, ip: str, pathname: str) -> bool:
        if self.networks:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                address = None
            if address is not None and any(address in net for net in self.networks
                                           if net.version == address.version):
                return True
        return any(p.fullmatch(pathname) for p in self.paths)


def path_glob(pattern: str) -> re.Pattern[str]:
    """Plausible's page-path wildcards: ``*`` matches within one segment, ``**`` across segments."""
    parts = re.split(r"(\*\*|\*)", pattern)
    regex = "".join(".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part) for part in parts)
    return re.compile(regex)


class SiteCache:
    """Sites by domain with their exclusion rules, kept for a few seconds per process (misses too)."""

    def __init__(self, ttl: float = 30.0, miss_ttl: float = 10.0) -> None:
        self._entries: dict[str, tuple[float, Site | None]] = {}
        self._ttl, self._miss_ttl = ttl, miss_ttl

    async def lookup(self, session_factory: async_sessionmaker[AsyncSession], domains: list[str]) -> list[Site]:
        now = time.monotonic()
        missing = [d for d in domains if d not in self._entries or self._entries[d][0] < now]
        if missing:
            async with session_factory() as session:
                found = await load_sites(session, missing)
            for domain in missing:
                site = found.get(domain)
                self._entries[domain] = (now + (self._ttl if site else self._miss_ttl), site)
            if len(self._entries) > 100_000:  # a flood of made-up domains must not grow memory forever
                self._entries = {k: v for k, v in self._entries.items() if v[1] is not None}
        return [site for d in domains if (site := self._entries[d][1]) is not None]


async def load_sites(session: AsyncSession, domains: list[str]) -> dict[str, Site]:
    rows = await session.execute(
        text("SELECT s.id, s.domain, x.kind, x.pattern FROM sites s "
             "LEFT JOIN site_exclusions x ON x.site_id = s.id WHERE s.domain = ANY(:domains)"),
        {"domains": domains},
    )
    ids: dict[str, int] = {}
    networks: dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
    paths: dict[str, list[re.Pattern[str]]] = {}
    for site_id, domain, kind, pattern in rows:
        ids[domain] = site_id
        if kind == "ip":
            try:
                networks.setdefault(domain, []).append(ipaddress.ip_network(pattern, strict=False))
            except ValueError:
                logger.warning("ignoring invalid IP exclusion", extra={"site": domain, "pattern": pattern})
        elif kind == "path":
            paths.setdefault(domain, []).append(path_glob(pattern))
    return {domain: Site(site_id, domain, tuple(networks.get(domain, ())), tuple(paths.get(domain, ())))
            for domain, site_id in ids.items()}
