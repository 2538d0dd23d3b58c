"""services/ingest/spamlist.py (the referrer-spam list refresher) against a real loopback HTTP server."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.ingest import spamlist


@pytest.fixture
def served() -> Iterator[dict[str, bytes]]:
    """Bodies by path, served on 127.0.0.1; the mapping's ``base`` entry holds the server's URL."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    files["base"] = f"http://127.0.0.1:{server.server_address[1]}".encode()
    yield files
    server.shutdown()
    server.server_close()


def test_refresh_writes_sorted_hosts_and_date(served: dict[str, bytes], tmp_path: Path) -> None:
    """A good download replaces the list (lower-cased, sorted, unique) and the README's date line."""
    hosts = [f"spam{i}.example" for i in range(150, 0, -1)]
    served["/spammers.txt"] = ("\n".join([*hosts, "", "SPAM1.example"]) + "\n").encode()
    (tmp_path / "README.md").write_text("x\nRetrieved: long ago\n")
    output = tmp_path / "referrer-spam.txt"
    url = served["base"].decode() + "/spammers.txt"
    assert 0 == spamlist.main(["--url", url, "--output", str(output)])
    assert sorted(hosts) == output.read_text().splitlines()
    assert f"from {url}" in (tmp_path / "README.md").read_text()


@pytest.mark.parametrize(("body", "message"), [
    pytest.param(b"<html>not a list</html>\n", "spammers.txt:1: not a host name", id="html"),
    pytest.param(b"a.example\nb.example\n", "only 2 hosts", id="too-short"),
    pytest.param(None, "404", id="missing"),
])
def test_refresh_refuses_a_bad_download(served: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        body: bytes | None, message: str) -> None:
    """A broken download leaves the list as it was and names what was wrong."""
    if body is not None:
        served["/spammers.txt"] = body
    output = tmp_path / "referrer-spam.txt"
    output.write_text("kept.example\n")
    url = served["base"].decode() + "/spammers.txt"
    assert 1 == spamlist.main(["--url", url, "--output", str(output)])
    assert "kept.example\n" == output.read_text()
    assert message in capsys.readouterr().err
