"""A self-contained Beacon stack on one machine: PostgreSQL, Redis, Nginx and circusd under one directory.

``make run`` uses it to run Beacon for development under ``./var``; the tests use the same pieces to start
their own servers on free ports in temporary directories. Nothing here is used in production, where the
distribution's services and systemd run things (see ``ansible/``).

Who runs what: every server runs as the invoking user, with one exception. PostgreSQL refuses to run as
root, so under root it runs as the ``postgres`` system user; when that user cannot reach the cluster's
directory (a checkout under ``/root``, a 0700 home or a ``mktemp -d`` directory), the cluster lives in
``/var/lib/beacon-dev/postgres-<hash of the directory>/`` and the directory is a symlink to it, so
``./var/postgres`` still shows the data and the log. Nothing loosens the permissions of the user's directories.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from app.core.polling import poll
from app.core.settings import CODE_DIR, DEFAULT_PORTS, METRICS_PORTS, read_env_file

SHARED_DIR = Path("/var/lib/beacon-dev")
"""Where a server running as another user (PostgreSQL under root) keeps what it cannot reach in a checkout."""
MIN_POSTGRES = 15
"""The oldest PostgreSQL Beacon supports (DESIGN.md: PostgreSQL 15+)."""
SYSTEM_PATH = ("/usr/local/sbin", "/usr/sbin", "/sbin")
"""Debian puts nginx and runuser here, outside an ordinary user's PATH."""

if TYPE_CHECKING:
    from app.mailsink import MailSink


class StackError(RuntimeError):
    """A piece of the stack could not be set up; the message says which and why."""


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 now, and never one this process was given before.

    The kernel hands out a port that is free *now*: asked twice before either is bound, it may give the same
    port both times (a stack drawing a dozen ports hits that now and then, and two of its servers then fight
    for one port). So every port given is remembered and never given again by this process.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def check_port_free(port: int, what: str) -> None:
    """Raise StackError naming ``what`` when something already listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        # As the servers bind (PostgreSQL, Redis, Nginx and Granian all set SO_REUSEADDR): without it, the
        # TIME_WAIT connections a stack stopped a moment ago leaves on its ports would read as "in use" for a
        # minute, and `make run` right after Ctrl-C would refuse to start.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise StackError(f"port {port} ({what}) is already in use: stop what listens there "
                             "(ss -ltnp) or choose other ports (make run RUN_ARGS=--free-ports)") from None


def program(name: str, package: str) -> str:
    """The path of the command ``name``, looked up in PATH and then in the system directories."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SYSTEM_PATH))
    if found is None:
        raise StackError(f"{name} is missing: apt-get install {package} (make run and make test install it)")
    return found


