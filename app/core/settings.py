"""Beacon's one settings module: every process reads its configuration from here.

Values come from ``BEACON_*`` environment variables; a ``.env``-style file named by ``BEACON_ENV_FILE``
fills in what the real environment does not set (real variables always win). Nothing is read at import
time: call :func:`get_settings` (cached) or :func:`load_settings` (fresh, for tests).
"""

from __future__ import annotations

import functools
import os
import typing
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import URL, make_url

from app.core.errors import ConfigError

CODE_DIR = Path(__file__).resolve().parents[2]
"""The source tree Beacon runs from (holds circus.ini, nginx/, backups/)."""

SERVICE_NAMES = ("ingest", "analytics", "integrations", "compute")
"""The four internal HTTP services the api talks to."""

T = TypeVar("T")


def setting(variable: str, default: T, *, minimum: float | None = None, maximum: float | None = None,
            choices: tuple[str, ...] | None = None) -> T:
    """A settings field read from the environment ``variable``, ``default`` when it is unset or empty.

    The value is converted to the field's type (``bool``: 1/true/yes/on or 0/false/no/off); ``minimum``,
    ``maximum`` and ``choices`` are checked, and a value that fails names the variable in a :class:`ConfigError`.
    """
    return field(default=default, metadata={"env": variable, "minimum": minimum, "maximum": maximum,
                                            "choices": choices})


def required(variable: str) -> Any:
    """A settings field that the environment ``variable`` must set (start-up stops naming it otherwise)."""
    return field(metadata={"env": variable, "required": True})


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = required("BEACON_DATABASE_URL")
    """SQLAlchemy URL of the PostgreSQL database, always with the psycopg 3 driver."""
    pool_size: int = setting("BEACON_DATABASE_POOL_SIZE", 10)
    """Connections each process keeps open."""
    max_overflow: int = setting("BEACON_DATABASE_MAX_OVERFLOW", 10)
    """Extra connections a process may open under load."""
    statement_timeout_ms: int = setting("BEACON_DATABASE_STATEMENT_TIMEOUT_MS", 30_000)
    """Server-side limit for one statement, so a runaway query cannot hold a connection forever."""
    patroni_urls: tuple[str, ...] = ()
    """REST API of each Patroni member (``BEACON_PATRONI_URLS=http://10.0.0.11:8008,...``) when PostgreSQL
    runs under Patroni on several data hosts; ``beacon check`` shows the cluster from it. Empty: one host."""

    @property
    def libpq_url(self) -> str:
        """The same URL in the form libpq and its tools (psycopg, psql, pg_dump) understand."""
        return self._libpq(with_password=True)

    @property
    def libpq_url_without_password(self) -> str:
        """:attr:`libpq_url` without the password (pass :attr:`password` as ``PGPASSWORD``, out of ``ps``)."""
        return self._libpq(with_password=False)

    @property
    def password(self) -> str | None:
        """The password in the URL, if it has one."""
        password = make_url(self.url).password
        return None if password is None else str(password)

    def _libpq(self, *, with_password: bool) -> str:
        url = make_url(self.url)
        # Rebuilt rather than url.set(password=None): set() ignores None and would keep the password.
        return URL.create(drivername="postgresql", username=url.username,
                          password=url.password if with_password else None, host=url.host, port=url.port,
                          database=url.database, query=url.query).render_as_string(hide_password=False)


@dataclass(frozen=True)
class RedisSettings:
    url: str = required("BEACON_REDIS_URL")
    """Redis URL (``redis://:password@host:port/db``)."""
    key_prefix: str = setting("BEACON_REDIS_PREFIX", "beacon:")
    """Prefix of every key and channel Beacon uses, so one Redis can host several instances."""
    sentinels: tuple[tuple[str, int], ...] = ()
    """Redis Sentinels as ``(host, port)`` (``BEACON_REDIS_SENTINELS=h1:26379,h2:26379``). Empty: connect to
    ``url`` directly (a single host). Set: ask the Sentinels for the current master of ``sentinel_master``;
    ``url`` then gives only the password and database number, its host and port are ignored."""
    sentinel_master: str = "beacon"
    """Name of the monitored master (``sentinel monitor <name> ...`` in sentinel.conf)."""


