"""Durable batched writes: concurrent requests share one transaction, each is answered after it commits.

A request hands its rows to :meth:`BatchWriter.submit` and waits. One task per process drains the queue:
a batch closes when it holds ``batch_size`` events or ``batch_wait_ms`` after its first event arrived,
whichever comes first. Up to ``writers`` batches are written at once, each on a connection of its own, so
one batch's round trips and COMMIT (a WAL flush) overlap the next batch's; when all are busy the queue
fills up, so under load batches grow by themselves and the per-event cost falls. A batch is one
transaction: the events by binary ``COPY``; PostgreSQL folds them into their visits (``sessions``) in the
same transaction (the trigger of migration 0010), so the visits are whatever the stored events say, whoever
wrote them. Only when ``COMMIT`` returned are the waiting requests released with success; any error fails
every request of the batch (they answer 503 and the tracker may resend), so nothing is acknowledged that is
not stored.

When PostgreSQL is down the writer fails fast for a second, then tries to connect again; it needs no
restart when PostgreSQL is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import redis.asyncio as aioredis
from psycopg.types.json import Jsonb

from app.core.metrics import INGEST_BATCH_SIZE, INGEST_COMMIT_SECONDS, INGEST_WRITERS_BUSY
from app.core.redis import Keys
from app.core.settings import IngestSettings

logger = logging.getLogger("beacon.ingest")

COLUMNS = (
    "site_id", "timestamp", "name", "visitor_id", "session_id", "hostname", "pathname", "referrer",
    "referrer_source", "channel", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
    "browser", "browser_version", "os", "os_version", "device", "country", "interactive", "revenue_amount",
    "revenue_currency", "props",
)
TYPES = (
    "int8", "timestamptz", "varchar", "int8", "int8", "varchar", "varchar", "varchar",
    "varchar", "varchar", "varchar", "varchar", "varchar", "varchar", "varchar",
    "varchar", "varchar", "varchar", "varchar", "varchar", "text", "bool", "numeric",
    "text", "jsonb",
)
COPY_SQL = f"COPY events ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
ENGAGEMENT = "engagement"
ENGAGEMENT_COLUMNS = ("site_id", "timestamp", "visitor_id", "session_id", "hostname", "pathname",
                      "scroll_depth", "engagement_time", "props")
ENGAGEMENT_TYPES = ("int8", "timestamptz", "int8", "int8", "varchar", "varchar", "int2", "int4", "jsonb")
ENGAGEMENT_COPY_SQL = f"COPY engagements ({', '.join(ENGAGEMENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
"""Engagement events go to their own table (migration 0013): they are never events, pageviews or visits."""

# Find or start the visits of a batch's rows, atomically across processes and in the rows' order. ARGV[1] is
# the timeout, ARGV[2] the visit keys' prefix, ARGV[3] four space-separated fields per row: site id, visitor id
# under today's salt, under yesterday's (or the same), and a fresh visit id to use if none is running. A visit
# that began before the salt rotated continues under its old visitor id, so visits run across midnight.
# Returns, per row, the visit id and 1 if the previous visitor id is to be used, space-separated. (The rows
# travel as one string rather than as KEYS and ARGV: Redis client libraries encode each argument in Python,
# which cost more than the script. Beacon uses one Redis server, not a cluster, so undeclared keys are fine.)
SESSION_SCRIPT = """
local ttl, prefix, fields, out = ARGV[1], ARGV[2], {}, {}
for field in string.gmatch(ARGV[3], '%S+') do fields[#fields + 1] = field end
for i = 1, #fields, 4 do
  local cur = prefix .. fields[i] .. ':' .. fields[i + 1]
  local prev = prefix .. fields[i] .. ':' .. fields[i + 2]
  local id = redis.call('GET', cur)
  local use_prev = '0'
  if id then
    redis.call('EXPIRE', cur, ttl)
  else
    if prev ~= cur then id = redis.call('GET', prev) end
    if id then
      redis.call('EXPIRE', prev, ttl)
      use_prev = '1'
    else
      id = fields[i + 3]
      redis.call('SET', cur, id, 'EX', ttl)
    end
  end
  out[#out + 1] = id
  out[#out + 1] = use_prev
end
return table.concat(out, ' ')
"""


# Fixed-window limits. ARGV[1] holds, space-separated, for each request of a batch: how many keys it has, its
# per-client and per-site limits, the keys' lifetime, then its keys (the client's, then its sites'). The
# script runs the requests in order, all inside one atomic call, so concurrent requests in any number of
# processes see one order: a request whose counters are all below their limits increments them all; otherwise
# none is incremented. Returns, space-separated, per request 0 or the index of the key whose limit was reached.
# (One string rather than KEYS and ARGV, as for SESSION_SCRIPT: cheaper to encode.)
RATE_SCRIPT = """
local f, out, a = {}, {}, 1
for field in string.gmatch(ARGV[1], '%S+') do f[#f + 1] = field end
while a <= #f do
  local n, per_ip, per_site, ttl = tonumber(f[a]), tonumber(f[a + 1]), tonumber(f[a + 2]), f[a + 3]
  local k = a + 4
  local hit = 0
  for i = 0, n - 1 do
    local limit = (i == 0) and per_ip or per_site
    if limit > 0 and tonumber(redis.call('GET', f[k + i]) or '0') >= limit then
      hit = i + 1
      break
    end
  end
  if hit == 0 then
    for i = 0, n - 1 do
      if redis.call('INCR', f[k + i]) == 1 then redis.call('EXPIRE', f[k + i], ttl) end
    end
  end
  out[#out + 1] = hit
  a = k + n
end
return table.concat(out, ' ')
"""


class Unavailable(Exception):
    """The batch could not be committed; nothing of it is stored."""


class Rejected(Exception):
    """PostgreSQL refused this request's data (a value the edge validation let through); nothing is stored."""


class RateLimited(Exception):
    """A limit of the request's client or site was reached; nothing of it is stored."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


REFUSED = (psycopg.DataError, psycopg.IntegrityError, psycopg.errors.ProgramLimitExceeded)
"""PostgreSQL refusing what a batch holds, not being unreachable: the batch is written again one request at a
time so that only the culprit fails. ``ProgramLimitExceeded`` is an index row over 2,704 bytes (the ingest
service cuts what it stores to fit its indexes; an index an operator adds may not fit)."""


@dataclass(frozen=True)
class LimitCheck:
    """The counters one request must pass (see ``RATE_SCRIPT``), checked when its batch closes."""

    keys: list[str]
    args: list[int]
    retry_after: int


@dataclass(slots=True)
class Row:
    """One event for one site, enriched, waiting for its visit and its transaction."""

    site_id: int
    timestamp: datetime
    name: str
    visitor_id: int
    previous_visitor_id: int
    """The visitor id under yesterday's salt (equal to ``visitor_id`` when there is none)."""
    hostname: str
    pathname: str
    referrer: str
    referrer_source: str
    channel: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    utm_term: str
    utm_content: str
    browser: str
    browser_version: str
    os: str
    os_version: str
    device: str
    country: str
    interactive: bool
    revenue_amount: Decimal | None
    revenue_currency: str | None
    props: dict[str, str]
    session_id: int = 0
    domain: str = ""
    scroll_depth: int | None = None
    """Engagement events only: deepest scroll, percent."""
    engagement_time: int = 0
    """Engagement events only: engaged milliseconds."""

    def values(self) -> tuple[Any, ...]:
        return (self.site_id, self.timestamp, self.name, self.visitor_id, self.session_id, self.hostname,
                self.pathname, self.referrer, self.referrer_source, self.channel, self.utm_source,
                self.utm_medium, self.utm_campaign, self.utm_term, self.utm_content, self.browser,
                self.browser_version, self.os, self.os_version, self.device, self.country, self.interactive,
                self.revenue_amount, self.revenue_currency, Jsonb(self.props))

    def engagement_values(self) -> tuple[Any, ...]:
        return (self.site_id, self.timestamp, self.visitor_id, self.session_id, self.hostname, self.pathname,
                self.scroll_depth, self.engagement_time, Jsonb(self.props))


@dataclass(slots=True)
class _Pending:
    rows: Sequence[Row]
    future: asyncio.Future[None]
    limit: LimitCheck | None = None


class BatchWriter:
    """Collects rows from concurrent requests and commits them together; see the module docstring."""

    def __init__(self, conninfo: str, redis: aioredis.Redis, keys: Keys, settings: IngestSettings,
                 application_name: str = "beacon-ingest-writer") -> None:
        self._conninfo = conninfo
        self._application_name = application_name
        self._redis = redis
        self._keys = keys
        self._settings = settings
        self._queue: list[_Pending] = []
        self._queued_events = 0
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        """Connections between batches; a batch takes one and gives it back only if nothing failed."""
        self._slots = asyncio.Semaphore(max(1, settings.writers))
        self._flushing: set[asyncio.Task[None]] = set()
        self._down_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._session_script = redis.register_script(SESSION_SCRIPT)
        self._rate_script = redis.register_script(RATE_SCRIPT)
        self.on_commit: list[Any] = []
        """Callables ``(rows) -> Awaitable[None]`` run after a batch committed (live updates)."""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-batch-writer")

    async def stop(self) -> None:
        """Write what is queued, then close."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close()

    async def submit(self, rows: Sequence[Row], limit: LimitCheck | None = None) -> None:
        """Return once ``rows`` are committed; raise :class:`Unavailable` if they could not be.

        ``limit``: rate-limit counters checked (atomically, in arrival order) when the batch closes, one Redis
        round trip per batch rather than per request; raises :class:`RateLimited` if one is exhausted.
        """
        if time.monotonic() < self._down_until:
            raise Unavailable("database unavailable")
        if self._closing:
            raise Unavailable("shutting down")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(rows, future, limit))
        self._queued_events += len(rows)
        self._wake.set()
        if self._queued_events >= self._settings.batch_size:
            self._full.set()
        await future

    async def _run(self) -> None:
        wait = self._settings.batch_wait_ms / 1000
        while True:
            await self._wake.wait()
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                continue
            # A free writer first: while every one is busy, the queue keeps filling (bigger batches).
            await self._slots.acquire()
            if not self._closing and self._queued_events < self._settings.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), wait)
            batch, self._queue, self._queued_events = self._queue, [], 0
            self._full.clear()
            if not self._queue:
                self._wake.clear()
            task = asyncio.create_task(self._flush_and_release(batch), name="ingest-batch")
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _flush_and_release(self, batch: list[_Pending]) -> None:
        INGEST_WRITERS_BUSY.inc()
        try:
            await self._flush(batch)
        finally:
            INGEST_WRITERS_BUSY.dec()
            self._slots.release()

    async def _flush(self, batch: list[_Pending], *, limits_applied: bool = False) -> None:
        if not limits_applied:
            batch = await self._apply_limits(batch)
        if not batch:
            return
        rows = [row for pending in batch for row in pending.rows]
        conn: psycopg.AsyncConnection[Any] | None = None
        started = time.perf_counter()
        try:
            await self._assign_sessions(rows)
            conn = await self._write_holding(rows)
            self._idle.append(conn)
            INGEST_COMMIT_SECONDS.observe(time.perf_counter() - started)
            INGEST_BATCH_SIZE.observe(len(rows))
        except REFUSED as exc:
            if conn is not None:
                self._idle.append(conn)  # the transaction was rolled back; the connection is sound
            # One request's data was refused (the edge validation should have caught it): it must not take
            # the others down with it. Write them one request at a time; only the culprit fails.
            logger.warning("batch refused by PostgreSQL: %s", str(exc).splitlines()[0] if str(exc) else repr(exc),
                           extra={"events": len(rows)})
            if len(batch) > 1:
                for pending in batch:
                    await self._flush([pending], limits_applied=True)
            elif not batch[0].future.done():
                batch[0].future.set_exception(Rejected("the event could not be stored as sent"))
            return
        except (psycopg.Error, OSError) as exc:
            self._down_until = time.monotonic() + 1.0
            logger.warning("batch not stored: database unavailable: %s", exc,
                           extra={"events": len(rows), "error": str(exc).splitlines()[0] if str(exc) else repr(exc)})
            await self._discard_connections(conn)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(Unavailable("database unavailable"))
            return
        except Exception as exc:  # a bug must not leave requests hanging
            logger.exception("batch not stored")
            await self._discard_connections(conn)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        for pending in batch:
            if not pending.future.done():
                pending.future.set_result(None)
        counted = [row for row in rows if row.name != ENGAGEMENT]  # live feeds show events, not engagement
        for callback in self.on_commit if counted else ():
            try:
                await callback(counted)
            except Exception as exc:  # live updates are best effort; the events are stored
                logger.warning("after-commit hook failed", extra={"error": str(exc)})

    async def _apply_limits(self, batch: list[_Pending]) -> list[_Pending]:
        """Refuse the requests over a limit; the others go on. Redis down: limits are not enforced."""
        checked = [pending for pending in batch if pending.limit is not None]
        if not checked:
            return batch
        fields: list[str] = []
        for pending in checked:
            assert pending.limit is not None
            fields.extend((str(len(pending.limit.keys)), *map(str, pending.limit.args), *pending.limit.keys))
        try:
            results = (await self._rate_script(args=[" ".join(fields)])).split()
        except Exception as exc:  # limits protect us; an outage of Redis must not stop counting visits
            logger.warning("rate limits not checked: redis unavailable", extra={"error": str(exc)})
            return batch
        refused: set[int] = set()
        for pending, hit in zip(checked, results, strict=True):
            if int(hit):
                assert pending.limit is not None
                refused.add(id(pending))
                reason = "too many events from this address" if int(hit) == 1 else "too many events for this site"
                pending.future.set_exception(RateLimited(reason, pending.limit.retry_after))
        return [pending for pending in batch if id(pending) not in refused]

    async def _discard_connections(self, used: psycopg.AsyncConnection[Any] | None) -> None:
        """Close the failed batch's connection and the idle ones: after a failure none is to be trusted."""
        doomed, self._idle = [*self._idle, *([used] if used is not None else [])], []
        for conn in doomed:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return await psycopg.AsyncConnection.connect(
            self._conninfo, connect_timeout=3, application_name=self._application_name,
            options="-c statement_timeout=10000", autocommit=True,
        )

    async def _write_holding(self, rows: list[Row]) -> psycopg.AsyncConnection[Any]:
        """Write ``rows`` in one transaction; return its connection once committed.

        While PostgreSQL cannot be reached (a failover: the primary is gone, a standby not yet promoted or not
        yet routed to) the batch is tried again every half second for ``hold_seconds``, and its requests wait
        rather than being refused; after that the last error is raised (the requests answer 503). A failure
        while COMMIT was in flight leaves its outcome unknown: the retry may then store the batch twice,
        which is what a tracker resending after a 503 would do too.
        """
        deadline = time.monotonic() + self._settings.hold_seconds
        attempts = 0
        while True:
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = await self._connection()
                await self._write(conn, rows)
                if attempts:
                    logger.info("batch stored after the database came back",
                                extra={"events": len(rows), "attempts": attempts + 1})
                return conn
            except REFUSED:
                if conn is not None:
                    self._idle.append(conn)
                raise
            except (psycopg.Error, OSError) as exc:
                await self._discard_connections(conn)
                if self._closing or time.monotonic() >= deadline:
                    raise
                if not attempts:
                    logger.warning("database unavailable: holding the batch", extra={
                        "events": len(rows), "error": str(exc).splitlines()[0] if str(exc) else repr(exc)})
                attempts += 1
                await asyncio.sleep(0.5)

    async def _assign_sessions(self, rows: list[Row]) -> None:
        """Give each row its visit id from Redis (in order, so one batch's events of a visitor agree)."""
        timeout = self._settings.session_timeout
        prefix = self._keys.prefix
        packed = " ".join(f"{row.site_id} {row.visitor_id} {row.previous_visitor_id} {secrets.randbits(63) or 1}"
                          for row in rows)
        try:
            flat = (await self._session_script(args=[timeout, f"{prefix}visit:", packed])).split()
            results = list(zip(flat[::2], flat[1::2], strict=True))
        except Exception as exc:
            # Redis is for speed and continuity, not for the record: store the events under a visit id
            # derived from the visitor and the half hour, so nothing is lost and visits stay countable.
            logger.warning("visits assigned without Redis", extra={"error": str(exc)})
            for row in rows:
                row.session_id = hash((row.site_id, row.visitor_id, int(row.timestamp.timestamp()) // timeout))
                row.session_id = row.session_id & ((1 << 63) - 1) or 1
            return
        for row, (session_id, use_previous) in zip(rows, results, strict=True):
            row.session_id = int(session_id)
            if int(use_previous):
                row.visitor_id = row.previous_visitor_id

    async def _write(self, conn: psycopg.AsyncConnection[Any], rows: list[Row]) -> None:
        engagements = [row for row in rows if row.name == ENGAGEMENT]
        events = [row for row in rows if row.name != ENGAGEMENT] if engagements else rows
        async with conn.transaction(), conn.cursor() as cur:
            if events:
                async with cur.copy(COPY_SQL) as copy:
                    copy.set_types(list(TYPES))
                    for row in events:
                        await copy.write_row(row.values())
            if engagements:
                async with cur.copy(ENGAGEMENT_COPY_SQL) as copy:
                    copy.set_types(list(ENGAGEMENT_TYPES))
                    for row in engagements:
                        await copy.write_row(row.engagement_values())