def listens(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP connection to ``host:port`` is accepted (within half a second)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    """Return once something listens on ``host:port``; ``StackError`` after ``timeout`` seconds."""
    if not poll(lambda: listens(port, host), timeout):
        raise StackError(f"nothing listens on {host}:{port} after {timeout:g} s")


def _run(args: list[str], *, user: str | None = None, env: Mapping[str, str] | None = None,
         what: str, stdin: str | None = None) -> str:
    if user is not None:
        args = [program("runuser", "util-linux"), "-u", user, "--", *args]
    try:
        result = subprocess.run(args, capture_output=True, text=True, env=dict(env) if env else None,
                                input=stdin, check=False)
    except OSError as exc:
        raise StackError(f"{what} failed: {exc}") from None
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        # The line that says why: nginx -t, for one, ends with a "test failed" after its [emerg] line.
        reasons = [line for line in output if re.search(r"\[emerg\]|error|fatal", line, re.IGNORECASE)]
        raise StackError(f"{what} failed: {(reasons or output or [f'exit {result.returncode}'])[-1]}")
    return result.stdout


def _service_user(name: str) -> str | None:
    """Servers refuse to run as root; when we are root they run as their Debian system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise StackError(f"running as root needs the {name!r} system user (apt-get install postgresql)") from None
    return name


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        for item in [path, *path.rglob("*")]:
            os.chown(item, entry.pw_uid, entry.pw_gid)


def _exited(pid: int) -> bool:
    """Whether process ``pid`` is gone (or, when it is our child, has exited and is now reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    return False


def _stop_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Send ``sig`` to ``pid`` and wait up to ``timeout`` seconds for it to exit; SIGKILL it if it has not."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if not poll(lambda: _exited(pid), timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop_processes(processes: list[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    """SIGTERM every process of ``processes`` at once, then wait for each; SIGKILL what outlives ``timeout``."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@functools.cache
def postgres_bindir() -> Path:
    """The newest installed PostgreSQL's bin directory; StackError when none, or one older than MIN_POSTGRES."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        bindir = Path(found[-1]).parent
    elif initdb := shutil.which("initdb"):
        bindir = Path(initdb).resolve().parent
    else:
        raise StackError("PostgreSQL server binaries not found (apt-get install postgresql)")
    version = _run([str(bindir / "initdb"), "--version"], what="initdb --version")
    major = re.search(r"\(PostgreSQL\) (\d+)", version)
    if major is None or int(major.group(1)) < MIN_POSTGRES:
        raise StackError(f"{bindir / 'initdb'} is {version.strip()!r}; Beacon needs PostgreSQL {MIN_POSTGRES} "
                         "or later (Debian 12 and Ubuntu 24.04 ship it: apt-get install postgresql)")
    return bindir


def can_enter(user: str, path: Path) -> bool:
    """Whether ``user`` can reach ``path`` (or, if missing, its nearest existing parent), ACLs included."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    result = subprocess.run([program("runuser", "util-linux"), "-u", user, "--", "test", "-x", str(existing)],
                            capture_output=True, check=False)
    return result.returncode == 0


def shared_directory(path: Path, user: str, kind: str) -> Path:
    """A directory for a server running as ``user`` that cannot reach ``path``: outside, and linked from it.

    ``SHARED_DIR/<kind>-<first 16 hex of SHA-256 of path>`` owned by ``user`` (mode 0700); ``path`` becomes a
    symlink to it. A ``checkout`` file inside names ``path``, to tell whose it is.
    """
    digest = hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:16]
    target = SHARED_DIR / f"{kind}-{digest}"
    if target.exists() and any(target.iterdir()):
        raise StackError(f"{target} holds the {kind} data of an earlier {path}: remove it (rm -rf {target}) "
                         f"or link it back (ln -s {target} {path})")
    SHARED_DIR.mkdir(parents=True, exist_ok=True)
    SHARED_DIR.chmod(0o755)
    target.mkdir(mode=0o700, exist_ok=True)
    (target / "checkout").write_text(f"{path.absolute()}\n")
    _chown(target, user)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target, target_is_directory=True)
    return target


