"""Browser sessions and CSRF against a real api process, real Redis and PostgreSQL: nothing stored for visitors
without a session, server-chosen ids only, capped cookies, absolute lifetime, ending sessions, bound tokens."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from app.core.sessions import SESSION_COOKIE, new_session
from tests.support.accounts import PASSWORD, Browser, Servers, World, signed_in


def session_keys(world: World) -> list[bytes]:
    return sorted(world.redis.scan_iter(match=f"{world.settings.redis.key_prefix}sessions*"))


def token_of(page: httpx.Response) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


@pytest.mark.parametrize("cookie", [
    pytest.param(None, id="no-cookie"),
    pytest.param("junk1-" + "x" * 3000, id="long-junk"),
    pytest.param("f" * 64, id="well-formed-unknown-id"),
    pytest.param("null", id="null"),
])
def test_visitor_without_a_session_stores_nothing_and_gets_no_session_cookie(servers: Servers, world: World,
                                                                             cookie: str | None) -> None:
    """Pages for a visitor with no session (whatever the cookie says) write nothing to Redis and echo no id."""
    headers = {"Accept": "text/html"} | ({"Cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else {})
    with httpx.Client(base_url=servers.api, timeout=15) as client:
        answers = [client.get(path, headers=headers) for path in ("/register", "/login", "/")]
    assert [200, 200, 302] == [answer.status_code for answer in answers]
    assert [] == session_keys(world)
    for answer in answers:
        for value in answer.headers.get_list("set-cookie"):
            assert not value.startswith(f"{SESSION_COOKIE}=") or value.startswith(f'{SESSION_COOKIE}=""'), value
            assert cookie is None or cookie not in value


def test_unknown_session_id_is_replaced_by_a_server_generated_one_at_sign_in(browser: Browser,
                                                                             world: World) -> None:
    """A well-formed id that names no session is not adopted: sign-in issues a fresh id of the server's own."""
    world.user("a@example.com")
    browser.cookies.set(SESSION_COOKIE, "a" * 64)
    answer = browser.form("/login", {"email": "a@example.com", "password": PASSWORD})
    issued = answer.cookies.get(SESSION_COOKIE)
    assert 303 == answer.status_code
    assert issued is not None and re.fullmatch("[0-9a-f]{64}", issued) and issued != "a" * 64
    assert [f"{world.settings.redis.key_prefix}sessions:{issued}".encode()] == session_keys(world)


@pytest.mark.parametrize(("path", "accept", "media_type"), [
    pytest.param("/login", "text/html", "text/html", id="page"),
    pytest.param("/api/health", "application/json", "application/problem+json", id="api"),
])
def test_oversized_cookie_header_is_refused_with_431(servers: Servers, world: World, path: str, accept: str,
                                                     media_type: str) -> None:
    """More than 8 KB of cookies: 431 with a page or problem+json, and nothing stored."""
    cookie = f"{SESSION_COOKIE}={'a' * 64}; other={'x' * 9000}"
    with httpx.Client(base_url=servers.api, timeout=15) as client:
        answer = client.get(path, headers={"Cookie": cookie, "Accept": accept})
    assert 431 == answer.status_code
    assert media_type == answer.headers["content-type"].split(";")[0]
    assert "Cookie header" in answer.text
    assert [] == session_keys(world)


def test_session_ends_at_its_absolute_lifetime_however_active(servers: Servers, world: World) -> None:
    """A session signed in longer ago than BEACON_SESSION_LIFETIME is no longer signed in, and is deleted."""
    user_id = world.user("a@example.com")
    key = f"{world.settings.redis.key_prefix}sessions:{'b' * 64}"
    lifetime = world.settings.accounts.session_lifetime
    world.redis.set(key, json.dumps(new_session(user_id, 0, time.time() - lifetime - 1)), ex=3600)
    with httpx.Client(base_url=servers.api, timeout=15, cookies={SESSION_COOKIE: "b" * 64}) as client:
        answer = client.get("/account", headers={"Accept": "text/html"})
    assert 302 == answer.status_code
    assert answer.headers["location"].startswith("/login")
    assert world.redis.exists(key) == 0


def test_an_active_session_is_kept_no_longer_than_its_lifetime_allows(servers: Servers, world: World) -> None:
    """Sliding renewal stops at the absolute lifetime: Redis TTL and cookie Max-Age are what remains of it."""
    user_id = world.user("a@example.com")
    key = f"{world.settings.redis.key_prefix}sessions:{'c' * 64}"
    lifetime = world.settings.accounts.session_lifetime
    world.redis.set(key, json.dumps(new_session(user_id, 0, time.time() - lifetime + 100)), ex=3600)
    with httpx.Client(base_url=servers.api, timeout=15, cookies={SESSION_COOKIE: "c" * 64}) as client:
        answer = client.get("/account", headers={"Accept": "text/html"})
    assert 200 == answer.status_code
    max_age = re.search(rf"{SESSION_COOKIE}=c{{64}}; .*Max-Age=(\d+)", answer.headers["set-cookie"])
    assert max_age is not None and 0 < int(max_age.group(1)) <= 100
    assert 0 < world.redis.ttl(key) <= 100


