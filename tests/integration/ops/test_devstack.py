"""The development stack's pieces (app/devstack.py): where the cluster lives, and errors said in one line."""

from __future__ import annotations

import os
import secrets
import socket
import stat
from pathlib import Path

import pytest

from app.devstack import SHARED_DIR, Nginx, Postgres, StackError, _run, check_port_free, free_port, program


def test_cluster_under_a_private_directory_is_reachable_by_its_server(tmp_path: Path) -> None:
    """Under root, PostgreSQL (run as postgres) gets its cluster under SHARED_DIR, linked from the private
    directory, whose mode stays 0700; as an ordinary user the cluster stays in place. remove() deletes it."""
    private = tmp_path / "checkout"
    private.mkdir(mode=0o700)
    server = Postgres(private / "var" / "postgres", free_port(), secrets.token_urlsafe(16))
    try:
        server.init()
        server.start()
        assert "1" == server.psql("SELECT 1").strip()
        if os.geteuid() == 0:
            assert (True, SHARED_DIR, "postgres") == (
                server.directory.is_symlink(), server.home.parent, server.home.owner())
            assert str(server.directory.absolute()) == (server.home / "checkout").read_text().strip()
        else:
            assert (False, server.directory) == (server.directory.is_symlink(), server.home)
        assert (server.directory / "postgres.log").exists()  # the log, seen from the checkout
    finally:
        server.stop()
        server.remove()
    assert 0o700 == stat.S_IMODE(private.stat().st_mode)
    assert (False, False) == (server.home.exists(), server.directory.is_symlink())


def test_a_failing_command_is_reported_by_the_line_that_says_why() -> None:
    """nginx -t ends with "test failed" after its [emerg] line: the [emerg] line is the one reported."""
    with pytest.raises(StackError) as failed:
        _run(["sh", "-c", "echo 'nginx: [emerg] open() \"/x\" failed' >&2; echo 'nginx: test failed' >&2; exit 1"],
             what="nginx -t")
    assert 'nginx -t failed: nginx: [emerg] open() "/x" failed' == str(failed.value)


def test_a_missing_program_names_the_package_to_install() -> None:
    with pytest.raises(StackError) as missing:
        program("beacon-no-such-program", "beacon-package")
    assert "beacon-no-such-program is missing: apt-get install beacon-package" in str(missing.value)


def test_nginx_is_found_outside_an_ordinary_users_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian installs nginx in /usr/sbin, which an ordinary user's PATH lacks."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert "/usr/sbin/nginx" == program("nginx", "nginx")


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StackError) as in_use:
            check_port_free(port, "Redis")
    assert str(in_use.value).startswith(f"port {port} (Redis) is already in use")


def test_a_port_left_in_time_wait_is_free() -> None:
    """A server's port whose closed connections are in TIME_WAIT (a stack just stopped) is not "in use"."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
            client.recv(1)
    check_port_free(port, "PostgreSQL")


def _listening_addresses(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                address, port_hex = local.split(":")
                if state != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                    continue
                raw = bytes.fromhex(address)
                # The kernel prints each 32-bit word in host (little-endian) order.
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(socket.inet_ntop(family, raw))
    return found


def test_development_nginx_listens_on_loopback_only(tmp_path: Path) -> None:
    """A development or test stack (admin password printed, webhooks to private addresses allowed) is not
    reachable from the network: its Nginx binds 127.0.0.1 and ::1, never every interface."""
    nginx = Nginx(tmp_path / "nginx", free_port(), free_port(), {
        "api": [f"127.0.0.1:{free_port()}"], "realtime": [f"127.0.0.1:{free_port()}"],
        "ingest": [f"127.0.0.1:{free_port()}"]})
    nginx.start()
    try:
        for port in (nginx.http_port, nginx.https_port):
            assert _listening_addresses(port) == {"127.0.0.1", "::1"}
    finally:
        nginx.stop()


def test_free_port_never_gives_one_process_the_same_port_twice() -> None:
    """The kernel may give the same free port to two asks in a row; a stack drawing a dozen ports would then
    start two servers on one port (seen in CI: make run --free-ports never became healthy). Drawn many
    times, every port differs and is bindable."""
    drawn = [free_port() for _ in range(3000)]
    assert len(drawn) == len(set(drawn))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", drawn[-1]))
