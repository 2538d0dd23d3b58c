"""Typed messages between the api and the integrations service about imports (msgspec)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

import msgspec

ImportSource = Literal["plausible", "umami", "ga4"]
"""``plausible``: Plausible CE's CSV export (zip or one CSV); ``umami``: Umami's data export (CSV or zip);
``ga4``: the Google Analytics 4 Data API."""


class SiteImport(msgspec.Struct):
    """One import of a site's history and how far it has got."""

    id: int
    source: str
    label: str
    status: str
    """``pending``, ``importing``, ``completed`` or ``failed``; queries read only completed imports."""
    start_date: date | None
    end_date: date | None
    upload_name: str
    upload_size: int
    """Bytes uploaded."""
    rows: int
    """Rows read so far (of the export's files)."""
    days: int
    """Distinct days seen so far."""
    percent: float
    """Of the upload's (uncompressed) bytes read; 100 when completed."""
    error: str | None
    error_location: dict[str, Any] | None
    """``{"file", "line", "column"}`` of a refusal."""
    created_at: datetime
    finished_at: datetime | None


class SiteExport(msgspec.Struct):
    """One export job of a site's stats as Plausible's CSV export (a large site's; small ones are streamed)."""

    id: int
    date_range: str
    status: str
    """``pending``, ``building``, ``ready``, ``failed`` or ``expired`` (its file purged)."""
    bytes_done: int
    """Bytes of the zip written so far (its size once ready)."""
    file_name: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None
    """When the file and its download link expire (``BEACON_IMPORT_EXPORT_TTL`` after it is ready)."""


class ExportRequest(msgspec.Struct):
    """Ask for a site's export: answered with the job (201), or ``null`` (200) when the site is small enough to
    stream its export at once."""

    date_range: str = msgspec.field(default="all")
    requested_by: int | None = None
