"""A delivery over https goes to the checked address yet verifies the certificate against the URL's host."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.settings import IntegrationsSettings
from services.integrations import delivery
from services.integrations.egress import Destination


@pytest.fixture(scope="module")
def tls_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, list[str]]]:
    """An https server on 127.0.0.1 with a self-signed certificate for ``localhost``; records Host headers."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    hosts: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            hosts.append(self.headers.get("host", ""))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], cert, hosts
    server.shutdown()
    server.server_close()


@pytest.fixture
def trust(tls_receiver: tuple[int, Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust the receiver's certificate as if a public CA had signed it."""
    context = ssl.create_default_context(cafile=str(tls_receiver[1]))
    monkeypatch.setattr(delivery, "tls_context", lambda: context)


def test_pinned_address_with_the_hosts_certificate(tls_receiver: tuple[int, Path, list[str]], trust: None) -> None:
    port, _, hosts = tls_receiver
    destination = Destination(url=f"https://localhost:{port}/in", host="localhost", port=port, address="127.0.0.1")
    result = delivery.post(destination, b"{}", {"Content-Type": "application/json"}, IntegrationsSettings())
    assert (200, "ok", f"localhost:{port}") == (result.status_code, result.body, hosts[-1])


def test_a_certificate_for_another_host_is_refused(tls_receiver: tuple[int, Path, list[str]], trust: None) -> None:
    """The same address under another name: the certificate does not match, nothing is sent."""
    port, _, hosts = tls_receiver
    before = len(hosts)
    destination = Destination(url=f"https://hooks.example.net:{port}/in", host="hooks.example.net", port=port,
                              address="127.0.0.1")
    result = delivery.post(destination, b"{}", {"Content-Type": "application/json"}, IntegrationsSettings())
    assert (None, True, before) == (result.status_code, "ConnectError" in (result.error or ""), len(hosts))