@dataclass(frozen=True)
class ServerSettings:
    bind_host: str = setting("BEACON_BIND_HOST", "127.0.0.1")
    """Address every Beacon HTTP process binds to; loopback unless the host is part of a private network."""
    ports: Mapping[str, int] = field(default_factory=dict)
    """Port of each HTTP process (api, realtime, ingest, analytics, integrations, compute)."""
    service_urls: Mapping[str, str] = field(default_factory=dict)
    """Base URL at which each HTTP process is reached by the others (and by ``beacon check``)."""
    base_url: str = setting("BEACON_BASE_URL", "https://localhost:8443")
    """Public URL of this Beacon instance, as browsers see it."""


@dataclass(frozen=True)
class SecuritySettings:
    secret_key: str = required("BEACON_SECRET_KEY")
    """Key for signed tokens and visitor-id hashing; long and random."""
    internal_token: str = required("BEACON_INTERNAL_TOKEN")
    """Shared secret that every service-to-service call carries."""


@dataclass(frozen=True)
class HttpClientSettings:
    timeout: float = setting("BEACON_HTTP_TIMEOUT", 5.0)
    """Seconds before a call to an internal service gives up."""
    retries: int = setting("BEACON_HTTP_RETRIES", 2)
    """Retries of a call that never reached the service (connection refused or not made in time)."""


@dataclass(frozen=True)
class WorkerSettings:
    threads: int = setting("BEACON_WORKER_THREADS", 4)
    """Dramatiq worker threads per worker process."""
    heartbeat_interval: float = setting("BEACON_HEARTBEAT_INTERVAL", 15.0)
    """Seconds between two heartbeat jobs enqueued by the scheduler."""
    heartbeat_max_age: float = setting("BEACON_HEARTBEAT_MAX_AGE", 90.0)
    """A worker or scheduler heartbeat older than this makes /api/health fail."""


@dataclass(frozen=True)
class AnalyticsSettings:
    cache_ttl: float = setting("BEACON_ANALYTICS_CACHE_TTL", 60.0)
    """Seconds a query answer is served from Redis: the dashboard is at most this far behind."""
    query_budget: float = setting("BEACON_ANALYTICS_QUERY_BUDGET", 4.0)
    """Seconds one analytics query may run (its statements' ``statement_timeout``); below the api's
    ``BEACON_HTTP_TIMEOUT``, so PostgreSQL stops the work before the caller gives up on it."""


