"""Safe egress: where a webhook may be delivered.

A destination must be ``https://`` (plain ``http://`` only with ``allow_private``), carry no credentials, and
every address its host resolves to must be public: loopback, private (10/8, 172.16/12, 192.168/16), link-local
(169.254/16, where cloud metadata lives), carrier-grade NAT, multicast, reserved, unspecified, IPv6 unique
local (fc00::/7) and site-local addresses are refused, and so is an IPv6 address that maps or embeds one
(``::ffff:127.0.0.1``, 6to4, Teredo, NAT64). The check runs when an endpoint is saved and again right before
every delivery, and the request then goes to the address that was checked, so a DNS answer that changes in
between (DNS rebinding) cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressError(ValueError):
    """The destination is not allowed; the message says why (shown to the user as a 400)."""


@dataclass(frozen=True)
class Destination:
    """A checked URL: its parts and the address the request must go to."""

    url: str
    host: str
    port: int
    address: str


def parse_url(url: str, *, allow_private: bool) -> SplitResult:
    """Check the URL's form (scheme, host, no credentials); raises :class:`EgressError`."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise EgressError(f"url: not a valid URL ({exc})") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise EgressError("url: must start with https://")
    if not parts.hostname:
        raise EgressError("url: has no host")
    if parts.username or parts.password:
        raise EgressError("url: must not contain credentials")
    return parts


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address maps or tunnels to, if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address (and, for IPv6, nothing private embedded in it)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
        if address.is_site_local:
            return False
    return address.is_global and not address.is_multicast


def check_addresses(host: str, addresses: list[str], *, allow_private: bool) -> str:
    """The first address to connect to, if every one is public (or ``allow_private``); else EgressError."""
    if not addresses:
        raise EgressError(f"url: the host {host} does not resolve")
    if not allow_private:
        for raw in addresses:
            address = ipaddress.ip_address(raw.split("%", 1)[0])
            if not is_public(address):
                raise EgressError(f"url: the host {host} resolves to a non-public address ({address})")
    return addresses[0]


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def resolve(url: str, *, allow_private: bool) -> Destination:
    """Check ``url`` and resolve its host now (blocking DNS); raises :class:`EgressError`."""
    parts = parse_url(url, allow_private=allow_private)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise EgressError(f"url: the host {host} does not resolve") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    return Destination(url=url.strip(), host=host, port=port,
                       address=check_addresses(host, addresses, allow_private=allow_private))
