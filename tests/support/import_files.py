"""Export files built by the tests: Plausible CE's CSV export zip and Umami's data export, with known sums."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

PLAUSIBLE_HEADERS = {
    "imported_visitors": ["date", "visitors", "pageviews", "bounces", "visits", "visit_duration"],
    "imported_sources": ["date", "source", "referrer", "utm_source", "utm_medium", "utm_campaign", "utm_content",
                         "utm_term", "pageviews", "visitors", "visits", "visit_duration", "bounces"],
    "imported_pages": ["date", "hostname", "page", "visits", "visitors", "pageviews", "total_scroll_depth",
                       "total_scroll_depth_visits"],
    "imported_entry_pages": ["date", "entry_page", "visitors", "entrances", "visit_duration", "bounces",
                             "pageviews"],
    "imported_exit_pages": ["date", "exit_page", "visitors", "visit_duration", "exits", "bounces", "pageviews"],
    "imported_custom_events": ["date", "name", "link_url", "path", "visitors", "events"],
    "imported_locations": ["date", "country", "region", "city", "visitors", "visits", "visit_duration", "bounces",
                           "pageviews"],
    "imported_devices": ["date", "device", "visitors", "visits", "visit_duration", "bounces", "pageviews"],
    "imported_browsers": ["date", "browser", "browser_version", "visitors", "visits", "visit_duration", "bounces",
                          "pageviews"],
    "imported_operating_systems": ["date", "operating_system", "operating_system_version", "visitors", "visits",
                                   "visit_duration", "bounces", "pageviews"],
}
"""The columns Plausible CE's export writes (``Plausible.Exports``)."""


@dataclass
class PlausibleExport:
    """The CSV text of each file, and the sums a correct import must store."""

    first: dt.date
    last: dt.date
    files: dict[str, str] = field(default_factory=dict)
    sums: dict[str, dict[str, int]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def name(self, table: str) -> str:
        return f"{table}_{self.first:%Y%m%d}_{self.last:%Y%m%d}.csv"

    def zip(self, path: Path) -> Path:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for table, body in self.files.items():
                archive.writestr(self.name(table), body)
        return path


def _csv(header: list[str], rows: list[list[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def plausible_export(days: int = 90, last: dt.date | None = None, pages_per_day: int = 3) -> PlausibleExport:
    """``days`` days ending ``last`` (default yesterday, UTC); visitors on day i are 100 + i."""
    last = last or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    first = last - dt.timedelta(days=days - 1)
    export = PlausibleExport(first, last)
    rows: dict[str, list[list[object]]] = {table: [] for table in PLAUSIBLE_HEADERS}
    for i in range(days):
        day = (first + dt.timedelta(days=i)).isoformat()
        visitors, visits, pageviews, bounces, duration = 100 + i, 120 + i, 300 + 2 * i, 40 + i % 7, 6000 + 10 * i
        rows["imported_visitors"].append([day, visitors, pageviews, bounces, visits, duration])
        rows["imported_sources"].append([day, "Google", "google.com", "", "", "", "", "", pageviews, visitors,
                                         visits, duration, bounces])
        for p in range(pages_per_day):
            rows["imported_pages"].append([day, "example.com", f"/page-{p}", 10 + p, 8 + p, 20 + p + i, 0, 0])
        rows["imported_entry_pages"].append([day, "/", visitors, visits, duration, bounces, pageviews])
        rows["imported_exit_pages"].append([day, "/bye", visitors, duration, visits, bounces, pageviews])
        rows["imported_custom_events"].append([day, "Signup", "", "", 5, 7 + i % 3])
        rows["imported_locations"].append([day, "DE", "DE-BE", 2950159, visitors, visits, duration, bounces,
                                           pageviews])
        rows["imported_devices"].append([day, "Desktop", visitors, visits, duration, bounces, pageviews])
        rows["imported_browsers"].append([day, "Firefox", "120.0", visitors, visits, duration, bounces, pageviews])
        rows["imported_operating_systems"].append([day, "GNU/Linux", "", visitors, visits, duration, bounces,
                                                   pageviews])
    for table, header in PLAUSIBLE_HEADERS.items():
        export.files[table] = _csv(header, rows[table])
        export.rows[table] = len(rows[table])
        numeric = [c for c in header if c in ("visitors", "pageviews", "bounces", "visits", "visit_duration",
                                              "events", "entrances", "exits")]
        export.sums[table] = {c: sum(int(r[header.index(c)]) for r in rows[table]) for c in numeric}  # type: ignore[call-overload]
    return export


def pages_csv(rows: int, first: dt.date) -> tuple[str, int]:
    """A long ``imported_pages`` file (``rows`` rows over 30 days) and the sum of its pageviews."""
    lines, total = [PLAUSIBLE_HEADERS["imported_pages"]], 0
    for i in range(rows):
        pageviews = 1 + i % 13
        total += pageviews
        lines.append([(first + dt.timedelta(days=i % 30)).isoformat(), "example.com", f"/p/{i}", 1, 1, pageviews,
                      0, 0])
    return _csv(lines[0], lines[1:]), total  # type: ignore[arg-type]


UMAMI_HEADER = ["website_id", "session_id", "visit_id", "event_id", "hostname", "browser", "os", "device", "screen",
                "language", "country", "region", "city", "url_path", "url_query", "utm_source", "utm_medium",
                "utm_campaign", "utm_content", "utm_term", "referrer_path", "referrer_query", "referrer_domain",
                "page_title", "gclid", "fbclid", "msclkid", "ttclid", "li_fat_id", "twclid", "event_type",
                "event_name", "tag", "distinct_id", "created_at", "job_id"]
"""Umami's data export: ``website_event`` joined with its ``session``."""


def umami_row(session: str, visit: str, path: str, created_at: str, *, event_type: int = 1, name: str = "",
              browser: str = "firefox", os: str = "Linux", device: str = "desktop", country: str = "DE",
              referrer: str = "") -> list[str]:
    values = dict.fromkeys(UMAMI_HEADER, "")
    values.update(website_id="w1", session_id=session, visit_id=visit, event_id=f"e-{session}-{created_at}",
                  hostname="example.com", browser=browser, os=os, device=device, country=country,
                  url_path=path, referrer_domain=referrer, event_type=str(event_type), event_name=name,
                  created_at=created_at)
    return [values[c] for c in UMAMI_HEADER]


def umami_csv(rows: list[list[str]]) -> str:
    return _csv(UMAMI_HEADER, rows)  # type: ignore[arg-type]