@dataclass
class Postgres:
    """A PostgreSQL cluster in ``directory`` listening on 127.0.0.1:``port``, password auth only.

    Under root the cluster runs as ``postgres``; if that user cannot reach ``directory``, the cluster lives in
    a :func:`shared_directory` that ``directory`` links to (see the module's docstring).
    """

    directory: Path
    port: int
    superuser_password: str
    user: str | None = field(default_factory=lambda: _service_user("postgres"))

    @property
    def home(self) -> Path:
        """Where the cluster's files really are: ``directory``, or the target of its symlink."""
        return self.directory.resolve() if self.directory.is_symlink() else self.directory

    @property
    def datadir(self) -> Path:
        return self.home / "data"

    def url(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def _prepare(self) -> None:
        """Make ``home`` a directory the server's user owns and can reach, linking it out if need be."""
        if self.directory.is_symlink() or self.user is None or can_enter(self.user, self.directory):
            self.home.mkdir(parents=True, exist_ok=True)
            return
        if self.directory.exists():
            # What an initdb that could not reach this directory left behind: empty folders, no data.
            if any(not item.is_dir() for item in self.directory.rglob("*")):
                raise StackError(f"{self.directory} holds files but no cluster, and PostgreSQL (running as "
                                 f"{self.user}) cannot reach it: move it away and run again")
            shutil.rmtree(self.directory)
        shared_directory(self.directory, self.user, "postgres")

    def init(self) -> bool:
        """Create the cluster unless it exists; True when it was created now."""
        if (self.datadir / "PG_VERSION").exists():
            return False
        self._prepare()
        home = self.home
        pwfile = home / ".pwfile"
        pwfile.write_text(self.superuser_password)
        pwfile.chmod(0o600)
        _chown(home, self.user)
        try:
            _run([str(postgres_bindir() / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                  "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"],
                 user=self.user, what="initdb")
        finally:
            pwfile.unlink()
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# Beacon development/test cluster\nlisten_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n# TCP only: a socket path in a deep checkout exceeds the 107 bytes allowed.\n"
                "unix_socket_directories = ''\n"
                "shared_buffers = 256MB\nfsync = on\nmax_connections = 200\n"
            )
        return True

    def start(self, settings: dict[str, str] | None = None) -> None:
        """Start the cluster; ``settings``: server settings for this run (``{"shared_buffers": "6GB"}``)."""
        log = self.home / "postgres.log"
        extra = "".join(f" -c {name}={value}" for name, value in (settings or {}).items())
        try:
            # -k '': no Unix socket (clusters made before it was turned off in postgresql.conf too).
            _run([str(postgres_bindir() / "pg_ctl"), "-D", str(self.datadir), "-l", str(log),
                  "-o", f"-p {self.port} -k ''{extra}", "-w", "-t", "60", "start"],
                 user=self.user, what="starting PostgreSQL")
        except StackError as exc:
            fatal = [line for line in log.read_text(errors="replace").splitlines() if "FATAL" in line] \
                if log.exists() else []
            raise StackError(f"{exc} ({fatal[-1] if fatal else f'see {log}'})") from None

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            _run([str(postgres_bindir() / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"],
                 user=self.user, what="stopping PostgreSQL")

    def remove(self) -> None:
        """Delete the (stopped) cluster: the directory and, when it is a link, what it links to."""
        home = self.home
        if self.directory.is_symlink():
            self.directory.unlink()
        shutil.rmtree(home, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres") -> str:
        env = {**os.environ, "PGPASSWORD": self.superuser_password}
        return _run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                     str(self.port), "-U", "postgres", "-d", database, "-c", sql], env=env, what="psql")

    def ensure_database(self, name: str, owner: str, password: str) -> None:
        """Create a login role and a database it owns, unless they exist, with the pg_prewarm extension."""
        identifier = re.compile(r"[a-z_][a-z0-9_]*")
        if not (identifier.fullmatch(name) and identifier.fullmatch(owner) and re.fullmatch(r"[\w-]+", password)):
            raise StackError("refusing an unsafe database name, role name or password")
        # Names and password are checked above, so building the statements from them is safe.
        if not self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{owner}'").strip():  # noqa: S608
            self.psql(f"CREATE ROLE {owner} LOGIN PASSWORD '{password}'")
        if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip():  # noqa: S608
            self.psql(f"CREATE DATABASE {name} OWNER {owner}")
        # What the beacon_postgresql role installs too: rollups.warm reads indexes back after a roll-up.
        self.psql("CREATE EXTENSION IF NOT EXISTS pg_prewarm", database=name)


@dataclass
class Redis:
    """A password-protected Redis in ``directory`` on 127.0.0.1:``port``."""

    directory: Path
    port: int
    password: str
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "redis.conf"
        conf.write_text(
            f"bind 127.0.0.1\nport {self.port}\nrequirepass {self.password}\ndir {self.directory}\n"
            "daemonize no\nappendonly yes\nsave 60 1000\nmaxmemory 512mb\nmaxmemory-policy noeviction\n"
            f"logfile {self.directory / 'redis.log'}\n"
        )
        conf.chmod(0o600)
        # Own session: a Ctrl-C in the terminal reaches only `make run`, which stops everything in order.
        self.process = subprocess.Popen([program("redis-server", "redis-server"), str(conf)],
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(self.port, 20)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            _stop_pid(self.process.pid, signal.SIGTERM)
            self.process.wait()


def render(template: str, context: Mapping[str, object], target: Path) -> Path:
    env = Environment(loader=FileSystemLoader(str(CODE_DIR / "nginx")), undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=False)  # noqa: S701 - Nginx config, not HTML
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(env.get_template(template).render(**context))
    return target


def self_signed_certificate(directory: Path, hostname: str = "localhost") -> tuple[Path, Path]:
    """A development certificate for ``hostname`` (and 127.0.0.1), created once."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not cert.exists() or not key.exists():
        directory.mkdir(parents=True, exist_ok=True)
        _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "825",
              "-subj", f"/CN={hostname}", "-addext", f"subjectAltName=DNS:{hostname},IP:127.0.0.1",
              "-keyout", str(key), "-out", str(cert)], what="creating a self-signed certificate")
        key.chmod(0o600)
    return cert, key


@dataclass
class Nginx:
    """Nginx in front of Beacon's processes, configured from nginx/beacon.conf.j2, on loopback only (127.0.0.1
    and ::1; production listens on every interface).

    Its workers run as the invoking user, as Beacon's own processes do: under root they would otherwise
    switch to ``nobody``, who cannot read ``app/static/`` in a checkout under a private directory.
    """

    directory: Path
    http_port: int
    https_port: int
    upstreams: Mapping[str, list[str]]
    static_dir: Path = CODE_DIR / "app" / "static"
    process: subprocess.Popen[bytes] | None = None

    def configure(self) -> Path:
        cert, key = self_signed_certificate(self.directory / "tls")
        logs = self.directory / "log"
        logs.mkdir(parents=True, exist_ok=True)
        (self.directory / "acme").mkdir(exist_ok=True)
        site = render("beacon.conf.j2", {
            "beacon_http_port": self.http_port, "beacon_https_port": self.https_port,
            "beacon_server_name": "_", "beacon_tls_cert": cert, "beacon_tls_key": key,
            "beacon_snippets_dir": CODE_DIR / "nginx" / "snippets", "beacon_static_dir": self.static_dir,
            "beacon_acme_dir": self.directory / "acme", "beacon_upstreams": self.upstreams,
            "beacon_log_dir": logs, "beacon_listen_addresses": ["127.0.0.1", "[::1]"],
        }, self.directory / "beacon.conf")
        main = render("dev-nginx.conf.j2", {
            "beacon_run_dir": self.directory, "beacon_log_dir": logs, "beacon_site_conf": site,
            "beacon_worker_user": "root" if os.geteuid() == 0 else None,
        }, self.directory / "nginx.conf")
        _run([*self._command(main), "-t", "-q"], what="nginx -t")
        return main

    def _command(self, main: Path) -> list[str]:
        # -e: the log nginx writes before it reads its configuration (else /var/log/nginx/error.log).
        return [program("nginx", "nginx"), "-p", str(self.directory), "-c", str(main),
                "-e", str(self.directory / "log" / "nginx-error.log")]

    def start(self) -> None:
        main = self.configure()
        try:
            self.process = subprocess.Popen([*self._command(main), "-g", "daemon off;"], stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        except OSError as exc:
            raise StackError(f"starting nginx failed: {exc}") from None
        wait_for_port(self.https_port, 20)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            _stop_pid(self.process.pid, signal.SIGQUIT)
            self.process.wait()


def beacon_environment(*, home: Path, state: Path, database_url: str, redis_url: str, secret_key: str,
                       internal_token: str, base_url: str, ports: Mapping[str, int] | None = None,
                       env: str = "development") -> dict[str, str]:
    """Every BEACON_* variable circus.ini and the processes need, for a stack rooted at ``state``."""
    values = {
        "BEACON_ENV": env,
        "BEACON_HOME": str(home),
        "BEACON_VENV": str(Path(sys.prefix)),
        "BEACON_STATE_DIR": str(state),
        "BEACON_LOG_DIR": str(state / "log"),
        "BEACON_RUN_DIR": str(state / "run"),
        "BEACON_BACKUP_DIR": str(state / "backups"),
        "BEACON_DATABASE_URL": database_url,
        "BEACON_REDIS_URL": redis_url,
        "BEACON_SECRET_KEY": secret_key,
        "BEACON_INTERNAL_TOKEN": internal_token,
        "BEACON_BASE_URL": base_url,
        "BEACON_BIND_HOST": "127.0.0.1",
    }
    for name, port in (ports or DEFAULT_PORTS).items():
        values[f"BEACON_{name.upper()}_PORT"] = str(port)
    return values


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    path.chmod(0o600)


@dataclass
class Circus:
    """circusd running circus.ini with ``environment``."""

    environment: Mapping[str, str]
    config: Path = CODE_DIR / "circus.ini"
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"ipc://{self.environment['BEACON_RUN_DIR']}/circus.sock"

    def start(self, *, foreground_output: bool = False) -> None:
        for key in ("BEACON_RUN_DIR", "BEACON_LOG_DIR"):
            Path(self.environment[key]).mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as files:
            log = None if foreground_output else files.enter_context(
                (Path(self.environment["BEACON_LOG_DIR"]) / "circusd.log").open("ab"))
            self.process = subprocess.Popen(
                [str(Path(sys.prefix) / "bin" / "circusd"), str(self.config)],
                env={**os.environ, **self.environment}, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )

    def ctl(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            [str(Path(sys.prefix) / "bin" / "circusctl"), "--endpoint", self.endpoint, "--timeout",
             str(int(timeout)), *args], capture_output=True, text=True, timeout=timeout + 10, check=False,
        )
        if result.returncode != 0:
            raise StackError(f"circusctl {' '.join(args)} failed: {result.stderr.strip() or result.stdout}")
        return result.stdout

    def stop(self, timeout: float = 90) -> None:
        """Graceful: circusd stops every watcher within its graceful_timeout, then exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- make run ---------------------------------------------------------------------------------------


def _secrets(path: Path) -> dict[str, str]:
    """Development secrets, generated on the first run and kept in var/secrets.env (mode 0600)."""
    names = ("POSTGRES_PASSWORD", "DB_PASSWORD", "REDIS_PASSWORD", "SECRET_KEY", "INTERNAL_TOKEN",
             "ADMIN_PASSWORD")
    values = read_env_file(path) if path.exists() else {}
    if any(name not in values for name in names):
        for name in names:
            values.setdefault(name, secrets.token_urlsafe(24 if name == "ADMIN_PASSWORD" else 32))
        write_env_file(path, values)
    return values


@contextlib.contextmanager
def _started(component: Postgres | Redis | Nginx) -> Iterator[None]:
    component.start()
    try:
        yield
    finally:
        component.stop()


def start_dev_mail(var: Path, port: int = 8025) -> tuple[MailSink, dict[str, str]]:
    """An SMTP server on loopback keeping mail under ``var/mail/``, and the settings that make Beacon use it
    (and deliver webhooks to receivers on this machine)."""
    # aiosmtpd is a test dependency, not an installation's: only `make run` and the tests need it.
    from app.mailsink import MailSink  # noqa: PLC0415 - aiosmtpd is not installed in production

    try:
        sink = MailSink(var / "mail", port)
        sink.start()
    except (OSError, RuntimeError):  # the port is taken (another stack on this machine): any free one
        sink = MailSink(var / "mail", free_port())
        sink.start()
    return sink, {"BEACON_SMTP_URL": sink.url, "BEACON_WEBHOOKS_ALLOW_PRIVATE": "1"}


@dataclass(frozen=True)
class DevPorts:
    """The loopback ports of one development stack."""

    http: int
    https: int
    postgres: int
    redis: int
    services: Mapping[str, int] = field(default_factory=lambda: {**DEFAULT_PORTS, **METRICS_PORTS})
    """Beacon's own processes, by watcher name (``api``, ``ingest``, ...)."""

    def check_free(self) -> None:
        """StackError naming the first port something else already listens on."""
        named = {"Nginx HTTP": self.http, "Nginx HTTPS": self.https, "PostgreSQL": self.postgres,
                 "Redis": self.redis, **{f"Beacon {name}": port for name, port in self.services.items()}}
        for what, port in named.items():
            check_port_free(port, what)


def run_dev(var: Path, admin_email: str, demo_site: str, ports: DevPorts) -> int:
    ports.check_free()
    var = var.resolve()
    var.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = _secrets(var / "secrets.env")
    postgres = Postgres(var / "postgres", ports.postgres, keys["POSTGRES_PASSWORD"])
    redis_server = Redis(var / "redis", ports.redis, keys["REDIS_PASSWORD"])
    base_url = f"https://localhost:{ports.https}"
    environment = beacon_environment(
        home=CODE_DIR, state=var, database_url=postgres.url("beacon", keys["DB_PASSWORD"], "beacon"),
        redis_url=redis_server.url(), secret_key=keys["SECRET_KEY"], internal_token=keys["INTERNAL_TOKEN"],
        base_url=base_url, ports=ports.services,
    )
    mail_sink, mail_environment = start_dev_mail(var)
    environment.update(mail_environment)
    write_env_file(var / "beacon.env", environment)
    os.environ.update(environment)
    nginx = Nginx(var / "nginx", ports.http, ports.https, {
        name: [f"127.0.0.1:{ports.services[name]}"] for name in ("api", "realtime", "ingest")})
    beacon = [str(Path(sys.prefix) / "bin" / "beacon")]

    created = postgres.init()
    with _started(postgres), _started(redis_server):
        postgres.ensure_database("beacon", "beacon", keys["DB_PASSWORD"])
        print(_run([*beacon, "migrate"], what="beacon migrate").strip())
        _run([*beacon, "createuser", "--email", admin_email, "--password-stdin", "--admin", "--exists-ok"],
             stdin=keys["ADMIN_PASSWORD"] + "\n", what="creating the admin user")
        _run([*beacon, "site", "add", demo_site, "--exists-ok"], what="adding the demo site")
        with _started(nginx):
            circus = Circus(environment)
            circus.start(foreground_output=True)
            print(
                f"\nBeacon is starting{' (new database)' if created else ''}.\n"
                f"  Dashboard:  {base_url}/sites/{demo_site}   (self-signed certificate)\n"
                f"  Sign in:    {admin_email} / {keys['ADMIN_PASSWORD']}\n"
                f"  Health:     {base_url}/api/health\n"
                f"  HTTP:       http://localhost:{ports.http}/ redirects to HTTPS\n"
                f"  Processes:  CIRCUSCTL_ENDPOINT={circus.endpoint} {sys.prefix}/bin/circusctl status\n"
                f"  Logs:       {var / 'log'}/\n"
                f"  Data:       {postgres.directory}{f' -> {postgres.home}' if postgres.directory.is_symlink() else ''}"
                " (PostgreSQL), var/redis, var/secrets.env\n"
                f"  Mail:       {var / 'mail'}/ (every email Beacon sends, one .eml file each)\n"
                "Press Ctrl-C to stop everything.\n",
                flush=True,
            )
            stop = False

            def on_signal(signum: int, _frame: object) -> None:
                nonlocal stop
                stop = True

            signal.signal(signal.SIGINT, on_signal)
            signal.signal(signal.SIGTERM, on_signal)
            assert circus.process is not None
            while not stop and circus.process.poll() is None:
                time.sleep(0.2)
            print("\nStopping Beacon…", flush=True)
            circus.stop()
    mail_sink.stop()
    print("Stopped.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole stack under ./var in the foreground")
    run.add_argument("--var", type=Path, default=CODE_DIR / "var")
    run.add_argument("--admin-email", default="admin@beacon.localhost")
    run.add_argument("--demo-site", default="demo.beacon.localhost")
    run.add_argument("--http-port", type=int, help="default 8080")
    run.add_argument("--https-port", type=int, help="default 8443")
    run.add_argument("--postgres-port", type=int, help="default 5433")
    run.add_argument("--redis-port", type=int, help="default 6380")
    run.add_argument("--free-ports", action="store_true",
                     help="free ports, chosen now, for every server whose port is not given (Beacon's own "
                          "processes included: see var/beacon.env)")
    args = parser.parse_args(argv)

    def port(given: int | None, default: int) -> int:
        return given if given is not None else free_port() if args.free_ports else default

    ports = DevPorts(port(args.http_port, 8080), port(args.https_port, 8443), port(args.postgres_port, 5433),
                     port(args.redis_port, 6380),
                     {name: port(None, default) for name, default in {**DEFAULT_PORTS, **METRICS_PORTS}.items()})
    try:
        return run_dev(args.var, args.admin_email, args.demo_site, ports)
    except StackError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("make run: interrupted; everything started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