@dataclass(frozen=True)
class AccountSettings:
    registration: str = setting("BEACON_REGISTRATION", "open", choices=("open", "invite", "closed"))
    """Who may create an account: ``open`` (anyone), ``invite`` (only with a site invitation link) or
    ``closed`` (nobody; operators use ``beacon createuser``). The very first account may always register."""
    login_attempts_per_account: int = setting("BEACON_LOGIN_ATTEMPTS_PER_ACCOUNT", 5)
    """Sign-in attempts allowed for one e-mail address from one client address per ``login_window`` (a
    successful sign-in from that address resets it); other addresses are not affected."""
    login_attempts_per_ip: int = setting("BEACON_LOGIN_ATTEMPTS_PER_IP", 30)
    """Sign-in attempts allowed from one client address (an IPv6 /64) per ``login_window``, whatever the account."""
    login_window: int = setting("BEACON_LOGIN_WINDOW", 900)
    """Seconds over which sign-in attempts are counted."""
    registrations_per_ip: int = setting("BEACON_REGISTRATIONS_PER_IP", 10)
    """Registration attempts allowed from one client address (an IPv6 /64) per ``registration_window``: each
    one hashes a password with argon2 and may create an account, so one client cannot fill the users table or
    the CPU."""
    registration_window: int = setting("BEACON_REGISTRATION_WINDOW", 3600)
    """Seconds over which registration attempts are counted."""
    password_reset_ttl: int = setting("BEACON_PASSWORD_RESET_TTL", 3600, minimum=60)
    """Seconds a "forgot password" link works (it also dies once used or once the password changes)."""
    password_resets_per_email: int = setting("BEACON_PASSWORD_RESETS_PER_EMAIL", 3)
    """Reset links that may be asked for one e-mail address per ``password_reset_window``, whether or not an
    account has it (so the limit tells nothing about which accounts exist)."""
    password_resets_per_ip: int = setting("BEACON_PASSWORD_RESETS_PER_IP", 10)
    """Reset links that may be asked for from one client address (an IPv6 /64) per ``password_reset_window``."""
    password_reset_window: int = setting("BEACON_PASSWORD_RESET_WINDOW", 3600, minimum=1)
    """Seconds over which reset requests are counted."""
    api_key_hourly_limit: int = setting("BEACON_API_KEY_HOURLY_LIMIT", 600, minimum=0)
    """Requests one API key may make in an hour counted from its first request of the window (Stats and Sites
    APIs; 0: no limit). 600 is Plausible's documented default ("API keys have a rate limit of 600 requests per
    hour by default")."""
    session_max_age: int = setting("BEACON_SESSION_MAX_AGE", 14 * 24 * 3600, minimum=60)
    """Seconds a browser session lasts after its last request (sliding)."""
    session_lifetime: int = setting("BEACON_SESSION_LIFETIME", 30 * 24 * 3600, minimum=60)
    """Seconds a browser session lasts after sign-in at most, however active it is (absolute)."""


@dataclass(frozen=True)
class RealtimeSettings:
    heartbeat_interval: float = setting("BEACON_WS_HEARTBEAT_INTERVAL", 25.0)
    """Seconds between two pings the realtime process sends on every WebSocket."""
    heartbeat_timeout: float = setting("BEACON_WS_HEARTBEAT_TIMEOUT", 75.0)
    """A WebSocket from which nothing (not even a pong) arrived for this long is closed as dead."""
    send_buffer_limit: int = setting("BEACON_WS_SEND_BUFFER_LIMIT", 1_048_576)
    """Bytes one client may leave unread (beyond the kernel's socket buffer) before it is dropped as too slow."""
    stats_interval: float = setting("BEACON_WS_STATS_INTERVAL", 2.0)
    """Seconds between two writes of this process's connection statistics to Redis."""


@dataclass(frozen=True)
class IngestSettings:
    batch_size: int = setting("BEACON_INGEST_BATCH_SIZE", 1000, minimum=0)
    """Events after which a batch closes at once."""
    batch_wait_ms: float = setting("BEACON_INGEST_BATCH_WAIT_MS", 4.0, minimum=0)
    """Milliseconds a batch stays open for more events after its first one arrived."""
    writers: int = setting("BEACON_INGEST_WRITERS", 2, minimum=0)
    """Batches of one process in flight at once, each on its own connection (at least 1)."""
    retry_after: int = setting("BEACON_INGEST_RETRY_AFTER", 5, minimum=0)
    """Seconds announced in ``Retry-After`` when PostgreSQL cannot take events."""
    hold_seconds: float = setting("BEACON_INGEST_HOLD_SECONDS", 20.0, minimum=0)
    """Seconds a batch waits for PostgreSQL to come back (a failover) before its requests answer 503; the
    requests are held meanwhile (0: refuse at once). Keep it below Nginx's ``proxy_read_timeout`` (30 s)."""
    rate_per_ip: int = setting("BEACON_INGEST_RATE_PER_IP", 600, minimum=0)
    """Events accepted per client IP per window (0: no limit)."""
    rate_per_site: int = setting("BEACON_INGEST_RATE_PER_SITE", 100_000, minimum=0)
    """Events accepted per site per window (0: no limit)."""
    rate_window: int = setting("BEACON_INGEST_RATE_WINDOW", 60, minimum=0)
    """Length of a rate-limit window in seconds."""
    live_interval_ms: float = setting("BEACON_INGEST_LIVE_INTERVAL_MS", 250.0, minimum=0)
    """Live messages of one site are coalesced into at most one per this interval."""
    session_timeout: int = setting("BEACON_INGEST_SESSION_TIMEOUT", 1800, minimum=0)
    """Seconds of inactivity that end a visit."""
    presence_window: int = setting("BEACON_INGEST_PRESENCE_WINDOW", 300, minimum=0)
    """A visitor seen within this many seconds counts as live."""
    honour_forwarded_for: bool = setting("BEACON_INGEST_HONOUR_FORWARDED_FOR", True)
    """The visitor's address is the first one in the client's X-Forwarded-For, as in Plausible (0: the
    address Nginx saw). Rate limits always use the address Nginx saw."""


RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
"""Seconds to wait before each delivery attempt of a webhook (immediately, 5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 10 h): the schedule Svix publishes for Standard Webhooks senders; eight attempts over about 27 hours."""


@dataclass(frozen=True)
class IntegrationsSettings:
    allow_private: bool = setting("BEACON_WEBHOOKS_ALLOW_PRIVATE", False)
    """Deliver webhooks to loopback and private addresses (and over plain http): for tests and `make run`
    only (``BEACON_WEBHOOKS_ALLOW_PRIVATE=1``)."""
    retry_scale: float = setting("BEACON_WEBHOOKS_RETRY_SCALE", 1.0, minimum=0)
    """Factor applied to every delay of :data:`RETRY_SCHEDULE` (tests compress it, e.g. 0.001)."""
    lease: float = setting("BEACON_WEBHOOKS_LEASE", 60.0, minimum=0)
    """Seconds a worker owns a delivery it is sending; a delivery whose worker died is sent again after this."""
    connect_timeout: float = setting("BEACON_WEBHOOKS_CONNECT_TIMEOUT", 5.0, minimum=0)
    """Seconds to open a connection to a webhook receiver."""
    read_timeout: float = setting("BEACON_WEBHOOKS_READ_TIMEOUT", 10.0, minimum=0)
    """Seconds to wait for a receiver's answer (and between two chunks of it)."""
    response_capture: int = setting("BEACON_WEBHOOKS_RESPONSE_CAPTURE", 2048, minimum=0)
    """Bytes of each receiver's answer kept in the delivery log; the rest is never read."""
    max_endpoints: int = setting("BEACON_WEBHOOKS_MAX_ENDPOINTS", 20, minimum=0)
    """Webhook endpoints one site may have."""
    goal_interval: float = setting("BEACON_WEBHOOKS_GOAL_INTERVAL", 60.0, minimum=0)
    """Seconds over which goal conversions are coalesced into one ``goal.completed`` delivery per endpoint."""
    disable_after: float = setting("BEACON_WEBHOOKS_DISABLE_AFTER", 5 * 86400.0, minimum=0)
    """An endpoint whose deliveries have failed for this many seconds in a row is disabled."""
    log_retention_days: int = setting("BEACON_WEBHOOKS_LOG_RETENTION_DAYS", 30, minimum=0)
    """Days the delivery log (deliveries and their attempts) is kept."""
    smtp_url: str = setting("BEACON_SMTP_URL", "")
    """``smtp://user:password@host:port`` (STARTTLS when offered) or ``smtps://`` (TLS); empty: no mail."""
    mail_from: str = setting("BEACON_MAIL_FROM", "Beacon <beacon@localhost>")
    """The From address of Beacon's emails."""

    def retry_delays(self) -> tuple[float, ...]:
        """The retry schedule in seconds, scaled by :attr:`retry_scale`."""
        return tuple(delay * self.retry_scale for delay in RETRY_SCHEDULE)


