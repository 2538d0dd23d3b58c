"""Registration, sign-in (session rotation, throttling), CSRF and password change against a real api."""

from __future__ import annotations

import concurrent.futures
import re

import httpx

from app.core.sessions import SESSION_COOKIE
from tests.support.accounts import PASSWORD, Browser, Servers, World, signed_in


def register(browser: Browser, email: str, password: str = PASSWORD, again: str | None = None) -> httpx.Response:
    return browser.form("/register", {"email": email, "password": password,
                                      "password_again": password if again is None else again})


def test_first_account_becomes_admin_and_the_second_does_not(browser: Browser, world: World,
                                                              servers: Servers) -> None:
    """The first registration makes an instance admin; the next one a plain user."""
    assert 303 == register(browser, "first@example.com").status_code
    with Browser(base_url=servers.api, timeout=15) as other:
        assert 303 == register(other, "second@example.com").status_code
    assert [("first@example.com", True), ("second@example.com", False)] == world.sql(
        "SELECT email, is_admin FROM users ORDER BY id")


def test_registration_names_the_bad_field(browser: Browser, world: World) -> None:
    """Bad registration input answers 4xx with the field named."""
    cases = {"email": register(browser, "not-an-email"), "password": register(browser, "a@example.com", "short"),
             "password_again": register(browser, "a@example.com", PASSWORD, "different password")}
    for field, answer in cases.items():
        assert 400 == answer.status_code
        assert f"{field}:" in answer.text


def test_login_issues_a_new_session_id(browser: Browser, world: World) -> None:
    """A session id planted before sign-in is not the one that is signed in (no session fixation)."""
    world.user("a@example.com")
    browser.cookies.set(SESSION_COOKIE, "f" * 64)
    world.redis.set(f"{world.settings.redis.key_prefix}sessions:{'f' * 64}", b'{"planted":true}')
    answer = browser.form("/login", {"email": "a@example.com", "password": PASSWORD, "next": "/"})
    assert 303 == answer.status_code
    new_id = answer.cookies.get(SESSION_COOKIE)
    assert new_id and new_id != "f" * 64
    assert world.redis.get(f"{world.settings.redis.key_prefix}sessions:{'f' * 64}") is None
    assert 200 == browser.get("/").status_code


def test_logout_ends_the_session(browser: Browser, world: World) -> None:
    """After sign-out the old cookie no longer signs anyone in."""
    world.user("a@example.com")
    browser.form("/login", {"email": "a@example.com", "password": PASSWORD})
    old = browser.cookies.get(SESSION_COOKIE)
    browser.form("/logout")
    with httpx.Client(base_url=browser.base_url, cookies={SESSION_COOKIE: old or ""}) as replay:
        assert 302 == replay.get("/", follow_redirects=False).status_code


def test_form_without_csrf_token_is_refused(servers: Servers, world: World) -> None:
    """A signed-in user's form post without the CSRF token is refused with 403."""
    client = signed_in(servers, world, world.user("a@example.com"))
    with client:
        answer = client.post("/sites", data={"domain": "evil.example"})
    assert 403 == answer.status_code
    assert [] == world.sql("SELECT id FROM sites")


def _attempt(api: str, email: str, ip: str) -> int:
    with Browser(base_url=api, timeout=30, headers={"X-Forwarded-For": ip}) as client:
        return client.form("/login", {"email": email, "password": "wrong password!"}).status_code


def test_login_attempts_per_account_and_address_are_limited_exactly_under_concurrency(servers: Servers,
                                                                                      world: World) -> None:
    """40 concurrent wrong attempts on one account from one address: exactly 5 are checked, 35 get 429."""
    world.user("victim@example.com")
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(lambda n: _attempt(servers.api, "victim@example.com", "10.9.9.9"), range(40)))
    assert {400: 5, 429: 35} == {code: codes.count(code) for code in set(codes)}


def test_owner_signs_in_from_elsewhere_while_an_attacker_is_locked_out(servers: Servers, world: World) -> None:
    """Guesses from one address lock that address out of the account, never the owner at another address."""
    world.user("victim@example.com")
    attacker = [_attempt(servers.api, "victim@example.com", "10.6.6.6") for _ in range(7)]
    with Browser(base_url=servers.api, headers={"X-Forwarded-For": "10.5.5.5"}) as owner:
        signed = owner.form("/login", {"email": "victim@example.com", "password": PASSWORD})
    with Browser(base_url=servers.api, headers={"X-Forwarded-For": "10.6.6.6"}) as client:
        from_attacker = client.form("/login", {"email": "victim@example.com", "password": PASSWORD})
    assert [400] * 5 + [429] * 2 == attacker
    assert 303 == signed.status_code
    assert 429 == from_attacker.status_code


