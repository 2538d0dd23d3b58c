"""Prometheus metrics of every Beacon process (prometheus-client), and how each process exposes them.

Every family is declared here, once, so the names and label sets are one list (documented metric by metric
in docs/operations.md, section "Metrics"). Labels are bounded: a route *template*, a status *class*, a
drop reason, a planner path, a queue or job name; never a site, a user, a path as requested or an address.

Several processes of one watcher share its figures through prometheus-client's multiprocess mode: circus.ini
gives each watcher its own ``PROMETHEUS_MULTIPROC_DIR``, which :mod:`app.core.metrics_hooks` empties when the
watcher starts and whose files of a process that exited it retires, so any process
of the watcher answers ``/metrics`` for all of them. Without that variable (tests, one-off commands) each
process reports its own figures.

Nothing is served from here on a public address: HTTP processes answer ``GET /metrics`` on their own
loopback port (Nginx never routes it), workers and the scheduler on theirs (docs/operations.md).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis
import redis.asyncio as aioredis
from litestar import Litestar, Request, Response, get
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext

logger = logging.getLogger("beacon.metrics")
access_logger = logging.getLogger("beacon.http.access")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# -- HTTP (api, ingest, analytics, integrations, compute) -------------------------------------------------
HTTP_REQUESTS = Counter(
    "beacon_http_requests_total", "HTTP requests answered, by route template, method and status class.",
    ["route", "method", "status_class"],
)
HTTP_DURATION = Histogram(
    "beacon_http_request_duration_seconds", "Time from request to the end of the answer, by route template.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
# No in-progress gauge: two more writes into the multiprocess files on every request (the ingest hot path)
# for a figure that ingest's writers_busy and the duration histogram already show (docs/benchmarks.md).

# -- ingest -----------------------------------------------------------------------------------------------
INGEST_ACCEPTED = Counter("beacon_ingest_events_accepted_total", "Events stored (committed before the 202).")
INGEST_DROPPED = Counter(
    "beacon_ingest_events_dropped_total",
    "Events not stored, by reason: bot, unknown_site, excluded, rate_limited, invalid, spam.",
    ["reason"],
)
INGEST_BATCH_SIZE = Histogram(
    "beacon_ingest_batch_size_events", "Events per batch written to PostgreSQL.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
INGEST_COMMIT_SECONDS = Histogram(
    "beacon_ingest_commit_duration_seconds", "Time to write and commit one batch.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
INGEST_WRITERS_BUSY = Gauge(
    "beacon_ingest_writers_busy", "Batch writers holding a batch in flight right now.",
    multiprocess_mode="livesum",
)
INGEST_UNAVAILABLE = Counter(
    "beacon_ingest_unavailable_total", "Events answered 503 because PostgreSQL could not take them.",
)

# -- realtime ---------------------------------------------------------------------------------------------
REALTIME_CONNECTIONS = Gauge(
    "beacon_realtime_connections", "Open WebSocket connections.", multiprocess_mode="livesum",
)
REALTIME_ROOMS = Gauge("beacon_realtime_rooms", "Rooms with at least one member.", multiprocess_mode="livesum")
REALTIME_MESSAGES = Counter("beacon_realtime_messages_sent_total", "Messages sent to WebSocket clients.")
REALTIME_SLOW_DROPPED = Counter(
    "beacon_realtime_slow_clients_dropped_total", "Clients disconnected for leaving too much unread.",
)

# -- analytics --------------------------------------------------------------------------------------------
ANALYTICS_QUERY_SECONDS = Histogram(
    "beacon_analytics_query_duration_seconds",
    "Time to answer one query from PostgreSQL, by planner path (rollups, visits, events, join).",
    ["path"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ANALYTICS_CACHE = Counter(
    "beacon_analytics_cache_requests_total", "Query answers looked up in the Redis cache, by result (hit, miss).",
    ["result"],
)
ANALYTICS_ROLLUP_LAG = Gauge(
    "beacon_analytics_rollup_lag_seconds",
    "Age of the oldest rollup that is behind its events, over every site (0: none behind).",
    multiprocess_mode="livemostrecent",
)
ANALYTICS_ROLLUPS_BEHIND = Gauge(
    "beacon_analytics_rollup_sites_behind", "Sites whose rollups are behind their events.",
    multiprocess_mode="livemostrecent",
)

# -- shared clients ---------------------------------------------------------------------------------------
DB_POOL_CHECKED_OUT = Gauge(
    "beacon_db_pool_connections_in_use", "PostgreSQL connections checked out of the pool.",
    multiprocess_mode="livesum",
)
DB_ERRORS = Counter(
    "beacon_db_errors_total", "Errors raised by PostgreSQL or its connections, by kind (connection, statement).",
    ["kind"],
)
REDIS_ERRORS = Counter(
    "beacon_redis_errors_total", "Redis client errors, by operation (connect, command).", ["operation"],
)

# -- workers and scheduler ------------------------------------------------------------------------------
# Queue depth and dead letters are read from Redis at scrape time (workers/observability.py).
SCHEDULER_LAST_RUN = Gauge(
    "beacon_scheduler_last_run_timestamp_seconds", "Unix time a periodic job was last enqueued.", ["job"],
    multiprocess_mode="mostrecent",
)

DROP_REASONS = ("bot", "unknown_site", "excluded", "rate_limited", "invalid", "spam")
"""Why ingest drops an event (CONVENTIONS.md, pipelines); each is pre-set to 0 so rates exist from the start."""


def status_class(status: int) -> str:
    """``"2xx"`` for 200-299 and so on."""
    return f"{status // 100}xx"


def registry() -> CollectorRegistry:
    """What ``/metrics`` exposes: every process of the watcher in multiprocess mode, else this process."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected, path=directory)  # type: ignore[no-untyped-call]
    return collected


