"""A receiver that trickles its answer cannot hold a delivery attempt open past its budget."""

from __future__ import annotations

import dataclasses
import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from app.core.settings import IntegrationsSettings
from services.integrations import delivery
from services.integrations.egress import Destination


@pytest.fixture
def trickling_receiver() -> Iterator[int]:
    """An http server on 127.0.0.1 answering 200 with a 200-byte body sent one byte every 0.1 s (20 s in all),
    each byte well within the read timeout."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("Content-Length", "200")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                return  # the client went away

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_trickled_answer_ends_the_attempt_as_a_timeout(trickling_receiver: int) -> None:
    """Every byte comes within read_timeout, but the answer as a whole gets connect + read timeout: a failure."""
    port = trickling_receiver
    settings = dataclasses.replace(IntegrationsSettings(), connect_timeout=0.5, read_timeout=1.0, allow_private=True)
    destination = Destination(url=f"http://127.0.0.1:{port}/in", host="127.0.0.1", port=port, address="127.0.0.1")
    result = delivery.post(destination, b"{}", {"Content-Type": "application/json"}, settings)
    assert (None, "timeout (the answer came too slowly)") == (result.status_code, result.error)