def test_signed_in_pages_are_not_stored_by_caches(servers: Servers, world: World) -> None:
    """Every answer to a signed-in browser carries Cache-Control: no-store."""
    with signed_in(servers, world, world.user("a@example.com")) as client:
        answers = [client.get(path) for path in ("/", "/account", "/sites/new", "/register")]
    assert [(200, "no-store")] * 4 == [(answer.status_code, answer.headers.get("cache-control"))
                                        for answer in answers]


def test_password_change_ends_the_other_sessions_and_keeps_this_one(servers: Servers, world: World) -> None:
    """After a password change the user's other sessions are signed out; the one that changed it goes on."""
    user_id = world.user("a@example.com")
    with signed_in(servers, world, user_id) as here, signed_in(servers, world, user_id) as elsewhere:
        assert 200 == elsewhere.get("/account").status_code
        old_id = here.cookies.get(SESSION_COOKIE)
        changed = here.form("/account/password", {"current_password": PASSWORD, "new_password": "a new password",
                                                  "new_password_again": "a new password"})
        assert 200 == changed.status_code
        assert old_id != here.cookies.get(SESSION_COOKIE)
        # The page answering the change carries tokens for the rotated session: its forms still work.
        assert 201 == here.post("/account/api-keys", data={"name": "after", "scopes": "stats:read",
                                                           "_csrf_token": token_of(changed)}).status_code
        assert 200 == here.get("/account").status_code
        assert 302 == elsewhere.get("/account").status_code
    assert [(1,)] == world.sql("SELECT session_epoch FROM users WHERE id = :u", u=user_id)


def test_sign_out_everywhere_ends_every_session(servers: Servers, world: World) -> None:
    """'Sign out everywhere' on the account page ends this session and every other one of the user."""
    user_id = world.user("a@example.com")
    with signed_in(servers, world, user_id) as here, signed_in(servers, world, user_id) as elsewhere:
        page = here.get("/account")
        assert 'action="/account/sessions/end"' in page.text
        answer = here.post("/account/sessions/end", data={"_csrf_token": token_of(page)})
        assert (303, "/login") == (answer.status_code, answer.headers["location"])
        assert "You are signed out everywhere." in here.get("/login").text
        assert 302 == here.get("/account").status_code
        assert 302 == elsewhere.get("/account").status_code


def test_a_token_fetched_without_a_session_does_not_work_with_a_victims_session(servers: Servers,
                                                                               world: World) -> None:
    """CSRF tokens are bound to the session: an attacker's anonymous token and cookie fail on the victim's."""
    with httpx.Client(base_url=servers.api, timeout=15) as attacker:
        page = attacker.get("/register", headers={"Accept": "text/html"})
        token, csrf_cookie = token_of(page), attacker.cookies.get("beacon_csrf")
    assert csrf_cookie is not None
    with signed_in(servers, world, world.user("victim@example.com")) as victim:
        victim.cookies.set("beacon_csrf", csrf_cookie)
        forged = victim.post("/sites", data={"domain": "evil.example", "_csrf_token": token})
    assert 403 == forged.status_code
    assert [] == world.sql("SELECT id FROM sites")


def test_one_sessions_token_does_not_work_with_another_session(servers: Servers, world: World) -> None:
    """A token of one signed-in session is refused with another session, even of the same user."""
    user_id = world.user("a@example.com")
    with signed_in(servers, world, user_id) as one, signed_in(servers, world, user_id) as other:
        token = token_of(one.get("/sites/new"))
        refused = other.post("/sites", data={"domain": "one.example", "_csrf_token": token})
        accepted = one.post("/sites", data={"domain": "one.example", "_csrf_token": token})
    assert (403, 303) == (refused.status_code, accepted.status_code)


def test_sign_out_message_is_shown_without_a_session_in_redis(browser: Browser, world: World) -> None:
    """The message after sign-out reaches the next page through a signed cookie, not a stored session."""
    world.user("a@example.com")
    browser.form("/login", {"email": "a@example.com", "password": PASSWORD})
    assert 1 == len(session_keys(world))
    answer = browser.form("/logout")
    assert (303, []) == (answer.status_code, session_keys(world))
    assert "You are signed out." in browser.get("/login").text
    assert "You are signed out." not in browser.get("/login").text
    assert [] == session_keys(world)


def test_a_forged_flash_cookie_is_ignored(servers: Servers, world: World) -> None:
    """Flash cookies are signed: one written by someone else shows nothing."""
    with httpx.Client(base_url=servers.api, timeout=15, cookies={"beacon_flash": "eyJmbGFzaCI6W119.AAAA"}) as client:
        page = client.get("/login", headers={"Accept": "text/html"})
    assert 200 == page.status_code
    assert 'class="flash' not in page.text