def exposition(extra: Iterable[Collector] = ()) -> bytes:
    """The text exposition of :func:`registry` plus ``extra`` collectors (read at scrape time)."""
    target = registry()
    if not extra:
        return generate_latest(target)
    combined = CollectorRegistry(auto_describe=False)
    for collector in (target, *extra):
        combined.register(collector)
    return generate_latest(combined)


MetricsRefresh = Callable[[Litestar], Awaitable[None]]
"""Brings gauges read at scrape time up to date (e.g. analytics' rollup lag) before ``/metrics`` answers."""


def metrics_route(refresh: MetricsRefresh | None = None) -> HTTPRouteHandler:
    """``GET /metrics``: Prometheus exposition of this watcher (text format 0.0.4), on its loopback port only.

    A failing ``refresh`` is logged and the figures it keeps are served as they were: a scrape never fails
    because one source is down.
    """

    @get("/metrics", include_in_schema=False, media_type=CONTENT_TYPE_LATEST)
    async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
        if refresh is not None:
            try:
                await refresh(request.app)
            except Exception as exc:
                logger.warning("metrics refresh failed", extra={"error": str(exc)})
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    return metrics


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/api/sites/{domain:str}``), or ``<unmatched>`` (404, 405)."""
    template = scope.get("path_template")
    return str(template) if template else "<unmatched>"


class HttpMetricsMiddleware:
    """Counts every HTTP request by route template and status class and times it (pure ASGI: cheap).

    An answer with an error status (4xx, 5xx) is also logged, one line with the request id: Nginx's access log
    holds every public request, this holds the internal calls too, so one failed request can be followed from
    the api into the service that refused it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_template(scope)
            sent = str(scope.get("method", "GET"))
            method = sent if sent in _METHODS else "OTHER"
            elapsed = time.perf_counter() - started
            key = (route, method, status)
            children = _http_children.get(key)
            if children is None:
                # labels() validates and locks on every call: keep each (bounded) combination's children.
                children = _http_children[key] = (HTTP_REQUESTS.labels(route, method, status_class(status)),
                                                  HTTP_DURATION.labels(route, method))
            children[0].inc()
            children[1].observe(elapsed)
            if status >= 400:
                access_logger.info("answered with an error", extra={
                    "method": method, "route": route, "status": status, "ms": round(elapsed * 1000, 1)})


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def preset_ingest_reasons() -> None:
    """Create every drop reason's series at 0, so a rate of a reason never seen yet is 0, not absent."""
    for reason in DROP_REASONS:
        INGEST_DROPPED.labels(reason)


# -- standalone exposition (workers, scheduler) -----------------------------------------------------------
class _ReusePortServer(ThreadingHTTPServer):
    """Several processes of one watcher bind the same loopback port; any of them answers for all."""

    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def serve_metrics(host: str, port: int, extra: Callable[[], Iterable[Collector]] = tuple) -> ThreadingHTTPServer:
    """Serve ``GET /metrics`` on ``host:port`` in a daemon thread; returns the server (``shutdown()`` stops it).

    Raises:
        OSError: the port cannot be bound.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            try:
                body = exposition(tuple(extra()))
            except Exception:  # a scrape must not kill the thread; the operator sees the log line
                logger.exception("metrics exposition failed")
                self.send_error(500)
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = _ReusePortServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name=f"metrics:{port}", daemon=True).start()
    return server


# -- database pool and Redis client ---------------------------------------------------------------------
def instrument_engine(engine: Engine) -> None:
    """Count ``engine``'s pool check-outs in use and its errors (SQLAlchemy events; one engine per process)."""

    def checked_out(*_: Any) -> None:
        DB_POOL_CHECKED_OUT.inc()

    def checked_in(*_: Any) -> None:
        DB_POOL_CHECKED_OUT.dec()

    def failed(context: ExceptionContext) -> None:
        DB_ERRORS.labels("connection" if context.is_disconnect or context.connection is None else "statement").inc()

    event.listen(engine, "checkout", checked_out)
    event.listen(engine, "checkin", checked_in)
    event.listen(engine, "handle_error", failed)


class CountingConnection(aioredis.Connection):
    """An asyncio Redis connection that counts its failures in ``beacon_redis_errors_total``."""

    async def connect(self) -> None:
        try:
            await super().connect()  # type: ignore[no-untyped-call]
        except (RedisError, OSError):
            REDIS_ERRORS.labels("connect").inc()
            raise

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            REDIS_ERRORS.labels("command").inc()
            raise


class CountingSyncConnection(redis.Connection):
    """The blocking client's counterpart of :class:`CountingConnection` (workers, scheduler)."""

    def connect(self) -> None:
        try:
            super().connect()  # type: ignore[no-untyped-call]
        except (RedisError, OSError):
            REDIS_ERRORS.labels("connect").inc()
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            REDIS_ERRORS.labels("command").inc()
            raise
