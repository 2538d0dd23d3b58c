"""Parsing and privacy helpers of the Events API."""

from __future__ import annotations

import json

import pytest

from app.core.errors import ClientError
from services.ingest.logic import client_ip, parse_event, visitor_id


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_long_and_short_field_names() -> None:
    """Plausible's documented names and its tracker's short names give the same event."""
    long = parse_event(body(name="pageview", url="https://www.Example.com/a/b?x=1", domain="example.com",
                            referrer="https://news.ycombinator.com/", props={"plan": "pro", "n": 3}))
    short = parse_event(body(n="pageview", u="https://www.Example.com/a/b?x=1", d="example.com",
                             r="https://news.ycombinator.com/", p=json.dumps({"plan": "pro", "n": 3})))
    assert long == short
    assert "example.com" == long.hostname
    assert "/a/b" == long.pathname
    assert {"plan": "pro", "n": "3"} == long.props


def test_several_domains() -> None:
    """A comma-separated domain names several sites."""
    assert ["a.com", "b.org"] == parse_event(body(name="x", url="https://a.com/", domain="a.com, B.org")).domains


@pytest.mark.parametrize(("raw", "reason"), [
    pytest.param(b"{not json", "not valid JSON", id="malformed"),
    pytest.param(b"[]", "invalid event", id="array"),
    pytest.param(body(url="https://a.com/", domain="a.com"), "name is required", id="no-name"),
    pytest.param(body(name="x", domain="a.com"), "url is required", id="no-url"),
    pytest.param(body(name="x", url="https://a.com/"), "domain is required", id="no-domain"),
    pytest.param(body(name="x", url="/relative", domain="a.com"), "absolute", id="relative-url"),
    pytest.param(body(name="x", url="javascript:alert(1)", domain="a.com"), "absolute", id="js-url"),
    pytest.param(body(name=5, url="https://a.com/", domain="a.com"), "Expected `str", id="name-type"),
    pytest.param(body(name="x" * 121, url="https://a.com/", domain="a.com"), "longer than", id="long-name"),
    pytest.param(body(name="x", url="https://a.com/", domain="a.com", props=[1]), "Expected", id="props-list"),
    pytest.param(body(name="x", url="https://a.com/", domain="a.com", props={f"k{i}": i for i in range(31)}),
                 "at most 30", id="too-many-props"),
    pytest.param(body(name="x", url="https://a.com/", domain="a.com", props={"k": "v" * 2001}),
                 "longer than", id="long-prop"),
    pytest.param(body(name="x", url="https://a.com/", domain="a.com", props={"k": {"a": 1}}),
                 "scalar", id="nested-prop"),
    pytest.param(b'{"name": "\xff\xfe", "url": "https://a.com/", "domain": "a.com"}', "invalid", id="bad-utf8"),
])
def test_bad_input_is_a_client_error(raw: bytes, reason: str) -> None:
    """Every malformed body raises ClientError with a reason."""
    with pytest.raises(ClientError, match=reason):
        parse_event(raw)


@pytest.mark.parametrize(("header", "peer", "expected"), [
    pytest.param("203.0.113.7", "127.0.0.1", "203.0.113.7", id="nginx-set"),
    pytest.param("10.0.0.1, 203.0.113.7", "127.0.0.1", "203.0.113.7", id="last-hop"),
    pytest.param("2001:db8::1", "127.0.0.1", "2001:db8::1", id="ipv6"),
    pytest.param("junk", "127.0.0.1", "127.0.0.1", id="junk"),
    pytest.param(None, "192.0.2.1", "192.0.2.1", id="no-header"),
])
def test_client_ip(header: str | None, peer: str, expected: str) -> None:
    """The address our Nginx wrote wins; junk falls back to the socket peer."""
    assert expected == client_ip(header, peer)


def test_visitor_id_depends_on_every_input() -> None:
    """Changing salt, site, IP or User-Agent changes the id; the same inputs give the same id."""
    base = visitor_id(b"s" * 32, "a.com", "203.0.113.7", "UA")
    assert base == visitor_id(b"s" * 32, "a.com", "203.0.113.7", "UA")
    variants = {
        visitor_id(b"t" * 32, "a.com", "203.0.113.7", "UA"),
        visitor_id(b"s" * 32, "b.com", "203.0.113.7", "UA"),
        visitor_id(b"s" * 32, "a.com", "203.0.113.8", "UA"),
        visitor_id(b"s" * 32, "a.com", "203.0.113.7", "UB"),
    }
    assert base not in variants
    assert 4 == len(variants)
    assert -(2**63) <= base < 2**63
