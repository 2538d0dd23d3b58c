"""Mail leaves through BEACON_SMTP_URL with credentials over STARTTLS (smtp://) or TLS from the start
(smtps://), against a real SMTP server on loopback (aiosmtpd) that requires both."""

from __future__ import annotations

import asyncio
import email
import email.policy
import gc
import ssl
import subprocess
import warnings
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from app.devstack import free_port
from services.integrations import mail

USER, PASSWORD = "beacon", "s3cret/with:odd@chars"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data if session.authenticated else None
        self.messages.append((login.decode() if isinstance(login, bytes) else str(login), envelope.content))
        return "250 OK"


@pytest.fixture(autouse=True)
def collect_closed_connections() -> Iterator[None]:
    """Collect this module's SMTP connections before the next test runs.

    After a refused login aiosmtplib drops its connection without closing the TLS transport that STARTTLS put
    underneath; the garbage collector finds it whenever it next runs, and would report it in an unrelated
    later test.
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("smtp-tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def trusted(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """The server's context; the client trusts its certificate as if a public CA had signed it."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def serve(inbox: Inbox, **kwargs: Any) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=authenticate,
                            auth_required=True, **kwargs)
    controller.start()
    return controller


def message() -> EmailMessage:
    made = EmailMessage()
    made["From"], made["To"], made["Subject"] = "beacon@localhost", "ops@example.com", "Weekly report"
    made.set_content("Visitors: 3\n")
    return made


@pytest.fixture
def starttls_server(trusted: ssl.SSLContext) -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    controller = serve(inbox, tls_context=trusted, require_starttls=True, auth_require_tls=True)
    yield controller, inbox
    controller.stop()


@pytest.fixture
def tls_server(trusted: ssl.SSLContext) -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    # aiosmtpd's auth_require_tls looks at STARTTLS only; the whole connection is TLS here.
    controller = serve(inbox, ssl_context=trusted, auth_require_tls=False)
    yield controller, inbox
    controller.stop()


def url(scheme: str, port: int, password: str = PASSWORD) -> str:
    return f"{scheme}://{USER}:{quote(password, safe='')}@localhost:{port}"


def test_smtp_url_upgrades_with_starttls_and_logs_in(starttls_server: tuple[Controller, Inbox]) -> None:
    """smtp://user:password@host: STARTTLS (the server refuses mail and AUTH without it), then AUTH
    (required), then the message."""
    controller, inbox = starttls_server
    asyncio.run(mail._send(message(), url("smtp", controller.port)))
    assert [USER] == [login for login, _ in inbox.messages]
    received = email.message_from_bytes(inbox.messages[0][1], policy=email.policy.default)
    assert "Weekly report" == received["Subject"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")  # TLS from the start
def test_smtps_url_speaks_tls_from_the_start(tls_server: tuple[Controller, Inbox]) -> None:
    """smtps://user:password@host:port: TLS from the first byte, then AUTH."""
    controller, inbox = tls_server
    asyncio.run(mail._send(message(), url("smtps", controller.port)))
    assert [USER] == [login for login, _ in inbox.messages]


def test_a_wrong_password_is_an_smtp_error(starttls_server: tuple[Controller, Inbox]) -> None:
    """Refused credentials raise what send_due catches (the email is tried again later), and nothing is sent."""
    controller, inbox = starttls_server
    with pytest.raises(aiosmtplib.SMTPAuthenticationError):
        asyncio.run(mail._send(message(), url("smtp", controller.port, "wrong")))
    assert [] == inbox.messages
