"""One job's hold on one import (:class:`Run`): what it has written and how a batch is committed with its
cursor, shared by the import job (:mod:`services.integrations.imports.job`) and the importers it runs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, text

from app.core.settings import ImportSettings

STAGING = "site_import_events"
"""Where raw events wait to be folded into aggregates (it has no ``site_id`` of its own)."""


class LeaseLost(Exception):
    """Another job holds the import now, or it was deleted: stop without writing."""


@dataclass
class Run:
    """One job's hold on one import, and what it has written so far."""

    engine: Engine
    limits: ImportSettings
    import_id: int
    site_id: int
    source: str
    token: str
    timezone: str
    upload: Path | None
    display: str
    params: dict[str, Any]
    cursor: dict[str, Any]
    rows_done: int
    days: set[str] = field(default_factory=set)

    def today(self) -> dt.date:
        return dt.datetime.now(ZoneInfo(self.timezone)).date()

    def commit(self, table: str, columns: Sequence[str], rows: list[Sequence[Any]], cursor: dict[str, Any],
               bytes_done: int, total: int, ceiling: float = 100.0) -> None:
        """Write ``rows`` (each ``columns`` order, after site_id and import_id) and advance the cursor, in one
        transaction guarded by the lease. ``ceiling`` is the percent reached when ``bytes_done == total``."""
        cursor = {**cursor, "days": sorted(self.days)}
        percent = min(ceiling, ceiling * bytes_done / total) if total else 0.0
        with self.engine.begin() as conn:
            renewed = conn.execute(text(
                "UPDATE site_imports SET cursor = :cursor, rows_done = rows_done + :rows, bytes_done = :bytes, "
                "percent = :percent, days_done = :days, leased_until = now() + make_interval(secs => :lease), "
                "updated_at = now() WHERE id = :id AND lease_token = :token AND status = 'importing'"),
                {"cursor": json.dumps(cursor), "rows": len(rows), "bytes": bytes_done, "percent": percent,
                 "days": len(self.days), "lease": self.limits.lease, "id": self.import_id, "token": self.token})
            if renewed.rowcount != 1:
                raise LeaseLost
            if rows and table == STAGING:
                copy_rows(conn, table, ("import_id", *columns), ((self.import_id, *row) for row in rows))
            elif rows:
                copy_rows(conn, table, ("site_id", "import_id", *columns),
                          ((self.site_id, self.import_id, *row) for row in rows))
        self.cursor = cursor
        self.rows_done += len(rows)


def copy_rows(conn: Connection, table: str, columns: Sequence[str], rows: Iterator[Sequence[Any]]) -> None:
    """``COPY`` rows into ``table`` on the connection's transaction (psycopg 3)."""
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
