"""Plausible CE's CSV export: a zip of ``imported_<table>_<YYYYMMDD>_<YYYYMMDD>.csv`` files (or one such CSV),
one per ``imported_*`` table, header row first, columns by name (Plausible's ``CSVImporter`` input structures
and ``Plausible.Exports`` queries: ``lib/plausible/imported/csv_importer.ex``, ``lib/plausible/exports.ex``).

Columns Plausible writes in every version are required; columns later versions added are optional (0 or ''
when absent); columns earlier versions wrote and later dropped are read and ignored. Any other column is
refused, as are negative or non-integer counts, bad dates and dates after today in the site's time zone.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from services.integrations.imports.files import ImportRefused


@dataclass(frozen=True)
class TableSpec:
    table: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    integers: tuple[str, ...] = ()
    """Integer columns that are not counts but still may not be negative (``city``, a GeoNames id)."""

    @property
    def columns(self) -> tuple[str, ...]:
        """The table's columns after ``date``, in the order rows are written."""
        return self.required + self.optional

    def counts(self) -> frozenset[str]:
        return frozenset(c for c in self.columns if c not in _TEXT)


_TEXT = frozenset({"source", "referrer", "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term",
                   "channel", "hostname", "page", "entry_page", "exit_page", "name", "link_url", "path", "country",
                   "region", "device", "browser", "browser_version", "operating_system",
                   "operating_system_version"})

_SESSION = ("visitors", "visits", "visit_duration", "bounces")

SPECS: dict[str, TableSpec] = {spec.table: spec for spec in (
    TableSpec("imported_visitors", ("visitors", "pageviews", "bounces", "visits", "visit_duration")),
    TableSpec("imported_sources", ("source", "utm_medium", "utm_campaign", "utm_content", "utm_term", *_SESSION),
              ("referrer", "utm_source", "channel", "pageviews")),
    TableSpec("imported_pages", ("hostname", "page", "visitors", "pageviews"),
              ("visits", "exits", "total_scroll_depth", "total_scroll_depth_visits", "total_time_on_page",
               "total_time_on_page_visits"),
              ("time_on_page", "active_visitors", "scroll_depth", "pageleave_visitors")),
    TableSpec("imported_entry_pages", ("entry_page", "visitors", "entrances", "visit_duration", "bounces"),
              ("pageviews",)),
    TableSpec("imported_exit_pages", ("exit_page", "visitors", "exits"),
              ("visit_duration", "bounces", "pageviews")),
    TableSpec("imported_custom_events", ("name", "visitors", "events"), ("link_url", "path")),
    TableSpec("imported_locations", ("country", "region", "city", *_SESSION), ("pageviews",), integers=("city",)),
    TableSpec("imported_devices", ("device", *_SESSION), ("pageviews",)),
    TableSpec("imported_browsers", ("browser", *_SESSION), ("browser_version", "pageviews")),
    TableSpec("imported_operating_systems", ("operating_system", *_SESSION),
              ("operating_system_version", "pageviews")),
)}

_NAME = re.compile(r"^(?:.*/)?(?:imported_)?([a-z_]+?)(?:_(\d{8})_(\d{8}))?\.csv$")


def table_of(entry: str) -> str:
    """The ``imported_*`` table an export file fills, from its name (``imported_pages_20240101_20240331.csv``
    or ``pages_…csv``, as Plausible's ``parse_filename!`` accepts; a directory inside the zip is allowed)."""
    match = _NAME.match(entry)
    table = f"imported_{match.group(1)}" if match else ""
    if table not in SPECS:
        raise ImportRefused("not a file of Plausible's CSV export (expected imported_<table>_<from>_<to>.csv, "
                            f"<table> one of {', '.join(t.removeprefix('imported_') for t in SPECS)})", file=entry)
    return table


def check_header(spec: TableSpec, header: list[str], file: str) -> None:
    """Refuse a header that lacks a required column, repeats one, or has one Plausible never wrote."""
    known = {"date", *spec.required, *spec.optional, *spec.ignored}
    for index, column in enumerate(header, start=1):
        if column not in known:
            raise ImportRefused(f"unknown column {column!r} (column {index}); {spec.table} has "
                                f"{', '.join(('date', *spec.columns))}", file=file, line=1, column=column or str(index))
        if header.count(column) > 1:
            raise ImportRefused(f"column {column!r} appears twice", file=file, line=1, column=column)
    missing = [column for column in ("date", *spec.required) if column not in header]
    if missing:
        raise ImportRefused(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}", file=file,
                            line=1, column=missing[0])


def parse_date(raw: str, file: str, line: int, column: str, today: dt.date) -> dt.date:
    try:
        day = dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise ImportRefused(f"{raw!r} is not a date (YYYY-MM-DD)", file=file, line=line, column=column) from None
    if day > today:
        raise ImportRefused(f"{day} is in the future (today is {today} in the site's time zone)", file=file,
                            line=line, column=column)
    return day


def parse_count(raw: str, file: str, line: int, column: str) -> int:
    text = raw.strip()
    if text in ("", "\\N"):  # ClickHouse writes NULL as \N (Nullable columns of older exports)
        return 0
    try:
        value = int(text)
    except ValueError:
        raise ImportRefused(f"{raw!r} is not a whole number", file=file, line=line, column=column) from None
    if value < 0:
        raise ImportRefused(f"{value} is negative", file=file, line=line, column=column)
    if value >= 1 << 63:
        raise ImportRefused(f"{value} is too large", file=file, line=line, column=column)
    return value


def parse_row(spec: TableSpec, values: dict[str, str], file: str, line: int,
              today: dt.date) -> tuple[dt.date, list[str | int]]:
    """The row's date and its values in :attr:`TableSpec.columns` order."""
    day = parse_date(values["date"], file, line, "date", today)
    counts = spec.counts()
    out: list[str | int] = []
    for column in spec.columns:
        raw = values.get(column, "")
        if column in counts:
            out.append(parse_count(raw, file, line, column))
        else:
            if "\x00" in raw:
                raise ImportRefused("a NUL character", file=file, line=line, column=column)
            out.append(raw[:2000])
    return day, out
