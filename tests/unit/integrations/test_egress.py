"""Safe egress: which webhook destinations are refused, and why."""

from __future__ import annotations

import pytest

from services.integrations.egress import EgressError, resolve


@pytest.mark.parametrize("url", [
    pytest.param("https://127.0.0.1/hook", id="loopback"),
    pytest.param("https://10.1.2.3/hook", id="10/8"),
    pytest.param("https://172.16.0.1/hook", id="172.16/12"),
    pytest.param("https://192.168.1.1/hook", id="192.168/16"),
    pytest.param("https://169.254.169.254/latest/meta-data", id="cloud-metadata"),
    pytest.param("https://100.64.0.1/hook", id="carrier-grade-nat"),
    pytest.param("https://0.0.0.0/hook", id="unspecified"),
    pytest.param("https://[::1]/hook", id="ipv6-loopback"),
    pytest.param("https://[fd00::1]/hook", id="ipv6-ula"),
    pytest.param("https://[fe80::1]/hook", id="ipv6-link-local"),
    pytest.param("https://[::ffff:127.0.0.1]/hook", id="ipv4-mapped-loopback"),
    pytest.param("https://[::ffff:10.0.0.1]/hook", id="ipv4-mapped-private"),
    pytest.param("https://[2002:a00:1::]/hook", id="6to4-of-10/8"),
    pytest.param("https://[64:ff9b::a9fe:a9fe]/hook", id="nat64-of-metadata"),
    pytest.param("https://localhost/hook", id="hostname-resolving-to-127.0.0.1"),
])
def test_non_public_destinations_are_refused(url: str) -> None:
    """Each private, loopback, link-local or embedded-private destination is refused, naming the url."""
    with pytest.raises(EgressError, match=r"^url: .*non-public address"):
        resolve(url, allow_private=False)


@pytest.mark.parametrize(("url", "reason"), [
    pytest.param("http://93.184.216.34/hook", "must start with https://", id="plain-http"),
    pytest.param("ftp://93.184.216.34/hook", "must start with https://", id="ftp"),
    pytest.param("not a url", "must start with https://", id="not-a-url"),
    pytest.param("https:///hook", "has no host", id="no-host"),
    pytest.param("https://user:pw@93.184.216.34/", "must not contain credentials", id="credentials"),
    pytest.param("https://93.184.216.34:99999/", "not a valid URL", id="bad-port"),
    pytest.param("https://no-such-host.invalid/", "does not resolve", id="unresolvable"),
])
def test_malformed_destinations_are_refused(url: str, reason: str) -> None:
    with pytest.raises(EgressError, match=reason):
        resolve(url, allow_private=False)


def test_a_public_address_is_allowed() -> None:
    """A public literal address passes and is the address the request will go to."""
    destination = resolve("https://93.184.216.34:8443/hook?x=1", allow_private=False)
    assert ("93.184.216.34", 8443, "93.184.216.34") == (destination.host, destination.port, destination.address)


def test_allow_private_lets_tests_use_loopback_over_http() -> None:
    assert "127.0.0.1" == resolve("http://127.0.0.1:8080/hook", allow_private=True).address
