"""Pure rules of accounts, sites and realtime addressing."""

from __future__ import annotations

import msgspec
import pytest

from app.core.errors import ClientError
from app.domain.accounts.controllers import _safe_next
from app.domain.search.services import _prefix_query
from app.domain.sites.services import check_goal, check_timezone, normalize_domain
from app.realtime.publish import ProcessStats, aggregate, is_channel, room_site_id


@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param("https://www.Example.com/path", "example.com", id="url"),
    pytest.param("sub.example.co.uk", "sub.example.co.uk", id="subdomain"),
])
def test_domain_is_normalised(raw: str, expected: str) -> None:
    """Scheme, www. and path are dropped; case is folded."""
    assert expected == normalize_domain(raw)


@pytest.mark.parametrize("raw", ["", "not a domain", "-bad.example", "a" * 300])
def test_bad_domain_names_the_field(raw: str) -> None:
    """A bad domain is a client error naming the field."""
    with pytest.raises(ClientError, match=r"^domain:"):
        normalize_domain(raw)


@pytest.mark.parametrize("raw", ["localtime", "posixrules", "Mars/Base", "posix/Europe/Berlin", "../UTC"])
def test_time_zone_is_an_iana_name(raw: str) -> None:
    """``localtime`` (a link to the host's /etc/localtime on Debian) is no time zone of its own: a site's reports
    would follow whichever machine computes them."""
    with pytest.raises(ClientError, match=r"^timezone:"):
        check_timezone(raw)


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires"])
def test_iana_time_zones_are_accepted(name: str) -> None:
    assert name == check_timezone(name)


@pytest.mark.parametrize(("target", "expected"), [
    pytest.param("/sites/x", "/sites/x", id="path"),
    pytest.param("https://evil.example/", "/", id="absolute"),
    pytest.param("//evil.example/", "/", id="scheme-relative"),
    pytest.param("sites", "/", id="relative"),
])
def test_login_redirects_only_within_the_site(target: str, expected: str) -> None:
    """The next= target of the login form cannot leave Beacon."""
    assert expected == _safe_next(target)


@pytest.mark.parametrize(("name", "site_id", "channel"), [
    pytest.param("site:12", 12, False, id="room"),
    pytest.param("site:x", None, False, id="bad-room"),
    pytest.param("user:3", None, False, id="user"),
    pytest.param("broadcast", None, False, id="broadcast"),
    pytest.param("news", None, True, id="channel"),
    pytest.param("News!", None, False, id="bad-channel"),
])
def test_names_are_told_apart(name: str, site_id: int | None, channel: bool) -> None:
    """Rooms, users, broadcast and channels never overlap."""
    assert (site_id, channel) == (room_site_id(name), is_channel(name))


def test_statistics_add_up_over_processes() -> None:
    """Totals and per-room counts are sums over the processes' reports."""
    one = ProcessStats("a:1", 3, {"site:1": 2}, {"news": 1}, 2, 0, 0, 0.0)
    two = ProcessStats("b:2", 4, {"site:1": 1, "site:2": 3}, {}, 1, 1, 0, 0.0)
    stats = aggregate([msgspec.json.encode(two), None, msgspec.json.encode(one)])
    assert (7, {"site:1": 3, "site:2": 3}, {"news": 1}, ["a:1", "b:2"]) == (
        stats.connections, stats.rooms, stats.channels, [p.process for p in stats.processes])


@pytest.mark.parametrize(("args", "field"), [
    pytest.param(("event", "", None), "event_name", id="no-event"),
    pytest.param(("page", None, "no-slash"), "page_path", id="bad-path"),
    pytest.param(("visit", "x", None), "goal_type", id="bad-type"),
])
def test_bad_goal_names_the_field(args: tuple[str, str | None, str | None], field: str) -> None:
    """Goal validation names the offending field."""
    with pytest.raises(ClientError, match=rf"^{field}:"):
        check_goal(*args)


def test_search_prefix_matches_the_last_word() -> None:
    """The last word typed matches as a prefix; punctuation cannot reach to_tsquery."""
    assert ("check:*", "") == (_prefix_query("launch check"), _prefix_query("!&|"))
