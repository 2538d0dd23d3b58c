"""A fresh clone in a directory only its owner can enter runs ``make run`` as it is, twice, keeping its data.

The clone is this checkout's HEAD in a new ``mkdtemp()`` directory (mode 0700, as ``/root`` or a Debian home
is). So that ``make run`` has nothing to install it gets a virtualenv of its own whose site-packages point to
this one's (its own code first), and a copy of ``node_modules``; ``make run`` then builds the assets and starts
the whole stack exactly as a developer's would, on free ports (``RUN_ARGS=--free-ports``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from app.core.settings import CODE_DIR, read_env_file
from app.devstack import SHARED_DIR
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
DEMO_SITE = "demo.beacon.localhost"
"""The site ``make run`` adds (app/devstack.py)."""


def clone(parent: Path) -> Path:
    """This checkout's HEAD cloned into ``parent``, with a virtualenv and node_modules borrowed from here."""
    checkout = parent / "beacon"
    subprocess.run(["git", "clone", "--quiet", str(CODE_DIR), str(checkout)], check=True, timeout=120)
    venv = checkout / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    # Plain paths, so this checkout's own editable install (a .pth in our site-packages) is not read.
    (site / "borrowed.pth").write_text(f"{checkout}\n{sysconfig.get_paths()['purelib']}\n")
    ours = Path(sys.prefix) / "bin"
    shebang = f"#!{ours}/python"
    for script in ours.iterdir():
        target = venv / "bin" / script.name
        if script.is_file() and not target.exists():
            with contextlib.suppress(UnicodeDecodeError):
                first, _, rest = script.read_text().partition("\n")
                if first.startswith(shebang):  # a console script: run it with the clone's Python
                    target.write_text(f"#!{venv}/bin/python{first.removeprefix(shebang)}\n{rest}")
                    target.chmod(0o755)
    frontend = Path("app") / "frontend" / "node_modules"
    shutil.copytree(CODE_DIR / frontend, checkout / frontend, symlinks=True)
    # Newer than what make compares them with: pip and npm have nothing to do.
    for marker in (venv / ".installed", checkout / frontend / ".package-lock.json"):
        marker.touch()
    return checkout


@dataclass
class Run:
    """One ``make run`` in the background, its output in a file."""

    checkout: Path
    process: subprocess.Popen[bytes]
    output: Path

    @property
    def var(self) -> Path:
        return self.checkout / "var"

    def log(self) -> str:
        return self.output.read_text(errors="replace")[-4000:]

    def environment(self, timeout: float = 180) -> dict[str, str]:
        """var/beacon.env once this run has written it (its ports and database)."""
        def started() -> bool:
            assert self.process.poll() is None, f"make run exited with {self.process.returncode}:\n{self.log()}"
            return "Beacon is starting" in self.log()

        wait_until(started, timeout, "make run to start", interval=0.5)
        return read_env_file(self.var / "beacon.env")

    def stop(self, timeout: float = 120) -> None:
        """Ctrl-C, as in a terminal: to make and everything in its process group."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@contextlib.contextmanager
def make_run(checkout: Path, number: int) -> Iterator[Run]:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("BEACON_", "VIRTUAL_ENV", "MAKE", "MFLAGS", "PYTEST"))}
    # Heartbeats every second, so /api/health sees the workers and the scheduler at once.
    environment["BEACON_HEARTBEAT_INTERVAL"] = "1"
    output = checkout.parent / f"make-run-{number}.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(["make", "-C", str(checkout), "run", "RUN_ARGS=--free-ports"],
                                   env=environment, stdin=subprocess.DEVNULL, stdout=sink,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    run = Run(checkout, process, output)
    try:
        yield run
    finally:
        run.stop()


def leftovers(var: Path) -> list[psutil.Process]:
    """Processes still running for the stack under ``var``: by their environment or their command line."""
    targets = {str(var), str(var.resolve())}
    postgres = var / "postgres"
    if postgres.is_symlink():
        targets.add(str(postgres.resolve()))
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if (proc.environ().get("BEACON_STATE_DIR") in targets
                    or any(target in " ".join(proc.cmdline()) for target in targets)):
                found.append(proc)
    return found


def remove_stack(var: Path) -> None:
    """After a failure: stop whatever this test's stack left running, and delete its PostgreSQL cluster."""
    for proc in leftovers(var):
        with contextlib.suppress(psutil.Error):
            proc.kill()
    postgres = var / "postgres"
    if postgres.is_symlink() and postgres.resolve().parent == SHARED_DIR:
        shutil.rmtree(postgres.resolve(), ignore_errors=True)