@dataclass(frozen=True)
class ImportSettings:
    max_upload: int = setting("BEACON_IMPORT_MAX_UPLOAD", 2 * 1024**3, minimum=1)
    """Bytes an uploaded export may have at most; a larger one is refused."""
    min_free_disk: int = setting("BEACON_IMPORT_MIN_FREE_DISK", 1024**3, minimum=0)
    """Bytes to keep free on the imports directory's file system: an upload that would leave less is stopped
    with 507 and removed, an export job that would fails (0: no check). Bounds what uploads waiting for the worker
    and export zips kept for ``BEACON_IMPORT_EXPORT_TTL`` can take of the disk."""
    max_entries: int = setting("BEACON_IMPORT_MAX_ENTRIES", 64, minimum=1)
    """Entries a zip may have at most."""
    max_entry_size: int = setting("BEACON_IMPORT_MAX_ENTRY_SIZE", 8 * 1024**3, minimum=1)
    """Uncompressed bytes of one zip entry at most."""
    max_ratio: int = setting("BEACON_IMPORT_MAX_RATIO", 200, minimum=1)
    """Largest uncompressed/compressed ratio of a zip entry: a zip bomb's is in the thousands, CSV compresses
    5-20 times."""
    batch_rows: int = setting("BEACON_IMPORT_BATCH_ROWS", 5000, minimum=1)
    """Rows written per transaction; the cursor advances with each."""
    lease: float = setting("BEACON_IMPORT_LEASE", 120.0, minimum=0.1)
    """Seconds a job owns an import between two batches; an import whose job died is resumed after this."""
    export_job_events: int = setting("BEACON_IMPORT_EXPORT_JOB_EVENTS", 1_000_000, minimum=1)
    """A site with at least this many events is "large": the imports page's Export builds its zip in a job and
    links (and emails) it instead of streaming it."""
    export_ttl: float = setting("BEACON_IMPORT_EXPORT_TTL", 7 * 86400.0, minimum=1)
    """Seconds an export job's file and download link live; then it is purged."""


