"""``beacon user password``: an operator sets a user's password on the host; clear one-line errors."""

from __future__ import annotations

import os
import pty
import select
import signal
import time

import pytest

from tests.support.accounts import HASH, PASSWORD, Servers, World, anonymous_browser, signed_in
from tests.support.beacon import BEACON, run_beacon

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


def _on_terminal(environment: dict[str, str], args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run ``beacon`` on a pseudo-terminal (getpass reads /dev/tty), answering each prompt in turn."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session of its own whose controlling terminal is the pty
        os.execve(BEACON, [BEACON, *args], {**os.environ, **environment})
    output, pending = b"", list(answers)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child has exited and closed the terminal
            break
        if not chunk:
            break
        output += chunk
        # Answer each prompt once it is shown: getpass flushes typed-ahead input when it turns echo off.
        if pending and output.rstrip().endswith(b":") and output.count(b"assword") > len(answers) - len(pending):
            os.write(fd, pending.pop(0).encode() + b"\n")
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_asks_twice_on_a_terminal(environment: dict[str, str], world: World) -> None:
    """On a terminal the password is asked twice; two different entries are refused, two equal ones set it."""
    world.user("ida@example.com")
    status, output = _on_terminal(environment, ["user", "password", "ida@example.com"], [NEW, "something else!"])
    assert (1, True) == (status, "password_again: the two passwords differ" in output)
    assert [(HASH,)] == world.sql("SELECT password_hash FROM users WHERE email = 'ida@example.com'")
    status, output = _on_terminal(environment, ["user", "password", "ida@example.com"], [NEW, NEW])
    assert (0, True) == (status, "password of ida@example.com changed" in output)
    assert [(HASH,)] != world.sql("SELECT password_hash FROM users WHERE email = 'ida@example.com'")
