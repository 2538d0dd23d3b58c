"""Forgot password: the request form, the emailed one-time link, its rules and limits, against a real api, the
integrations service's mail outbox and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import dataclasses
import email
import re
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import httpx
import pytest

from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.models import User
from app.devstack import free_port
from app.domain.accounts.reset import reset_token
from app.mailsink import MailSink
from services.integrations.mail import send_due
from tests.support.accounts import HASH, PASSWORD, Browser, Servers, World, anonymous_browser, signed_in
from tests.support.polling import wait_until

NEW_PASSWORD = "a brand new passphrase"
LINK = re.compile(r"(http://\S+/password/reset\?token=\S+)")


@pytest.fixture(scope="module")
def mail_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailSink]:
    sink = MailSink(tmp_path_factory.mktemp("reset-mail"), free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def deliver(serve: Callable[[str], int], servers: Servers, world: World,
            mail_sink: MailSink) -> Iterator[Callable[..., list[EmailMessage]]]:
    """Runs the integrations service (which queues the mail); the returned function sends the outbox to the SMTP
    sink as the worker's ``send_emails`` does and returns what the sink received since the test began."""
    serve("integrations")
    settings = dataclasses.replace(servers.settings.integrations, smtp_url=mail_sink.url)
    seen = set(mail_sink.messages())

    def run(expected: int = 1) -> list[EmailMessage]:
        # The api queues the email after it has answered: wait for it, sending as the worker would.
        def arrived() -> list[Path]:
            send_due(world.engine, settings)
            paths = [path for path in mail_sink.messages() if path not in seen]
            return paths if len(paths) >= expected else []

        return [_parse(path) for path in wait_until(arrived, 20, f"{expected} emails at the SMTP sink")]

    yield run
    for path in mail_sink.messages():
        if path not in seen:
            path.unlink()