@dataclass(frozen=True)
class ObservabilitySettings:
    metrics_dir: str = setting("PROMETHEUS_MULTIPROC_DIR", "")
    """Directory of prometheus-client's multiprocess files for this watcher (set per watcher by circus.ini);
    empty: each process reports only its own figures."""
    worker_metrics_port: int = setting("BEACON_WORKER_METRICS_PORT", 9191, minimum=1, maximum=65535)
    """Loopback port of the workers' ``/metrics`` (Dramatiq's Prometheus middleware)."""
    scheduler_metrics_port: int = setting("BEACON_SCHEDULER_METRICS_PORT", 9192, minimum=1, maximum=65535)
    """Loopback port of the scheduler's ``/metrics``."""
    sentry_dsn: str = setting("BEACON_SENTRY_DSN", "")
    """Sentry DSN errors are sent to; empty: nothing is sent anywhere."""
    sentry_sample_rate: float = setting("BEACON_SENTRY_SAMPLE_RATE", 1.0, minimum=0.0, maximum=1.0)
    """Share of errors sent to Sentry (0 to 1)."""
    sentry_traces_sample_rate: float = setting("BEACON_SENTRY_TRACES_SAMPLE_RATE", 0.0, minimum=0.0, maximum=1.0)
    """Share of requests and jobs traced for Sentry's performance monitoring (0 to 1; 0: none)."""
    sentry_environment: str = ""
    """Sentry ``environment`` tag (``BEACON_SENTRY_ENVIRONMENT``; default: ``BEACON_ENV``)."""
    release: str = ""
    """The deployed version reported to Sentry (``BEACON_RELEASE``; default: the installed package's)."""


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
    database: DatabaseSettings
    redis: RedisSettings
    server: ServerSettings
    security: SecuritySettings
    http_client: HttpClientSettings
    workers: WorkerSettings
    paths: PathSettings
    env: str = setting("BEACON_ENV", "production", choices=("production", "development"))
    """``production`` or ``development``."""
    analytics: AnalyticsSettings = field(default_factory=AnalyticsSettings)
    accounts: AccountSettings = field(default_factory=AccountSettings)
    realtime: RealtimeSettings = field(default_factory=RealtimeSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    integrations: IntegrationsSettings = field(default_factory=IntegrationsSettings)
    imports: ImportSettings = field(default_factory=ImportSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    log_level: str = setting("BEACON_LOG_LEVEL", "INFO")
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

METRICS_PORTS = {
    "worker_metrics": 9191,
    "scheduler_metrics": 9192,
}
"""Loopback ports of the processes that serve only ``/metrics`` (``BEACON_<NAME>_PORT``); the HTTP
processes serve theirs on :data:`DEFAULT_PORTS`."""


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


def _switch(name: str, raw: str) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true or false), got {value!r}")


def _convert(name: str, raw: str, kind: type) -> Any:
    if kind is bool:
        return _switch(name, raw)
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    return raw.strip()


def _check(name: str, value: Any, minimum: float | None, choices: tuple[str, ...] | None,
           maximum: float | None = None) -> Any:
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum:g} and {maximum:g}, got {value}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must not be negative" if minimum == 0 else
                          f"{name} must be at least {minimum}, got {value}")
    if choices is not None:
        value = value.lower()
        if value not in choices:
            raise ConfigError(f"{name} must be {', '.join(choices[:-1])} or {choices[-1]}, got {value!r}")
    return value


