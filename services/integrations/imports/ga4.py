"""Google Analytics 4 imports on the import job: the GA4 Data API's reports (see :mod:`services.integrations.ga4`)
written page by page into the ``imported_*`` tables.

The import's ``params`` hold the property, the date range, the user's OAuth 2 refresh-token credentials and,
for tests or a proxy, other API endpoints. The cursor is ``{"report": i, "offset": n}``: each page's rows and
the cursor after them are one transaction (:meth:`Run.commit`), so a killed worker resumes at the next page and
nothing is doubled. The credentials are removed from the row once the last report is in, and when the import
is refused.

Errors: a refusal by Google (credentials, access, a malformed answer) fails the import with Google's words; a
quota or server error that outlasts the client's retries raises :class:`GA4Busy`, which the job's retries
(Dramatiq's backoff) resume from the cursor later.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Engine, text

from services.integrations.ga4 import (
    DATA_API,
    REPORTS,
    TOKEN_URL,
    Client,
    Credentials,
    GA4Error,
    GA4Unavailable,
    convert,
)
from services.integrations.imports.files import ImportRefused

if TYPE_CHECKING:
    from services.integrations.imports.run import Run

UNITS = 1_000_000
"""Progress units per report (``bytes_done`` of a GA4 import counts these, not bytes)."""
EARLIEST = dt.date(2015, 8, 14)
"""GA4's first possible day of data (Plausible's ``@earliest_valid_date``)."""


class GA4Busy(Exception):
    """Google kept answering 429 or 5xx: retried later by the job, from the cursor."""


def check_params(property_id: str, first: dt.date, last: dt.date, today: dt.date) -> None:
    """Refuse a property id that is not digits, an empty or future range; ImportRefused names the option."""
    if not property_id.isdigit():
        raise ImportRefused(f"{property_id!r} is not a GA4 property id (digits, e.g. 123456789)", column="property")
    if last < first:
        raise ImportRefused(f"the end {last} is before the start {first}", column="to")
    if last > today:
        raise ImportRefused(f"{last} is in the future (today is {today} in the site's time zone)", column="to")
    if first < EARLIEST:
        raise ImportRefused(f"{first} is before GA4 existed (its data starts on {EARLIEST})", column="from")


def create(engine: Engine, site_id: int, property_id: str, first: dt.date, last: dt.date, credentials: Credentials,
           imported_by: int | None = None, label: str = "", data_api: str = DATA_API,
           token_url: str = TOKEN_URL) -> int:
    """A pending GA4 import of ``property_id`` over ``first``..``last`` (the dispatcher sends its job)."""
    with engine.begin() as conn:
        tz = conn.execute(text("SELECT timezone FROM sites WHERE id = :id"), {"id": site_id}).scalar_one()
        check_params(property_id, first, last, dt.datetime.now(dt.UTC).astimezone(ZoneInfo(str(tz))).date())
        params = {"property": property_id, "start_date": first.isoformat(), "end_date": last.isoformat(),
                  "credentials": {"client_id": credentials.client_id, "client_secret": credentials.client_secret,
                                  "refresh_token": credentials.refresh_token},
                  "data_api": data_api, "token_url": token_url}
        return int(conn.execute(text(
            "INSERT INTO site_imports (site_id, source, label, upload_name, params, imported_by) VALUES "
            "(:site, 'ga4', :label, :name, CAST(:params AS jsonb), :by) RETURNING id"),
            {"site": site_id, "label": (label or f"GA4 property {property_id}")[:200],
             "name": f"GA4 property {property_id}", "params": json.dumps(params), "by": imported_by}).scalar_one())


def forget_credentials(engine: Engine, import_id: int) -> None:
    """Remove the refresh token (and the rest of the credentials) from the import's row."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE site_imports SET params = params - 'credentials' WHERE id = :id"),
                     {"id": import_id})


def import_ga4(run: Run) -> None:
    """Read every report of Plausible's GA4 import into its table, page by page, from the cursor on."""
    if run.cursor.get("report", 0) >= len(REPORTS):
        return  # every report is in (a worker died before the import was marked completed)
    params = run.params
    try:
        credentials = Credentials.from_json(json.dumps(params.get("credentials")), "credentials")
        first = dt.date.fromisoformat(params["start_date"])
        last = dt.date.fromisoformat(params["end_date"])
        property_id = str(params["property"])
    except (GA4Error, KeyError, ValueError) as exc:
        forget_credentials(run.engine, run.import_id)
        raise ImportRefused(f"the import's GA4 parameters are incomplete ({exc}); create it again") from None
    total = len(REPORTS) * UNITS
    with httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0)) as http:
        client = Client(credentials, property_id, http, data_api=params.get("data_api", DATA_API),
                        token_url=params.get("token_url", TOKEN_URL))
        try:
            for index in range(run.cursor.get("report", 0), len(REPORTS)):
                report = REPORTS[index]
                start = run.cursor.get("offset", 0) if run.cursor.get("report") == index else 0
                columns: tuple[str, ...] | None = None
                for offset, rows, count in client.pages(report, first, last, start):
                    converted = [row for row in (convert(report.table, raw) for raw in rows) if row is not None]
                    for row in converted:
                        run.days.add(row["date"].isoformat())
                    columns = columns or (tuple(converted[0]) if converted else None)
                    done = index * UNITS + (UNITS * min(offset, count) // count if count else UNITS)
                    values: list[Sequence[Any]] = [tuple(row[c] for c in columns) for row in converted] \
                        if columns else []
                    finished = offset >= count or not rows
                    cursor = {"report": index + 1} if finished else {"report": index, "offset": offset}
                    run.commit(report.table, columns or ("date",), values, cursor, done, total)
        except GA4Unavailable as exc:
            raise GA4Busy(str(exc)) from None
        except GA4Error as exc:
            forget_credentials(run.engine, run.import_id)
            raise ImportRefused(str(exc), file=f"GA4 property {property_id}") from None
    forget_credentials(run.engine, run.import_id)
