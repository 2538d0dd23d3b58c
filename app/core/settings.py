"""Beacon's one settings module: every process reads its configuration from here.

Values come from ``BEACON_*`` environment variables; a ``.env``-style file named by ``BEACON_ENV_FILE``
fills in what the real environment does not set (real variables always win). Nothing is read at import
time: call :func:`get_settings` (cached) or :func:`load_settings` (fresh, for tests).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from app.core.errors import ConfigError

CODE_DIR = Path(__file__).resolve().parents[2]
"""The source tree Beacon runs from (holds circus.ini, nginx/, backups/)."""

SERVICE_NAMES = ("ingest", "analytics", "integrations", "compute")
"""The four internal HTTP services the api talks to."""


@dataclass(frozen=True)
class DatabaseSettings:
    url: str
    """SQLAlchemy URL of the PostgreSQL database, always with the psycopg 3 driver."""
    pool_size: int = 10
    """Connections each process keeps open."""
    max_overflow: int = 10
    """Extra connections a process may open under load."""
    statement_timeout_ms: int = 30_000
    """Server-side limit for one statement, so a runaway query cannot hold a connection forever."""
    patroni_urls: tuple[str, ...] = ()
    """REST API of each Patroni member (``BEACON_PATRONI_URLS=http://10.0.0.11:8008,...``) when PostgreSQL
    runs under Patroni on several data hosts; ``beacon check`` shows the cluster from it. Empty: one host."""

    @property
    def libpq_url(self) -> str:
        """The same URL in the form libpq tools (psql, pg_dump) understand."""
        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True)
class RedisSettings:
    url: str
    """Redis URL (``redis://:password@host:port/db``)."""
    key_prefix: str = "beacon:"
    """Prefix of every key and channel Beacon uses, so one Redis can host several instances."""
    sentinels: tuple[tuple[str, int], ...] = ()
    """Redis Sentinels as ``(host, port)`` (``BEACON_REDIS_SENTINELS=h1:26379,h2:26379``). Empty: connect to
    ``url`` directly (a single host). Set: ask the Sentinels for the current master of ``sentinel_master``;
    ``url`` then gives only the password and database number, its host and port are ignored."""
    sentinel_master: str = "beacon"
    """Name of the monitored master (``sentinel monitor <name> ...`` in sentinel.conf)."""


@dataclass(frozen=True)
class ServerSettings:
    bind_host: str = "127.0.0.1"
    """Address every Beacon HTTP process binds to; loopback unless the host is part of a private network."""
    ports: Mapping[str, int] = field(default_factory=dict)
    """Port of each HTTP process (api, realtime, ingest, analytics, integrations, compute)."""
    service_urls: Mapping[str, str] = field(default_factory=dict)
    """Base URL at which each HTTP process is reached by the others (and by ``beacon check``)."""
    base_url: str = "https://localhost:8443"
    """Public URL of this Beacon instance, as browsers see it."""


@dataclass(frozen=True)
class SecuritySettings:
    secret_key: str
    """Key for signed tokens and visitor-id hashing; long and random."""
    internal_token: str
    """Shared secret that every service-to-service call carries."""


@dataclass(frozen=True)
class HttpClientSettings:
    timeout: float = 5.0
    """Seconds before a call to an internal service gives up."""
    retries: int = 2
    """Retries of a call that never reached the service (connection refused or not made in time)."""


@dataclass(frozen=True)
class WorkerSettings:
    threads: int = 4
    """Dramatiq worker threads per worker process."""
    heartbeat_interval: float = 15.0
    """Seconds between two heartbeat jobs enqueued by the scheduler."""
    heartbeat_max_age: float = 90.0
    """A worker or scheduler heartbeat older than this makes /api/health fail."""


@dataclass(frozen=True)
class AnalyticsSettings:
    cache_ttl: float = 60.0
    """Seconds a query answer is served from Redis: the dashboard is at most this far behind."""
    query_budget: float = 4.0
    """Seconds one analytics query may run (its statements' ``statement_timeout``); below the api's
    ``BEACON_HTTP_TIMEOUT``, so PostgreSQL stops the work before the caller gives up on it."""


@dataclass(frozen=True)
class AccountSettings:
    registration: str = "open"
    """Who may create an account: ``open`` (anyone), ``invite`` (only with a site invitation link) or
    ``closed`` (nobody; operators use ``beacon createuser``). The very first account may always register."""
    login_attempts_per_account: int = 5
    """Sign-in attempts allowed for one e-mail address from one client address per ``login_window`` (a
    successful sign-in from that address resets it); other addresses are not affected."""
    login_attempts_per_ip: int = 30
    """Sign-in attempts allowed from one client address (an IPv6 /64) per ``login_window``, whatever the account."""
    login_window: int = 900
    """Seconds over which sign-in attempts are counted."""
    session_max_age: int = 14 * 24 * 3600
    """Seconds a browser session lasts after its last request (sliding)."""
    session_lifetime: int = 30 * 24 * 3600
    """Seconds a browser session lasts after sign-in at most, however active it is (absolute)."""


@dataclass(frozen=True)
class RealtimeSettings:
    heartbeat_interval: float = 25.0
    """Seconds between two pings the realtime process sends on every WebSocket."""
    heartbeat_timeout: float = 75.0
    """A WebSocket from which nothing (not even a pong) arrived for this long is closed as dead."""
    send_buffer_limit: int = 1_048_576
    """Bytes one client may leave unread (beyond the kernel's socket buffer) before it is dropped as too slow."""
    stats_interval: float = 2.0
    """Seconds between two writes of this process's connection statistics to Redis."""


@dataclass(frozen=True)
class IngestSettings:
    batch_size: int = 1000
    """Events after which a batch closes at once."""
    batch_wait_ms: float = 4.0
    """Milliseconds a batch stays open for more events after its first one arrived."""
    writers: int = 2
    """Batches of one process in flight at once, each on its own connection (at least 1)."""
    retry_after: int = 5
    """Seconds announced in ``Retry-After`` when PostgreSQL cannot take events."""
    hold_seconds: float = 20.0
    """Seconds a batch waits for PostgreSQL to come back (a failover) before its requests answer 503; the
    requests are held meanwhile (0: refuse at once). Keep it below Nginx's ``proxy_read_timeout`` (30 s)."""
    rate_per_ip: int = 600
    """Events accepted per client IP per window (0: no limit)."""
    rate_per_site: int = 100_000
    """Events accepted per site per window (0: no limit)."""
    rate_window: int = 60
    """Length of a rate-limit window in seconds."""
    live_interval_ms: float = 250.0
    """Live messages of one site are coalesced into at most one per this interval."""
    session_timeout: int = 1800
    """Seconds of inactivity that end a visit."""
    presence_window: int = 300
    """A visitor seen within this many seconds counts as live."""
    honour_forwarded_for: bool = True
    """The visitor's address is the first one in the client's X-Forwarded-For, as in Plausible (0: the
    address Nginx saw). Rate limits always use the address Nginx saw."""


RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
"""Seconds to wait before each delivery attempt of a webhook (immediately, 5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 10 h): the schedule Svix publishes for Standard Webhooks senders; eight attempts over about 27 hours."""


@dataclass(frozen=True)
class IntegrationsSettings:
    allow_private: bool = False
    """Deliver webhooks to loopback and private addresses (and over plain http): for tests and `make run`
    only (``BEACON_WEBHOOKS_ALLOW_PRIVATE=1``)."""
    retry_scale: float = 1.0
    """Factor applied to every delay of :data:`RETRY_SCHEDULE` (tests compress it, e.g. 0.001)."""
    lease: float = 60.0
    """Seconds a worker owns a delivery it is sending; a delivery whose worker died is sent again after this."""
    connect_timeout: float = 5.0
    """Seconds to open a connection to a webhook receiver."""
    read_timeout: float = 10.0
    """Seconds to wait for a receiver's answer (and between two chunks of it)."""
    response_capture: int = 2048
    """Bytes of each receiver's answer kept in the delivery log; the rest is never read."""
    max_endpoints: int = 20
    """Webhook endpoints one site may have."""
    goal_interval: float = 60.0
    """Seconds over which goal conversions are coalesced into one ``goal.completed`` delivery per endpoint."""
    disable_after: float = 5 * 86400.0
    """An endpoint whose deliveries have failed for this many seconds in a row is disabled."""
    log_retention_days: int = 30
    """Days the delivery log (deliveries and their attempts) is kept."""
    smtp_url: str = ""
    """``smtp://user:password@host:port`` (STARTTLS when offered) or ``smtps://`` (TLS); empty: no mail."""
    mail_from: str = "Beacon <beacon@localhost>"
    """The From address of Beacon's emails."""

    def retry_delays(self) -> tuple[float, ...]:
        """The retry schedule in seconds, scaled by :attr:`retry_scale`."""
        return tuple(delay * self.retry_scale for delay in RETRY_SCHEDULE)


@dataclass(frozen=True)
class PathSettings:
    home: Path
    """The code directory (Circus working_dir)."""
    log_dir: Path
    """Where Circus writes one log file per watcher."""
    run_dir: Path
    """Runtime files: Circus control sockets."""
    state_dir: Path
    """Persistent state that is not in PostgreSQL."""
    backup_dir: Path
    """Where ``beacon backup`` writes database dumps."""
    init_sql_dir: Path
    """``*.sql`` files applied in order to an empty database on its first initialisation."""


@dataclass(frozen=True)
class Settings:
    env: str
    """``production`` or ``development``."""
    database: DatabaseSettings
    redis: RedisSettings
    server: ServerSettings
    security: SecuritySettings
    http_client: HttpClientSettings
    workers: WorkerSettings
    paths: PathSettings
    analytics: AnalyticsSettings = field(default_factory=AnalyticsSettings)
    accounts: AccountSettings = field(default_factory=AccountSettings)
    realtime: RealtimeSettings = field(default_factory=RealtimeSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    integrations: IntegrationsSettings = field(default_factory=IntegrationsSettings)
    log_level: str = "INFO"
    """Minimum level of log records."""

    @property
    def debug(self) -> bool:
        return self.env == "development"


DEFAULT_PORTS = {
    "api": 9001,
    "realtime": 6001,
    "ingest": 8001,
    "analytics": 8002,
    "integrations": 8003,
    "compute": 8004,
}


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a systemd/.env style file: ``KEY=value`` lines, ``#`` comments, optional quotes."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read BEACON_ENV_FILE {path}: {exc.strerror}") from exc
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip().removeprefix("export ").strip()] = value
    return values


def _database_url(raw: str) -> str:
    try:
        url = make_url(raw)
    except Exception as exc:
        raise ConfigError(f"BEACON_DATABASE_URL is not a valid URL: {exc}") from exc
    if url.get_backend_name() != "postgresql":
        raise ConfigError("BEACON_DATABASE_URL must be a postgresql:// URL")
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off; unset or empty gives ``default``."""
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true or false), got {raw!r}")


def _at_least(minimum: int, name: str, value: int) -> int:
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def integrations_settings(env: Mapping[str, str]) -> IntegrationsSettings:
    """``BEACON_WEBHOOKS_*``, ``BEACON_SMTP_URL`` and ``BEACON_MAIL_FROM``; no number may be negative."""
    defaults = IntegrationsSettings()
    allow = env.get("BEACON_WEBHOOKS_ALLOW_PRIVATE", "0").strip().lower()
    if allow not in ("0", "1", "false", "true", ""):
        raise ConfigError(f"BEACON_WEBHOOKS_ALLOW_PRIVATE must be 0 or 1, got {allow!r}")
    variables = {"retry_scale": "RETRY_SCALE", "lease": "LEASE", "connect_timeout": "CONNECT_TIMEOUT",
                 "read_timeout": "READ_TIMEOUT", "response_capture": "RESPONSE_CAPTURE",
                 "max_endpoints": "MAX_ENDPOINTS", "goal_interval": "GOAL_INTERVAL",
                 "disable_after": "DISABLE_AFTER", "log_retention_days": "LOG_RETENTION_DAYS"}
    values: dict[str, Any] = {}
    for name, suffix in variables.items():
        variable, default = f"BEACON_WEBHOOKS_{suffix}", getattr(defaults, name)
        raw = env.get(variable, "").strip()
        try:
            values[name] = type(default)(raw) if raw else default
        except ValueError:
            raise ConfigError(f"{variable} must be a {type(default).__name__}, got {raw!r}") from None
        if values[name] < 0:
            raise ConfigError(f"{variable} must not be negative")
    return IntegrationsSettings(allow_private=allow in ("1", "true"), smtp_url=env.get("BEACON_SMTP_URL", "").strip(),
                                mail_from=env.get("BEACON_MAIL_FROM", "").strip() or defaults.mail_from, **values)


def _timeouts(http_timeout: float, query_budget: float) -> tuple[float, float]:
    if not 0 < query_budget < http_timeout:
        raise ConfigError(f"BEACON_ANALYTICS_QUERY_BUDGET ({query_budget:g} s) must be positive and below "
                          f"BEACON_HTTP_TIMEOUT ({http_timeout:g} s): the caller would give up on running work")
    return http_timeout, query_budget


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``environ`` (default: the process environment plus ``BEACON_ENV_FILE``)."""
    env: dict[str, str] = {}
    source = dict(os.environ if environ is None else environ)
    if source.get("BEACON_ENV_FILE"):
        env.update(read_env_file(Path(source["BEACON_ENV_FILE"])))
    env.update(source)

    def required(name: str) -> str:
        value = env.get(name, "").strip()
        if not value:
            raise ConfigError(f"missing required setting {name}")
        return value

    def integer(name: str, default: int) -> int:
        raw = env.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None

    def number(name: str, default: float) -> float:
        raw = env.get(name)
        if raw is None or raw == "":
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None

    def ingest_settings() -> IngestSettings:
        """``BEACON_INGEST_<FIELD>`` for each field of :class:`IngestSettings`; none may be negative."""
        values: dict[str, Any] = {}
        for name, default in vars(IngestSettings()).items():
            variable = f"BEACON_INGEST_{name.upper()}"
            values[name] = (_switch(env, variable, default) if isinstance(default, bool)
                            else integer(variable, default) if isinstance(default, int)
                            else number(variable, default))
            if values[name] < 0:
                raise ConfigError(f"{variable} must not be negative")
        return IngestSettings(**values)

    app_env = env.get("BEACON_ENV", "production")
    redis_prefix = env.get("BEACON_REDIS_PREFIX", "beacon:")
    if not redis_prefix or any(char.isspace() for char in redis_prefix):
        # Ingest's Redis scripts receive key names space-separated in one argument.
        raise ConfigError("BEACON_REDIS_PREFIX must be non-empty and contain no spaces")
    if app_env not in ("production", "development"):
        raise ConfigError(f"BEACON_ENV must be production or development, got {app_env!r}")

    secret_key = required("BEACON_SECRET_KEY")
    if app_env == "production" and len(secret_key) < 32:
        raise ConfigError("BEACON_SECRET_KEY must be at least 32 characters in production")

    bind_host = env.get("BEACON_BIND_HOST", "127.0.0.1")
    ports = {name: integer(f"BEACON_{name.upper()}_PORT", port) for name, port in DEFAULT_PORTS.items()}
    for name, port in ports.items():
        if not 0 < port < 65536:
            raise ConfigError(f"BEACON_{name.upper()}_PORT must be between 1 and 65535, got {port}")
    service_urls = {
        name: env.get(f"BEACON_{name.upper()}_URL") or f"http://{bind_host}:{ports[name]}"
        for name in DEFAULT_PORTS
    }

    registration = env.get("BEACON_REGISTRATION", "open").strip().lower()
    if registration not in ("open", "invite", "closed"):
        raise ConfigError(f"BEACON_REGISTRATION must be open, invite or closed, got {registration!r}")

    http_timeout, query_budget = _timeouts(number("BEACON_HTTP_TIMEOUT", 5.0),
                                           number("BEACON_ANALYTICS_QUERY_BUDGET", 4.0))

    home = Path(env.get("BEACON_HOME") or CODE_DIR)
    state_dir = Path(env.get("BEACON_STATE_DIR") or home / "var")
    return Settings(
        env=app_env,
        database=DatabaseSettings(
            url=_database_url(required("BEACON_DATABASE_URL")),
            pool_size=integer("BEACON_DATABASE_POOL_SIZE", 10),
            max_overflow=integer("BEACON_DATABASE_MAX_OVERFLOW", 10),
            statement_timeout_ms=integer("BEACON_DATABASE_STATEMENT_TIMEOUT_MS", 30_000),
            patroni_urls=tuple(url.strip().rstrip("/") for url in env.get("BEACON_PATRONI_URLS", "").split(",")
                               if url.strip()),
        ),
        redis=RedisSettings(
            url=required("BEACON_REDIS_URL"),
            key_prefix=redis_prefix,
            sentinels=_sentinels(env.get("BEACON_REDIS_SENTINELS", "")),
            sentinel_master=env.get("BEACON_REDIS_SENTINEL_MASTER", "").strip() or "beacon",
        ),
        server=ServerSettings(
            bind_host=bind_host,
            ports=ports,
            service_urls=service_urls,
            base_url=env.get("BEACON_BASE_URL", "https://localhost:8443").rstrip("/"),
        ),
        security=SecuritySettings(
            secret_key=secret_key,
            internal_token=required("BEACON_INTERNAL_TOKEN"),
        ),
        http_client=HttpClientSettings(
            timeout=http_timeout,
            retries=integer("BEACON_HTTP_RETRIES", 2),
        ),
        workers=WorkerSettings(
            threads=integer("BEACON_WORKER_THREADS", 4),
            heartbeat_interval=number("BEACON_HEARTBEAT_INTERVAL", 15.0),
            heartbeat_max_age=number("BEACON_HEARTBEAT_MAX_AGE", 90.0),
        ),
        analytics=AnalyticsSettings(cache_ttl=number("BEACON_ANALYTICS_CACHE_TTL", 60.0),
                                    query_budget=query_budget),
        paths=PathSettings(
            home=home,
            log_dir=Path(env.get("BEACON_LOG_DIR") or state_dir / "log"),
            run_dir=Path(env.get("BEACON_RUN_DIR") or state_dir / "run"),
            state_dir=state_dir,
            backup_dir=Path(env.get("BEACON_BACKUP_DIR") or state_dir / "backups"),
            init_sql_dir=Path(env.get("BEACON_INIT_SQL_DIR") or home / "backups"),
        ),
        accounts=AccountSettings(
            registration=registration,
            login_attempts_per_account=integer("BEACON_LOGIN_ATTEMPTS_PER_ACCOUNT", 5),
            login_attempts_per_ip=integer("BEACON_LOGIN_ATTEMPTS_PER_IP", 30),
            login_window=integer("BEACON_LOGIN_WINDOW", 900),
            session_max_age=_at_least(60, "BEACON_SESSION_MAX_AGE", integer("BEACON_SESSION_MAX_AGE", 14 * 86400)),
            session_lifetime=_at_least(60, "BEACON_SESSION_LIFETIME", integer("BEACON_SESSION_LIFETIME", 30 * 86400)),
        ),
        realtime=RealtimeSettings(
            heartbeat_interval=number("BEACON_WS_HEARTBEAT_INTERVAL", 25.0),
            heartbeat_timeout=number("BEACON_WS_HEARTBEAT_TIMEOUT", 75.0),
            send_buffer_limit=integer("BEACON_WS_SEND_BUFFER_LIMIT", 1_048_576),
            stats_interval=number("BEACON_WS_STATS_INTERVAL", 2.0),
        ),
        ingest=ingest_settings(),
        integrations=integrations_settings(env),
        log_level=env.get("BEACON_LOG_LEVEL", "INFO").upper(),
    )


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once on first use."""
    return load_settings()


def _sentinels(raw: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` as ``((host, port), ...)``; ConfigError naming the bad entry."""
    sentinels = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"BEACON_REDIS_SENTINELS: {entry!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    return tuple(sentinels)
