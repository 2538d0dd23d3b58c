"""Turning an accepted event into a stored row and a live message."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ClientError
from services.ingest.schemas import EventIn

MAX_PROPS = 30
MAX_PROP_KEY = 300
MAX_PROP_VALUE = 2000
MAX_NAME = 120


@dataclass(frozen=True)
class CleanEvent:
    name: str
    domains: list[str]
    hostname: str
    pathname: str
    referrer: str
    props: dict[str, str]


def parse_event(body: bytes) -> CleanEvent:
    """Validate a raw request body; raise :class:`ClientError` with a one-line reason."""
    try:
        raw = msgspec.json.decode(body, type=EventIn)
    except msgspec.ValidationError as exc:
        raise ClientError(f"invalid event: {exc}") from None
    except msgspec.DecodeError:
        raise ClientError("invalid event: body is not valid JSON") from None
    except UnicodeDecodeError:
        raise ClientError("invalid event: body is not valid UTF-8") from None
    name = raw.name if raw.name is not None else raw.n
    url = raw.url if raw.url is not None else raw.u
    domain = raw.domain if raw.domain is not None else raw.d
    referrer = (raw.referrer if raw.referrer is not None else raw.r) or ""
    props = raw.props if raw.props is not None else raw.p
    if isinstance(props, str):
        try:
            props = json.loads(props)
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
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "app") or not parts.hostname:
        raise ClientError("invalid event: url must be an absolute http(s) URL")
    return CleanEvent(
        name=name,
        domains=[d.strip().lower() for d in domain.split(",") if d.strip()],
        hostname=parts.hostname.lower().removeprefix("www."),
        pathname=(parts.path or "/")[:2000],
        referrer=referrer[:2000],
        props=_clean_props(props),
    )


def _clean_props(props: object) -> dict[str, str]:
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise ClientError("invalid event: props must be an object")
    if len(props) > MAX_PROPS:
        raise ClientError(f"invalid event: at most {MAX_PROPS} props")
    clean: dict[str, str] = {}
    for key, value in props.items():
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


def client_ip(forwarded_for: str | None, peer: str | None) -> str:
    """The visitor's address: the last hop our own Nginx wrote into X-Forwarded-For, else the peer."""
    candidates = [part.strip() for part in (forwarded_for or "").split(",") if part.strip()]
    for candidate in reversed(candidates):
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return peer or "0.0.0.0"  # noqa: S104 - an address to hash, not to bind


def visitor_id(salt: bytes, domain: str, ip: str, user_agent: str) -> int:
    """A keyed hash of (salt, site, IP, User-Agent) as a signed 64-bit integer; nothing reversible."""
    digest = hashlib.blake2b(f"{domain}\x00{ip}\x00{user_agent}".encode(), key=salt, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class SaltCache:
    """The current daily salt, read from PostgreSQL at most once a minute per process."""

    def __init__(self) -> None:
        self._salt: bytes | None = None
        self._read_at = 0.0

    async def current(self, session: AsyncSession) -> bytes:
        if self._salt is not None and time.monotonic() - self._read_at < 60:
            return self._salt
        salt = await current_salt(session)
        self._salt, self._read_at = salt, time.monotonic()
        return salt


async def current_salt(session: AsyncSession) -> bytes:
    """Today's salt, created if the newest one is older than a day (one creator at a time)."""
    query = text("SELECT salt FROM salts WHERE created_at > now() - interval '1 day' "
                 "ORDER BY created_at DESC LIMIT 1")
    salt = (await session.execute(query)).scalar()
    if salt is None:
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('beacon.salts'))"))
        salt = (await session.execute(query)).scalar()
        if salt is None:
            salt = secrets.token_bytes(32)
            await session.execute(text("INSERT INTO salts (salt) VALUES (:salt)"), {"salt": salt})
    return bytes(salt)


async def sites_by_domain(session: AsyncSession, domains: list[str]) -> dict[str, int]:
    rows = await session.execute(
        text("SELECT domain, id FROM sites WHERE domain = ANY(:domains)"), {"domains": domains}
    )
    return {domain: site_id for domain, site_id in rows}


async def store_event(
    session: AsyncSession, event: CleanEvent, site_id: int, visitor: int, at: datetime
) -> None:
    await session.execute(
        text(
            "INSERT INTO events (site_id, timestamp, name, visitor_id, hostname, pathname, referrer, props) "
            "VALUES (:site_id, :ts, :name, :visitor, :hostname, :pathname, :referrer, CAST(:props AS jsonb))"
        ),
        {
            "site_id": site_id,
            "ts": at,
            "name": event.name,
            "visitor": visitor,
            "hostname": event.hostname,
            "pathname": event.pathname,
            "referrer": event.referrer,
            "props": json.dumps(event.props),
        },
    )


def live_message(domain: str, event: CleanEvent, at: datetime) -> dict[str, Any]:
    return {
        "type": "event",
        "site": domain,
        "name": event.name,
        "pathname": event.pathname,
        "at": at.astimezone(UTC).isoformat(),
    }
