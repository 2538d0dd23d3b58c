"""A site's stats as Plausible's CSV export: a zip of ``imported_*.csv`` files, one row per local day and group.

Plausible CE writes these files when it exports a site and reads them back when it imports one; the columns
are its ``imported_*`` tables' (see ``app/migrations/versions/0011_imports.py``), in the same order. Each file
is named ``<table>_<YYYYMMDD>_<YYYYMMDD>.csv`` after the exported range, as Plausible names them.

Every value is computed by the query engine with the same definitions as the Stats API, per local day of the
site's time zone: ``visitors`` are the day's distinct visitors of the group, ``visits`` its visits with an
event that day (entry pages: ``entrances``; exit pages: ``exits``), ``bounces`` and ``visit_duration`` (total
seconds) those visits' bounces and durations. So a re-imported export answers every daily query as the site
does; over several days visitors add up per day, as imported stats do in Plausible.

Pages carry scroll depth and time on page as Plausible's exporter writes them, from the engagement events of
the day and page: ``total_scroll_depth`` the visits' deepest scrolls summed (percent) over
``total_scroll_depth_visits`` visits with one, ``total_time_on_page`` the engaged time in whole seconds (rounded,
Plausible's ``round(sum / 1000)``) over ``total_time_on_page_visits`` visits that reported some; Beacon's
engagement events all come after its legacy cutoff, the only ones Plausible exports. Re-imported, they merge
into ``scroll_depth`` and ``time_on_page`` (:mod:`services.analytics.imports`).

Not exported (written as zeros or empty): regions and cities (not collected), the custom events' ``link_url``
and ``path``, the pages' ``exits``.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics import engine
from services.analytics.engine import DIRECT, NOT_SET
from services.analytics.query import Condition, Query, local_days

EVERYTHING = 2**31 - 1
STATEMENT_TIMEOUT = "10min"
"""Longest one file's statement may run (the session's default is the database's 30 s)."""
_EMPTY_LABELS = {DIRECT, NOT_SET}


@dataclass(frozen=True)
class Table:
    """One CSV file: the engine dimensions after ``time:day`` and where each CSV column comes from."""

    name: str
    dimensions: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    """(CSV column, source): ``d<n>`` a dimension, a metric name, ``=<value>`` a constant."""
    events: bool = False
    """Event dimensions: no session metrics (and, for custom events, pageviews left out)."""


VISIT_METRICS = (("visitors", "visitors"), ("visits", "visits"), ("visit_duration", "__duration"),
                 ("bounces", "__bounces"), ("pageviews", "pageviews"))
TABLES = (
    Table("imported_visitors", (), (("visitors", "visitors"), ("pageviews", "pageviews"), ("bounces", "__bounces"),
                                    ("visits", "visits"), ("visit_duration", "__duration"))),
    Table("imported_sources", ("visit:source", "visit:referrer", "visit:utm_source+empty", "visit:utm_medium+empty",
                               "visit:utm_campaign+empty", "visit:utm_content+empty", "visit:utm_term+empty",
                               "visit:channel"),
          (("source", "d0"), ("referrer", "d1"), ("utm_source", "d2"), ("utm_medium", "d3"), ("utm_campaign", "d4"),
           ("utm_content", "d5"), ("utm_term", "d6"), ("channel", "d7"), ("pageviews", "pageviews"),
           ("visitors", "visitors"), ("visits", "visits"), ("visit_duration", "__duration"),
           ("bounces", "__bounces"))),
    Table("imported_pages", ("event:hostname", "event:page"),
          (("hostname", "d0"), ("page", "d1"), ("visits", "visits"), ("visitors", "visitors"),
           ("pageviews", "pageviews"), ("exits", "=0"), ("total_scroll_depth", "__scroll_depth_total"),
           ("total_scroll_depth_visits", "__scroll_depth_visits"), ("total_time_on_page", "__time_on_page_total"),
           ("total_time_on_page_visits", "__time_on_page_visits")),
          events=True),
    Table("imported_entry_pages", ("visit:entry_page",),
          (("entry_page", "d0"), ("visitors", "visitors"), ("entrances", "visits"), ("visit_duration", "__duration"),
           ("bounces", "__bounces"), ("pageviews", "pageviews"))),
    Table("imported_exit_pages", ("visit:exit_page",),
          (("exit_page", "d0"), ("visitors", "visitors"), ("visit_duration", "__duration"), ("exits", "visits"),
           ("bounces", "__bounces"), ("pageviews", "pageviews"))),
    Table("imported_custom_events", ("event:name",),
          (("name", "d0"), ("link_url", "="), ("path", "="), ("visitors", "visitors"), ("events", "events")),
          events=True),
    Table("imported_locations", ("visit:country",),
          (("country", "d0"), ("region", "="), ("city", "=0"), *VISIT_METRICS)),
    Table("imported_devices", ("visit:device",), (("device", "d0"), *VISIT_METRICS)),
    Table("imported_browsers", ("visit:browser", "visit:browser_version"),
          (("browser", "d0"), ("browser_version", "d1"), *VISIT_METRICS)),
    Table("imported_operating_systems", ("visit:os", "visit:os_version"),
          (("operating_system", "d0"), ("operating_system_version", "d1"), *VISIT_METRICS)),
)


