"""Turning an accepted event into a stored row and a live message."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import logging
import re
import secrets
import socket
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_REVENUE = Decimal("1e14")


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


def parse_event(body: bytes) -> CleanEvent:
    """Validate a raw request body; raise :class:`ClientError` with a one-line reason."""
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
    if not body.strip():
        raise ClientError("invalid event: body is empty")
    name = raw.name if raw.name is not None else raw.n
    url = raw.url if raw.url is not None else raw.u
    domain = raw.domain if raw.domain is not None else raw.d
    referrer = (raw.referrer if raw.referrer is not None else raw.r) or ""
    props: object = raw.props if raw.props is not None else raw.p
    if isinstance(props, str):
        try:
            props = _json_string(props, "props")
        except ValueError:
            raise ClientError("invalid event: props is not a JSON object") from None
    if not name:
        raise ClientError("invalid event: name is required")
    if len(name) > MAX_NAME:
        raise ClientError(f"invalid event: name is longer than {MAX_NAME} characters")
    if not url:
        raise ClientError("invalid event: url is required")
    if not domain:
        raise ClientError("invalid event: domain is required")
    if len(url) > MAX_URL:
        raise ClientError(f"invalid event: url is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        raise ClientError("invalid event: url is not a valid URL") from None
    if parts.scheme not in ("http", "https", "app") or not hostname:
        raise ClientError("invalid event: url must be an absolute http(s) URL")
    if len(hostname) > 253:
        raise ClientError("invalid event: the url's host name is longer than 253 characters")
    _check_texts(name=name, url=url, domain=domain, referrer=referrer)
    domains = [d.strip().lower() for d in domain.split(",") if d.strip()]
    if not domains or len(domains) > MAX_DOMAINS or any(len(d) > 253 for d in domains):
        raise ClientError(f"invalid event: domain must name 1 to {MAX_DOMAINS} sites")
    amount, currency = _clean_revenue(raw.revenue if raw.revenue is not None else raw.r_revenue)
    return CleanEvent(
        name=name,
        domains=list(dict.fromkeys(domains)),
        hostname=hostname.lower().removeprefix("www."),
        pathname=_pathname(parts.path, parts.fragment if raw.h else ""),
        referrer=referrer[:MAX_URL],
        props=_clean_props(props),
        query=parts.query,
        interactive=raw.interactive if raw.i is None else raw.i,
        revenue_amount=amount,
        revenue_currency=currency,
    )


def _json_string(value: str, where: str) -> object:
    """A JSON document sent as a string field (the tracker's ``p`` and ``$``), depth-checked first."""
    try:
        check_json_bytes(value.encode("utf-8", "surrogatepass"), where)
    except InvalidInput as exc:
        raise ClientError(f"invalid event: {exc.detail}") from None
    return json.loads(value)


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


def _pathname(path: str, fragment: str) -> str:
    """The page path; with hash-based routing (``h``) the fragment is part of it, as in Plausible."""
    path = path or "/"
    if fragment:
        path = f"{path}#{fragment}"
    return path[:MAX_URL]


def _clean_revenue(revenue: object) -> tuple[Decimal | None, str | None]:
    """Plausible's ``revenue``: ``{"currency": "EUR", "amount": 12.5}`` (amount may be a numeric string)."""
    if revenue is None:
        return None, None
    if isinstance(revenue, str):
        try:
            revenue = _json_string(revenue, "revenue")
        except ValueError:
            raise ClientError("invalid event: revenue is not a JSON object") from None
    if not isinstance(revenue, dict):
        raise ClientError("invalid event: revenue must be an object with currency and amount")
    currency, amount = revenue.get("currency"), revenue.get("amount")
    if not isinstance(currency, str) or not CURRENCY.match(currency.upper()):
        raise ClientError("invalid event: revenue.currency must be a 3-letter ISO 4217 code")
    if isinstance(amount, bool) or not isinstance(amount, int | float | str):
        raise ClientError("invalid event: revenue.amount must be a number")
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise ClientError("invalid event: revenue.amount must be a number") from None
    if not value.is_finite() or abs(value) >= MAX_REVENUE:
        raise ClientError("invalid event: revenue.amount is out of range")
    return value.quantize(Decimal("0.0001")), currency.upper()


def _clean_props(props: object) -> dict[str, str]:
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise ClientError("invalid event: props must be an object")
    if len(props) > MAX_PROPS:
        raise ClientError(f"invalid event: at most {MAX_PROPS} props")
    clean: dict[str, str] = {}
    for key, value in props.items():
        try:
            check_text(key, "props")
            if isinstance(value, str):
                check_text(value, f"prop {key!r}")
        except InvalidInput as exc:
            raise ClientError(f"invalid event: {exc.detail}") from None
        if len(key) > MAX_PROP_KEY or not key:
            raise ClientError(f"invalid event: prop names must be 1 to {MAX_PROP_KEY} characters")
        if value is None:
            continue
        if isinstance(value, dict | list):
            raise ClientError(f"invalid event: prop {key!r} must be a scalar")
        text_value = str(value).lower() if isinstance(value, bool) else str(value)
        if len(text_value) > MAX_PROP_VALUE:
            raise ClientError(f"invalid event: prop {key!r} is longer than {MAX_PROP_VALUE} characters")
        clean[key] = text_value
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
    """The visitor's address: the last hop our own Nginx wrote into X-Forwarded-For, else the peer.

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
    query = text("SELECT salt, created_at > now() - interval '1 day' FROM salts "
                 "WHERE created_at > now() - interval '48 hours' ORDER BY created_at DESC LIMIT 2")
    rows: list[tuple[bytes, bool]] = [(bytes(r[0]), bool(r[1])) for r in await session.execute(query)]
    if not rows or not rows[0][1]:
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('beacon.salts'))"))
        rows = [(bytes(r[0]), bool(r[1])) for r in await session.execute(query)]
        if not rows or not rows[0][1]:
            salt = secrets.token_bytes(32)
            await session.execute(text("INSERT INTO salts (salt) VALUES (:salt)"), {"salt": salt})
            rows = [(salt, True), *rows]
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
