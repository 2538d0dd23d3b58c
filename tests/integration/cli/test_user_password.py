"""``beacon user password``: an operator sets a user's password on the host; clear one-line errors."""

from __future__ import annotations

import pytest

from tests.support.accounts import HASH, PASSWORD, Servers, World, anonymous_browser, signed_in
from tests.support.beacon import run_beacon

NEW = "the operator's choice"


def test_sets_the_password_and_ends_every_session(environment: dict[str, str], servers: Servers,
                                                  world: World) -> None:
    """The new password signs in, the old one no longer does, and the user's sessions have ended."""
    user_id = world.user("gus@example.com")
    client = signed_in(servers, world, user_id)
    result = run_beacon(environment, "user", "password", "Gus@Example.com", "--stdin", stdin=NEW + "\n")
    assert 0 == result.returncode, result.stderr
    assert "password of gus@example.com changed; every session of theirs has ended\n" == result.stdout
    assert 302 == client.get("/account", follow_redirects=False).status_code
    client.close()
    with anonymous_browser(servers) as fresh:
        assert 303 == fresh.form("/login", {"email": "gus@example.com", "password": NEW}).status_code
    with anonymous_browser(servers) as fresh:
        assert 400 == fresh.form("/login", {"email": "gus@example.com", "password": PASSWORD}).status_code


@pytest.mark.parametrize(("args", "stdin", "message"), [
    pytest.param(("nobody@example.com", "--stdin"), NEW + "\n",
                 "beacon: error: email: no user has the e-mail address nobody@example.com\n", id="unknown-user"),
    pytest.param(("not-an-email", "--stdin"), NEW + "\n",
                 "beacon: error: email: not a valid e-mail address\n", id="bad-email"),
    pytest.param(("hal@example.com", "--stdin"), "short\n",
                 "beacon: error: password: at least 10 characters\n", id="short-password"),
    pytest.param(("hal@example.com",), "",
                 "beacon: error: no password given: use --stdin or run interactively\n", id="no-terminal"),
])
def test_refuses_with_one_clear_line(environment: dict[str, str], world: World, args: tuple[str, ...], stdin: str,
                                     message: str) -> None:
    """Bad input is one error line naming what is wrong, exit status 1, and the password is unchanged."""
    world.user("hal@example.com")
    result = run_beacon(environment, "user", "password", *args, stdin=stdin)
    assert (1, message) == (result.returncode, result.stderr)
    assert [(HASH,)] == world.sql("SELECT password_hash FROM users WHERE email = 'hal@example.com'")