def client(run: Run, environment: dict[str, str]) -> httpx.Client:
    cert = run.var / "nginx" / "tls" / "cert.pem"
    return httpx.Client(base_url=environment["BEACON_BASE_URL"], timeout=15,
                        verify=ssl.create_default_context(cafile=str(cert)))


def process_logs(run: Run, tail: int = 1500) -> str:
    """The end of every log the stack under ``run.var`` wrote, for a failure message."""
    parts = []
    for log in sorted((run.var / "log").glob("*.log")):
        text = log.read_text(errors="replace").strip()
        if text:
            parts.append(f"--- {log.name}\n{text[-tail:]}")
    return "\n".join(parts)


def wait_healthy(run: Run, environment: dict[str, str], timeout: float = 120) -> httpx.Response:
    """The first 200 from /api/health; on timeout the last answer, make run's output and the logs say why."""
    last: list[str] = ["no answer"]

    def running_and_healthy(http: httpx.Client) -> httpx.Response | None:
        assert run.process.poll() is None, f"make run exited:\n{run.log()}"
        try:
            answer = http.get("/api/health")
        except httpx.HTTPError as exc:
            last[0] = f"{type(exc).__name__}: {exc}"
            return None
        last[0] = f"{answer.status_code} {answer.text[:1000]}"
        return answer if answer.status_code == 200 else None

    with client(run, environment) as http:
        try:
            return wait_until(lambda: running_and_healthy(http), timeout, "/api/health to answer 200",
                              interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last answer: {last[0]}\n--- make run\n{run.log()}\n"
                                 f"{process_logs(run)}") from None


def stored(environment: dict[str, str], pathname: str) -> int:
    url = environment["BEACON_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE pathname = %s", (pathname,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def private_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="beacon-clone-"))
    try:
        yield path
    finally:
        remove_stack(path / "beacon" / "var")
        shutil.rmtree(path, ignore_errors=True)


def test_make_run_from_a_fresh_clone_in_a_private_directory(private_dir: Path) -> None:
    """From a clone under a 0700 directory, make run serves health, assets, the tracker and events through
    Nginx; stopped and run again it keeps the data; stopping leaves no process behind."""
    assert 0o700 == stat.S_IMODE(private_dir.stat().st_mode)
    checkout = clone(private_dir)

    with make_run(checkout, 1) as run:
        environment = run.environment()
        health = wait_healthy(run, environment)
        manifest = json.loads((checkout / "app" / "static" / "dist" / "manifest.json").read_text())
        with client(run, environment) as http:
            asset = http.get(f"/static/dist/{manifest['dashboard.js']}", headers={"Accept-Encoding": "gzip"})
            tracker = http.get("/js/script.js")
            event = http.post("/api/event", headers={"User-Agent": UA, "Content-Type": "text/plain"},
                              content=json.dumps({"name": "pageview", "url": f"https://{DEMO_SITE}/fresh-clone",
                                                  "domain": DEMO_SITE}))
        assert 200 == health.status_code
        assert (200, "public, max-age=31536000, immutable") == (asset.status_code, asset.headers.get("cache-control"))
        assert 200 == tracker.status_code
        assert "javascript" in tracker.headers["content-type"]
        assert 202 == event.status_code, event.text
        assert 1 == stored(environment, "/fresh-clone")
    assert "Stopped." in run.log()
    assert [] == [(p.pid, p.name()) for p in leftovers(run.var)]

    with make_run(checkout, 2) as again:
        environment = again.environment()
        wait_healthy(again, environment)
        assert "(new database)" not in again.log()
        assert 1 == stored(environment, "/fresh-clone")
    assert [] == [(p.pid, p.name()) for p in leftovers(again.var)]


def test_make_run_names_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    """A port already taken stops make run before anything starts, with one line naming it and no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "app.devstack", "run", "--var", str(tmp_path / "var"), "--free-ports",
             "--https-port", str(port)], cwd=CODE_DIR, capture_output=True, text=True, timeout=60, check=False)
    assert 1 == result.returncode
    assert [f"make run: port {port} (Nginx HTTPS) is already in use: stop what listens there (ss -ltnp) or "
            "choose other ports (make run RUN_ARGS=--free-ports)"] == result.stderr.splitlines()
    assert not (tmp_path / "var").exists()