def _parse(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    return message


def _link(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    found = LINK.search(body.get_content())
    assert found is not None, body.get_content()
    return found.group(1)


def _path(link: str) -> str:
    return link[link.index("/password/"):]


def _ask(servers: Servers, address: str) -> httpx.Response:
    with anonymous_browser(servers) as client:
        return client.form("/password/forgot", {"email": address})


def _set(client: Browser, link: str, password: str = NEW_PASSWORD, again: str | None = None) -> httpx.Response:
    token = link.split("token=", 1)[1]
    return client.form("/password/reset", {"token": token, "password": password,
                                           "password_again": password if again is None else again})


def _sign_in(servers: Servers, address: str, password: str) -> int:
    with anonymous_browser(servers) as client:
        return client.form("/login", {"email": address, "password": password}).status_code


def test_the_sign_in_page_links_to_forgot_password(browser: Browser) -> None:
    """The sign-in form offers "Forgot password?"."""
    assert 'href="/password/forgot"' in browser.get("/login").text


def test_the_emailed_link_sets_the_password_and_ends_every_session(
        servers: Servers, world: World, deliver: Callable[..., list[EmailMessage]]) -> None:
    """The link from the email sets a new password, signs out every session of the user and leads to sign-in."""
    user_id = world.user("ann@example.com")
    other = signed_in(servers, world, user_id)
    assert 200 == other.get("/account").status_code
    assert 200 == _ask(servers, "Ann@Example.com").status_code
    messages = deliver()
    assert ["ann@example.com"] == [message["To"] for message in messages]
    link = _link(messages[0])
    with anonymous_browser(servers) as client:
        assert "ann@example.com" in client.get(_path(link)).text
        answer = _set(client, link)
        assert 303 == answer.status_code
        assert "/login" == answer.headers["location"]
        assert "Sign in with the new one" in client.get("/login").text
    assert 302 == other.get("/account", follow_redirects=False).status_code
    other.close()
    assert 303 == _sign_in(servers, "ann@example.com", NEW_PASSWORD)
    assert 400 == _sign_in(servers, "ann@example.com", PASSWORD)


def test_a_used_link_is_refused(servers: Servers, world: World, deliver: Callable[..., list[EmailMessage]]) -> None:
    """Once used, the link neither shows the form nor sets a password again."""
    world.user("bob@example.com")
    _ask(servers, "bob@example.com")
    link = _link(deliver()[0])
    with anonymous_browser(servers) as client:
        assert 303 == _set(client, link).status_code
        assert 400 == client.get(_path(link)).status_code
        again = _set(client, link, "yet another passphrase")
        assert 400 == again.status_code
        assert "invalid, expired or already used" in again.text
    assert 303 == _sign_in(servers, "bob@example.com", NEW_PASSWORD)


def test_an_expired_link_is_refused(servers: Servers, world: World) -> None:
    """A genuine link past its lifetime is refused with the same message."""
    user = User(id=world.user("cat@example.com"), email="cat@example.com", password_hash=HASH)
    token = reset_token(servers.settings.security.secret_key, user, -1)
    with anonymous_browser(servers) as client:
        page = client.get("/password/reset", params={"token": token})
        assert 400 == page.status_code
        assert "invalid, expired or already used" in page.text
        assert 400 == client.form("/password/reset", {"token": token, "password": NEW_PASSWORD,
                                                      "password_again": NEW_PASSWORD}).status_code
    assert 303 == _sign_in(servers, "cat@example.com", PASSWORD)


@pytest.mark.parametrize("token", [
    pytest.param("", id="empty"),
    pytest.param("not-a-token", id="garbage"),
    pytest.param("x" * 5000, id="huge"),
])
def test_a_forged_link_is_refused(browser: Browser, world: World, token: str) -> None:
    """Whatever the token, a bad one is a 400 page, never a 500."""
    assert 400 == browser.get("/password/reset", params={"token": token}).status_code


def test_the_new_password_follows_the_sign_up_rules(servers: Servers, world: World,
                                                    deliver: Callable[..., list[EmailMessage]]) -> None:
    """A short or mistyped new password is refused with the field named, and the link still works after."""
    world.user("dan@example.com")
    _ask(servers, "dan@example.com")
    link = _link(deliver()[0])
    with anonymous_browser(servers) as client:
        short = _set(client, link, "short")
        assert (400, True) == (short.status_code, "password: at least 10 characters" in short.text)
        differ = _set(client, link, NEW_PASSWORD, "something else entirely")
        assert (400, True) == (differ.status_code, "password_again: the two passwords differ" in differ.text)
        assert 303 == _set(client, link).status_code


def test_an_unknown_address_gets_the_same_answer_and_no_email(
        servers: Servers, world: World, deliver: Callable[..., list[EmailMessage]]) -> None:
    """Asking for an address no account has answers exactly as for one that exists, and mails nothing."""
    world.user("eve@example.com")
    known, unknown = _ask(servers, "eve@example.com"), _ask(servers, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200

    def sent(answer: httpx.Response) -> str:
        found = re.search(r'<p id="reset-sent">(.*?)</p>', answer.text, re.S)
        assert found is not None, answer.text
        return found.group(1)

    assert sent(known).replace("eve@", "X@") == sent(unknown).replace("nobody@", "X@")
    assert ["eve@example.com"] == [message["To"] for message in deliver()]


@pytest.mark.parametrize(("value", "message"), [
    pytest.param("  ", "email: enter the e-mail address of your account", id="empty"),
    pytest.param("not-an-email", "email: not a valid e-mail address", id="malformed"),
    pytest.param("a@" + "b" * 300 + ".example", "email: not a valid e-mail address", id="too-long"),
])
def test_a_bad_address_names_the_field(browser: Browser, world: World, value: str, message: str) -> None:
    """An empty, malformed or overlong address is a 400 that names the field."""
    answer = browser.form("/password/forgot", {"email": value})
    assert 400 == answer.status_code
    assert message in answer.text


def test_requests_per_email_address_are_limited(servers: Servers, world: World,
                                                deliver: Callable[..., list[EmailMessage]]) -> None:
    """From any addresses, one e-mail address gets 3 links an hour; the 4th request is a 429 with Retry-After."""
    world.user("fay@example.com")
    codes = [_ask(servers, "fay@example.com") for _ in range(4)]
    assert [200, 200, 200, 429] == [answer.status_code for answer in codes]
    assert 0 < int(codes[-1].headers["retry-after"]) <= 3600
    assert 3 == len(deliver(3))


def test_requests_per_client_address_are_limited(servers: Servers, world: World) -> None:
    """One client address gets 10 requests an hour, whichever e-mail addresses it asks for."""
    with anonymous_browser(servers) as client:
        codes = [client.form("/password/forgot", {"email": f"n{n}@example.com"}).status_code for n in range(11)]
    assert [200] * 10 + [429] == codes


def test_the_integrations_service_refuses_a_bad_mail_request(serve: Callable[[str], int], servers: Servers,
                                                             world: World) -> None:
    """The outbox endpoint validates its body (400), so nothing half-formed reaches the outbox."""
    port = serve("integrations")
    headers = {INTERNAL_TOKEN_HEADER: servers.settings.security.internal_token}
    answer = httpx.post(f"http://127.0.0.1:{port}/mail/password-reset", headers=headers,
                        json={"recipient": "a@example.com", "link": "", "valid_minutes": 0}, timeout=10)
    assert 400 == answer.status_code
    assert [] == world.sql("SELECT id FROM emails")
