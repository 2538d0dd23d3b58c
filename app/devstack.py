"""A self-contained Beacon stack on one machine: PostgreSQL, Redis, Nginx and circusd under one directory.

``make run`` uses it to run Beacon for development under ``./var``; the tests use the same pieces to start
their own servers on free ports in temporary directories. Nothing here is used in production, where the
distribution's services and systemd run things (see ``ansible/``).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
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

from app.core.settings import CODE_DIR, DEFAULT_PORTS

if TYPE_CHECKING:
    from app.mailsink import MailSink


class StackError(RuntimeError):
    """A piece of the stack could not be set up; the message says which and why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise StackError(f"nothing listens on {host}:{port} after {timeout:g} s")


def _run(args: list[str], *, user: str | None = None, env: Mapping[str, str] | None = None,
         what: str, stdin: str | None = None) -> str:
    if user is not None:
        args = ["runuser", "-u", user, "--", *args]
    result = subprocess.run(args, capture_output=True, text=True, env=dict(env) if env else None,
                            input=stdin, check=False)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        raise StackError(f"{what} failed: {output[-1] if output else f'exit {result.returncode}'}")
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


def _stop_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.05)
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


def postgres_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise StackError("PostgreSQL server binaries not found (apt-get install postgresql)")


@dataclass
class Postgres:
    """A PostgreSQL cluster in ``directory`` listening on 127.0.0.1:``port``, password auth only."""

    directory: Path
    port: int
    superuser_password: str
    user: str | None = field(default_factory=lambda: _service_user("postgres"))

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    def url(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def init(self) -> bool:
        """Create the cluster unless it exists; True when it was created now."""
        if (self.datadir / "PG_VERSION").exists():
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "sockets").mkdir(exist_ok=True)
        pwfile = self.directory / ".pwfile"
        pwfile.write_text(self.superuser_password)
        pwfile.chmod(0o600)
        _chown(self.directory, self.user)
        try:
            _run([str(postgres_bindir() / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                  "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"],
                 user=self.user, what="initdb")
        finally:
            pwfile.unlink()
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# Beacon development/test cluster\nlisten_addresses = '127.0.0.1'\n"
                f"port = {self.port}\nunix_socket_directories = '{self.directory / 'sockets'}'\n"
                "shared_buffers = 256MB\nfsync = on\nmax_connections = 200\n"
            )
        return True

    def start(self) -> None:
        _run([str(postgres_bindir() / "pg_ctl"), "-D", str(self.datadir), "-l",
              str(self.directory / "postgres.log"), "-o", f"-p {self.port}", "-w", "-t", "60", "start"],
             user=self.user, what="starting PostgreSQL")

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            _run([str(postgres_bindir() / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"],
                 user=self.user, what="stopping PostgreSQL")

    def psql(self, sql: str, database: str = "postgres") -> str:
        env = {**os.environ, "PGPASSWORD": self.superuser_password}
        return _run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                     str(self.port), "-U", "postgres", "-d", database, "-c", sql], env=env, what="psql")

    def ensure_database(self, name: str, owner: str, password: str) -> None:
        """Create a login role and a database it owns, unless they exist."""
        identifier = re.compile(r"[a-z_][a-z0-9_]*")
        if not (identifier.fullmatch(name) and identifier.fullmatch(owner) and re.fullmatch(r"[\w-]+", password)):
            raise StackError("refusing an unsafe database name, role name or password")
        # Names and password are checked above, so building the statements from them is safe.
        if not self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{owner}'").strip():  # noqa: S608
            self.psql(f"CREATE ROLE {owner} LOGIN PASSWORD '{password}'")
        if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip():  # noqa: S608
            self.psql(f"CREATE DATABASE {name} OWNER {owner}")


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
        self.process = subprocess.Popen(["redis-server", str(conf)], stdin=subprocess.DEVNULL,
                                        start_new_session=True)
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
    """Nginx in front of Beacon's processes, configured from nginx/beacon.conf.j2."""

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
            "beacon_log_dir": logs,
        }, self.directory / "beacon.conf")
        main = render("dev-nginx.conf.j2", {
            "beacon_run_dir": self.directory, "beacon_log_dir": logs, "beacon_site_conf": site,
        }, self.directory / "nginx.conf")
        _run(["nginx", "-t", "-q", "-p", str(self.directory), "-c", str(main)], what="nginx -t")
        return main

    def start(self) -> None:
        main = self.configure()
        self.process = subprocess.Popen(
            ["nginx", "-p", str(self.directory), "-c", str(main), "-g", "daemon off;"], stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
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
    from app.core.settings import read_env_file

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
    from app.mailsink import MailSink  # aiosmtpd is a development dependency

    try:
        sink = MailSink(var / "mail", port)
        sink.start()
    except (OSError, RuntimeError):  # the port is taken (another stack on this machine): any free one
        sink = MailSink(var / "mail", free_port())
        sink.start()
    return sink, {"BEACON_SMTP_URL": sink.url, "BEACON_WEBHOOKS_ALLOW_PRIVATE": "1"}


def run_dev(var: Path, admin_email: str, demo_site: str, http_port: int, https_port: int,
            pg_port: int, redis_port: int) -> int:
    var = var.resolve()
    var.mkdir(parents=True, exist_ok=True)
    var.chmod(0o755)
    keys = _secrets(var / "secrets.env")
    postgres = Postgres(var / "postgres", pg_port, keys["POSTGRES_PASSWORD"])
    redis_server = Redis(var / "redis", redis_port, keys["REDIS_PASSWORD"])
    base_url = f"https://localhost:{https_port}"
    environment = beacon_environment(
        home=CODE_DIR, state=var, database_url=postgres.url("beacon", keys["DB_PASSWORD"], "beacon"),
        redis_url=redis_server.url(), secret_key=keys["SECRET_KEY"], internal_token=keys["INTERNAL_TOKEN"],
        base_url=base_url,
    )
    mail_sink, mail_environment = start_dev_mail(var)
    environment.update(mail_environment)
    write_env_file(var / "beacon.env", environment)
    os.environ.update(environment)
    ports = DEFAULT_PORTS
    nginx = Nginx(var / "nginx", http_port, https_port, {
        name: [f"127.0.0.1:{ports[name]}"] for name in ("api", "realtime", "ingest")})
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
                f"  Processes:  CIRCUSCTL_ENDPOINT={circus.endpoint} {sys.prefix}/bin/circusctl status\n"
                f"  Logs:       {var / 'log'}/\n"
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
    run.add_argument("--http-port", type=int, default=8080)
    run.add_argument("--https-port", type=int, default=8443)
    run.add_argument("--postgres-port", type=int, default=5433)
    run.add_argument("--redis-port", type=int, default=6380)
    args = parser.parse_args(argv)
    try:
        return run_dev(args.var, args.admin_email, args.demo_site, args.http_port, args.https_port,
                       args.postgres_port, args.redis_port)
    except StackError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
