"""Parsing and privacy helpers of the Events API."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from app.core.errors import ClientError
from services.ingest.logic import CleanEvent, client_addresses, client_ip, parse_event, visitor_id


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
    pytest.param(b'"pageview"', "invalid event", id="string"),
    pytest.param(body(url="https://a.com/", domain="a.com"), "name is required", id="no-name"),
    pytest.param(body(name="", url="https://a.com/", domain="a.com"), "name is required", id="empty-name"),
    pytest.param(body(name="x", domain="a.com"), "url is required", id="no-url"),
    pytest.param(body(name="x", url="https://a.com/"), "domain is required", id="no-domain"),
    pytest.param(body(name="x", url="https://a.com/", domain="  "), "domain is required", id="blank-domain"),
    pytest.param(body(name="x", url="data:text/html,hi", domain="a.com"), "not allowed", id="data-url"),
    pytest.param(body(name={"a": 1}, url="https://a.com/", domain="a.com"), "Expected", id="name-type"),
    pytest.param(body(name="x" * 121, url="https://a.com/", domain="a.com"), "longer than", id="long-name"),
    pytest.param(body(name="x", url="https://a.com/" + "p" * 2000, domain="a.com"), "page path", id="long-path"),
    pytest.param(body(name="x", url="https://a.com/", domain="a.com", referrer="https://r.com/" + "p" * 2000),
                 "referrer is longer", id="long-referrer"),
    pytest.param(b'{"name": "\xff\xfe", "url": "https://a.com/", "domain": "a.com"}', "invalid", id="bad-utf8"),
])
def test_bad_input_is_a_client_error(raw: bytes, reason: str) -> None:
    """What Plausible refuses raises ClientError with a reason."""
    with pytest.raises(ClientError, match=reason):
        parse_event(raw)


def accepted(**fields: object) -> CleanEvent:
    return parse_event(body(**{"name": "x", "url": "https://a.com/", "domain": "a.com", **fields}))


@pytest.mark.parametrize(("props", "expected"), [
    pytest.param({"plan": "pro", "nested": {"a": 1}, "list": [1]}, {"plan": "pro"}, id="non-scalar-dropped"),
    pytest.param({f"k{i:02}": i for i in range(31)}, {f"k{i:02}": str(i) for i in range(30)}, id="first-30-kept"),
    pytest.param({"k": "v" * 2001, "ok": "v" * 2000}, {"ok": "v" * 2000}, id="long-value-dropped"),
    pytest.param({"k" * 301: "v", "k" * 300: "v"}, {"k" * 300: "v"}, id="long-key-dropped"),
    pytest.param({"empty": "", "none": None, "t": True, "f": False, "n": 1.5}, {"t": "true", "f": "false", "n": "1.5"},
                 id="empty-dropped-scalars-kept"),
    pytest.param([1, 2], {}, id="list-ignored"),
    pytest.param("not json", {}, id="bad-json-string-ignored"),
])
def test_props_follow_plausible(props: object, expected: dict[str, str]) -> None:
    """Props Plausible would not keep are dropped one by one; the event is kept."""
    assert expected == accepted(props=props).props


@pytest.mark.parametrize(("revenue", "expected"), [
    pytest.param({"currency": "EUR", "amount": "12.5"}, (Decimal("12.5"), "EUR"), id="numeric-string"),
    pytest.param({"currency": "usd", "amount": 3}, (Decimal(3), "USD"), id="lower-case-currency"),
    pytest.param({"currency": "XYZ", "amount": 3}, (None, None), id="unknown-currency"),
    pytest.param({"currency": "EUR", "amount": "lots"}, (None, None), id="bad-amount"),
    pytest.param({"currency": "EUR", "amount": 1e20}, (None, None), id="out-of-range"),
    pytest.param({"currency": "EUR", "amount": "-99999999999999.99995"}, (None, None), id="out-of-range-once-rounded"),
    pytest.param({"currency": "EUR", "amount": "99999999999999.99994"}, (Decimal("99999999999999.9999"), "EUR"),
                 id="largest-storable"),
    pytest.param("not json", (None, None), id="bad-json"),
    pytest.param([1], (None, None), id="not-an-object"),
])
def test_revenue_that_plausible_would_not_record_is_dropped(revenue: object,
                                                           expected: tuple[Decimal | None, str | None]) -> None:
    """Unusable revenue leaves the event without revenue instead of refusing it."""
    event = accepted(revenue=revenue)
    assert expected == (event.revenue_amount, event.revenue_currency)


@pytest.mark.parametrize(("url", "hash_mode", "expected"), [
    pytest.param("https://a.com/bl%C3%A5b%C3%A6r", 0, "/blåbær", id="utf8"),
    pytest.param("https://a.com/%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82", 0, "/привет", id="cyrillic"),
    pytest.param("https://a.com/a%20b", 0, "/a b", id="space"),
    pytest.param("https://a.com/a+b", 0, "/a+b", id="plus-kept"),
    pytest.param("https://a.com/#/caf%C3%A9", 1, "/#/café", id="hash-route"),
    pytest.param("https://a.com/x#/caf%C3%A9", 0, "/x", id="fragment-without-hash-mode"),
    pytest.param("https://a.com/%ff", 0, "/%ff", id="not-utf8-kept"),
    pytest.param("https://a.com/a%00b", 0, "/a%00b", id="nul-kept-encoded"),
    pytest.param("https://a.com/page%20%20", 0, "/page", id="trailing-space-trimmed"),
    pytest.param("/app/login", 0, "/app/login", id="no-host"),
])
def test_pathname_is_decoded(url: str, hash_mode: int, expected: str) -> None:
    """Paths and hash routes are stored percent-decoded, as Plausible stores them."""
    assert expected == accepted(url=url, h=hash_mode).pathname


def test_url_without_host_has_hostname_none() -> None:
    """A url with no scheme or host is kept under Plausible's hostname ``(none)``."""
    assert ("(none)", "/app/login") == (accepted(url="/app/login").hostname, accepted(url="/app/login").pathname)