def test_ipv6_addresses_of_one_64_share_their_counters(servers: Servers, world: World) -> None:
    """Addresses of one IPv6 /64 count as one client: rotating through them gains no attempts."""
    world.user("victim@example.com")
    codes = [_attempt(servers.api, "victim@example.com", f"2001:db8:1:2::{n:x}") for n in range(1, 8)]
    other_block = _attempt(servers.api, "victim@example.com", "2001:db8:1:3::1")
    assert [400] * 5 + [429] * 2 == codes
    assert 400 == other_block


def test_login_attempts_per_address_are_limited_exactly_under_concurrency(servers: Servers, world: World) -> None:
    """30 concurrent attempts on different accounts from one address: exactly 8 are checked."""
    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        codes = list(pool.map(lambda n: _attempt(servers.api, f"u{n}@example.com", "10.8.8.8"), range(30)))
    assert {400: 8, 429: 22} == {code: codes.count(code) for code in set(codes)}


def test_throttled_sign_in_says_when_to_retry(servers: Servers, world: World) -> None:
    """The 429 names the field and carries Retry-After."""
    for _ in range(5):
        _attempt(servers.api, "x@example.com", "10.7.7.7")
    with Browser(base_url=servers.api, headers={"X-Forwarded-For": "10.7.7.7"}) as client:
        answer = client.form("/login", {"email": "x@example.com", "password": PASSWORD})
    assert 429 == answer.status_code
    assert int(answer.headers["retry-after"]) > 0
    assert "email:" in answer.text


def _register_from(api: str, email: str, ip: str) -> httpx.Response:
    with Browser(base_url=api, timeout=30, headers={"X-Forwarded-For": ip}) as client:
        return register(client, email)


def test_registrations_per_address_are_limited_exactly_under_concurrency(servers: Servers, world: World) -> None:
    """12 concurrent registrations from one address: exactly 6 create accounts; another address still may."""
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda n: _register_from(servers.api, f"u{n}@example.com", "10.4.4.4"), range(12)))
    codes = [answer.status_code for answer in answers]
    refused = next(answer for answer in answers if answer.status_code == 429)
    elsewhere = _register_from(servers.api, "other@example.com", "10.4.4.5")
    assert {303: 6, 429: 6} == {code: codes.count(code) for code in set(codes)}
    assert int(refused.headers["retry-after"]) > 0
    assert "too many registrations" in refused.text
    assert 303 == elsewhere.status_code
    assert 7 == world.sql("SELECT count(*) FROM users")[0][0]


def test_password_change(servers: Servers, world: World) -> None:
    """The current password is required; afterwards only the new password signs in."""
    user_id = world.user("a@example.com")
    with signed_in(servers, world, user_id) as client:
        wrong = client.form("/account/password", {"current_password": "nope", "new_password": "another password",
                                                  "new_password_again": "another password"})
        right = client.form("/account/password", {"current_password": PASSWORD,
                                                  "new_password": "another password",
                                                  "new_password_again": "another password"})
    assert (400, 200) == (wrong.status_code, right.status_code)
    assert "current_password:" in wrong.text
    with Browser(base_url=servers.api) as client:
        assert 400 == client.form("/login", {"email": "a@example.com", "password": PASSWORD}).status_code
        assert 303 == client.form("/login", {"email": "a@example.com", "password": "another password"}).status_code


def test_api_key_is_shown_once_and_stored_hashed(servers: Servers, world: World) -> None:
    """The key appears on the creation page only; the database holds its hash, not the key."""
    with signed_in(servers, world, world.user("a@example.com")) as client:
        created = client.form("/account/api-keys", {"name": "ci", "scopes": ["stats:read", "sites:write"]})
        later = client.get("/account")
    key = re.search(r'id="new-api-key">([^<]+)<', created.text)
    assert key is not None
    assert key.group(1) not in later.text
    assert [] == world.sql("SELECT id FROM api_keys WHERE key_hash = convert_to(:k, 'utf8')", k=key.group(1))
    assert [(["sites:write", "stats:read"],)] == world.sql("SELECT scopes FROM api_keys")


def test_api_key_form_names_bad_fields(servers: Servers, world: World) -> None:
    """A key without a name or with an unknown scope is refused naming the field."""
    with signed_in(servers, world, world.user("a@example.com")) as client:
        nameless = client.form("/account/api-keys", {"name": "", "scopes": "stats:read"})
        badscope = client.form("/account/api-keys", {"name": "x", "scopes": "root"})
    assert (400, 400) == (nameless.status_code, badscope.status_code)
    assert "name:" in nameless.text and "scopes:" in badscope.text