S = TypeVar("S")


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """The resolved field types of ``cls`` (annotations are strings under ``from __future__``)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def read_field(cls: type[Any], name: str, env: Mapping[str, str]) -> Any:
    """Field ``name`` of settings dataclass ``cls`` from ``env``, by its :func:`setting`/:func:`required`
    declaration; raises :class:`ConfigError` naming the variable when it is missing or invalid."""
    return _read(cls, next(spec for spec in fields(cls) if spec.name == name), env)


def _read(cls: type[Any], spec: Field[Any], env: Mapping[str, str]) -> Any:
    variable: str = spec.metadata["env"]
    raw = env.get(variable, "")
    if raw.strip():
        return _check(variable, _convert(variable, raw, _hints(cls)[spec.name]), spec.metadata.get("minimum"),
                      spec.metadata.get("choices"), spec.metadata.get("maximum"))
    if spec.metadata.get("required"):
        raise ConfigError(f"missing required setting {variable}")
    return spec.default


def read_section(cls: type[S], env: Mapping[str, str], **given: Any) -> S:
    """Settings dataclass ``cls`` from ``env``: every field declared with :func:`setting` or :func:`required`
    read from its variable, the others taken from ``given`` (values derived by the caller)."""
    values = dict(given)
    for spec in fields(cls):  # type: ignore[arg-type]
        if spec.name not in values and "env" in spec.metadata:
            values[spec.name] = _read(cls, spec, env)
    return cls(**values)


def _timeouts(http_timeout: float, query_budget: float) -> None:
    if not 0 < query_budget < http_timeout:
        raise ConfigError(f"BEACON_ANALYTICS_QUERY_BUDGET ({query_budget:g} s) must be positive and below "
                          f"BEACON_HTTP_TIMEOUT ({http_timeout:g} s): the caller would give up on running work")


def _ports(env: Mapping[str, str]) -> dict[str, int]:
    """``BEACON_<PROCESS>_PORT`` for each process, :data:`DEFAULT_PORTS` where unset."""
    ports: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        variable = f"BEACON_{name.upper()}_PORT"
        raw = env.get(variable, "")
        ports[name] = _convert(variable, raw, int) if raw.strip() else default
        if not 0 < ports[name] < 65536:
            raise ConfigError(f"{variable} must be between 1 and 65535, got {ports[name]}")
    return ports


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``environ`` (default: the process environment plus ``BEACON_ENV_FILE``).

    Every field names its variable and its default once, in its dataclass (:func:`setting`); only what is
    derived from other values (ports and service URLs, paths under the state directory) is computed here.
    Raises :class:`ConfigError` naming the first variable that is missing or invalid.
    """
    env: dict[str, str] = {}
    source = dict(os.environ if environ is None else environ)
    if source.get("BEACON_ENV_FILE"):
        env.update(read_env_file(Path(source["BEACON_ENV_FILE"])))
    env.update(source)

    app_env: str = read_field(Settings, "env", env)
    redis = read_section(RedisSettings, env, sentinels=_sentinels(env.get("BEACON_REDIS_SENTINELS", "")),
                         sentinel_master=env.get("BEACON_REDIS_SENTINEL_MASTER", "").strip() or "beacon")
    if any(char.isspace() for char in redis.key_prefix):
        # Ingest's Redis scripts receive key names space-separated in one argument.
        raise ConfigError("BEACON_REDIS_PREFIX must be non-empty and contain no spaces")
    security = read_section(SecuritySettings, env)
    if app_env == "production" and len(security.secret_key) < 32:
        raise ConfigError("BEACON_SECRET_KEY must be at least 32 characters in production")

    bind_host: str = read_field(ServerSettings, "bind_host", env)
    ports = _ports(env)
    service_urls = {name: env.get(f"BEACON_{name.upper()}_URL") or f"http://{bind_host}:{port}"
                    for name, port in ports.items()}
    base_url: str = read_field(ServerSettings, "base_url", env)

    http_client = read_section(HttpClientSettings, env)
    analytics = read_section(AnalyticsSettings, env)
    _timeouts(http_client.timeout, analytics.query_budget)

    home = Path(env.get("BEACON_HOME") or CODE_DIR)
    state_dir = Path(env.get("BEACON_STATE_DIR") or home / "var")
    return Settings(
        env=app_env,
        database=read_section(DatabaseSettings, env,
                              url=_database_url(read_field(DatabaseSettings, "url", env)),
                              patroni_urls=tuple(url.strip().rstrip("/")
                                                 for url in env.get("BEACON_PATRONI_URLS", "").split(",")
                                                 if url.strip())),
        redis=redis,
        server=ServerSettings(bind_host=bind_host, ports=ports, service_urls=service_urls,
                              base_url=base_url.rstrip("/")),
        security=security,
        http_client=http_client,
        workers=read_section(WorkerSettings, env),
        analytics=analytics,
        paths=PathSettings(
            home=home,
            log_dir=Path(env.get("BEACON_LOG_DIR") or state_dir / "log"),
            run_dir=Path(env.get("BEACON_RUN_DIR") or state_dir / "run"),
            state_dir=state_dir,
            backup_dir=Path(env.get("BEACON_BACKUP_DIR") or state_dir / "backups"),
            init_sql_dir=Path(env.get("BEACON_INIT_SQL_DIR") or home / "backups"),
        ),
        accounts=read_section(AccountSettings, env),
        realtime=read_section(RealtimeSettings, env),
        ingest=read_section(IngestSettings, env),
        integrations=read_section(IntegrationsSettings, env),
        imports=read_section(ImportSettings, env),
        observability=read_section(
            ObservabilitySettings, env,
            sentry_environment=env.get("BEACON_SENTRY_ENVIRONMENT", "").strip() or app_env,
            release=env.get("BEACON_RELEASE", "").strip() or _installed_version()),
        log_level=read_field(Settings, "log_level", env).upper(),
    )


def _installed_version() -> str:
    try:
        return f"beacon@{version('beacon')}"
    except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
        return "beacon@unknown"


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