def test_www_is_stripped_from_domain_and_hostname() -> None:
    """``www.`` goes from the domain field as from the hostname."""
    event = accepted(domain="www.shop-a.test, WWW.b.test", url="https://www.shop-a.test/")
    assert (["shop-a.test", "b.test"], "shop-a.test") == (event.domains, event.hostname)


@pytest.mark.parametrize(("name", "expected"), [
    pytest.param(404, "404", id="int"), pytest.param(1.5, "1.5", id="float"), pytest.param(2.0, "2", id="whole-float"),
])
def test_numeric_event_name(name: float, expected: str) -> None:
    """A number as event name is kept as its text."""
    assert expected == accepted(name=name).name


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


@pytest.mark.parametrize(("original", "honour", "expected"), [
    pytest.param("8.8.8.8, 10.0.0.1", True, ("8.8.8.8", "198.51.100.1"), id="first-of-several"),
    pytest.param("2001:4860:4860::8888", True, ("2001:4860:4860::8888", "198.51.100.1"), id="ipv6"),
    pytest.param("junk, 203.0.113.9, 8.8.8.8", True, ("203.0.113.9", "198.51.100.1"), id="first-valid"),
    pytest.param("junk", True, ("198.51.100.1", "198.51.100.1"), id="no-valid-address"),
    pytest.param("8.8.4.4:5353, 8.8.8.8", True, ("8.8.4.4", "198.51.100.1"), id="ipv4-port"),
    pytest.param("[2001:db8::1]:443", True, ("2001:db8::1", "198.51.100.1"), id="ipv6-brackets-port"),
    pytest.param(None, True, ("198.51.100.1", "198.51.100.1"), id="no-client-header"),
    pytest.param("8.8.8.8", False, ("198.51.100.1", "198.51.100.1"), id="not-honoured"),
])
def test_client_addresses(original: str | None, honour: bool, expected: tuple[str, str]) -> None:
    """The visitor is the first valid address the client sent; rate limits keep the address Nginx saw."""
    assert expected == client_addresses("198.51.100.1", original, "127.0.0.1", honour_client_header=honour)


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


@pytest.mark.parametrize(("fields", "depth", "engaged"), [
    pytest.param({"sd": 42, "e": 1500}, 42, 1500, id="as-sent"),
    pytest.param({"sd": 150, "e": -3}, 100, 0, id="clamped"),
    pytest.param({"sd": "deep", "e": "long"}, None, 0, id="not-integers"),
    pytest.param({"sd": True, "e": 2.5}, None, 0, id="bool-and-float"),
    pytest.param({}, None, 0, id="missing"),
])
def test_engagement_fields(fields: dict[str, object], depth: int | None, engaged: int) -> None:
    """An engagement event's scroll depth and engaged time; it never counts as an interaction nor carries revenue."""
    event = parse_event(body(n="engagement", u="https://example.com/a", d="example.com", i=True,
                             revenue={"currency": "EUR", "amount": 3}, **fields))
    assert (depth, engaged, False, None) == (event.scroll_depth, event.engagement_time, event.interactive,
                                             event.revenue_amount)


def test_other_events_ignore_engagement_fields() -> None:
    """``sd`` and ``e`` mean something only on an engagement event."""
    event = parse_event(body(n="pageview", u="https://example.com/a", d="example.com", sd=50, e=1000))
    assert (None, 0) == (event.scroll_depth, event.engagement_time)