def file_name(table: str, first: date, last: date) -> str:
    return f"{table}_{first:%Y%m%d}_{last:%Y%m%d}.csv"


def _query(table: Table, domain: str, first: date, last: date, tz: str) -> Query:
    if table.name == "imported_custom_events":
        metrics: tuple[str, ...] = ("visitors", "events")
        filters: tuple[Condition, ...] = (Condition("is_not", "event:name", ("pageview",)),)
    elif table.name == "imported_pages":
        # scroll_depth and time_on_page bring their components (engine._scroll_depth, engine._time_on_page).
        metrics, filters = ("visitors", "visits", "pageviews", "scroll_depth", "__scroll_depth_total",
                            "__scroll_depth_visits", "time_on_page", "__time_on_page_total",
                            "__time_on_page_visits"), ()
    elif table.events:
        metrics, filters = ("visitors", "visits", "pageviews"), ()
    else:
        # bounce_rate brings the visits' components (engine.build's __bounces, __duration).
        metrics, filters = ("visitors", "visits", "pageviews", "bounce_rate", "__bounces", "__duration"), ()
    return Query(site=domain, metrics=metrics, date_range=local_days(first, last, tz),
                 dimensions=("time:day", *table.dimensions), filters=filters, limit=EVERYTHING)


def _cell(source: str, row: dict[str, Any], query: Query) -> Any:
    if source.startswith("="):
        return source[1:]
    if source.startswith("d") and source[1:].isdigit():
        value = row["dimensions"][1 + int(source[1:])]
        return "" if value in _EMPTY_LABELS else value
    value = row["metrics"][query.metrics.index(source)]
    return round(float(value or 0))


class _Sink(io.RawIOBase):
    """Where the zip writer puts its bytes until the stream hands them on (the zip is never whole in memory)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.chunks = b"".join(self.chunks), []
        return out


async def stream(session: AsyncSession, site_id: int, domain: str, tz: str, first: date, last: date,
                 tables: Sequence[Table] = TABLES) -> AsyncIterator[bytes]:
    """The zip of the site's CSV files over local days ``first``..``last``, chunk by chunk.

    One statement per file; each file's rows are written to the zip as they are read and the zip's bytes
    are handed on after every file.
    """
    # One file's statement reads the whole range's events (with their visits): far longer than a dashboard
    # query's budget for a large site. Bounded like the api's wait for the export (10 minutes per statement).
    await session.execute(text(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'"))
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for table in tables:
            query = _query(table, domain, first, last, tz)
            result = await engine.run(session, query, site_id, "table")
            with archive.open(file_name(table.name, first, last), "w") as raw:
                wrapper = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                writer = csv.writer(wrapper, lineterminator="\n")
                writer.writerow(["date", *(column for column, _ in table.columns)])
                for row in result.rows:
                    writer.writerow([row["dimensions"][0], *(_cell(source, row, query) for _, source in table.columns)])
                wrapper.flush()
                wrapper.detach()
            yield sink.take()
    yield sink.take()
