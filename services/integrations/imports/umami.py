"""Umami's data export: the CSV of a website's ``website_event`` rows joined with their session (Umami's
``website_event`` and ``session`` tables in ``prisma/schema.prisma``), alone or zipped.

Columns are read by name; ``session_id``, ``url_path``, ``event_type`` and ``created_at`` are required (and
``visit_id`` is used when present); other columns of the export are optional and unknown ones are refused.
``event_type`` 1 is a pageview and 2 a custom event; Umami's later link (3) and pixel (4) events are skipped.
The rows are staged in ``site_import_events`` and folded into Plausible's daily aggregates by :data:`FOLD`
with Plausible's definitions: a visit is Umami's visit, its attributes and entry page those of its first
event, its exit page its last pageview, its duration last minus first event, a bounce a visit of at most one
pageview and no custom event; days are the site's time zone.
"""

from __future__ import annotations

import datetime as dt

from services.integrations.imports.files import ImportRefused

REQUIRED = ("session_id", "url_path", "event_type", "created_at")

KNOWN = frozenset({
    *REQUIRED, "website_id", "visit_id", "event_id", "hostname", "browser", "os", "device", "screen", "language",
    "country", "region", "subdivision1", "subdivision2", "city", "url_query", "utm_source", "utm_medium",
    "utm_campaign", "utm_content", "utm_term", "referrer_path", "referrer_query", "referrer_domain", "page_title",
    "gclid", "fbclid", "msclkid", "ttclid", "li_fat_id", "twclid", "event_name", "tag", "distinct_id", "job_id",
})
"""Columns of Umami's export (``region`` was ``subdivision1`` before Umami 2.14)."""

STAGED = ("session_id", "visit_id", "created_at", "event_type", "event_name", "hostname", "url_path",
          "referrer_domain", "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "browser",
          "os", "device", "country", "region", "city")
"""Columns of ``site_import_events`` written from each row, in this order."""

BROWSERS = {
    "chrome": "Chrome", "crios": "Chrome", "chromium-webview": "Chrome Webview", "firefox": "Firefox",
    "fxios": "Firefox", "safari": "Safari", "ios": "Safari", "ios-webview": "Safari", "edge": "Microsoft Edge",
    "edge-chromium": "Microsoft Edge", "edge-ios": "Microsoft Edge", "opera": "Opera", "opera-mini": "Opera Mini",
    "samsung": "Samsung Browser", "yandexbrowser": "Yandex Browser", "ie": "Internet Explorer",
    "instagram": "Instagram", "facebook": "Facebook", "android": "Android Browser", "brave": "Brave",
    "vivaldi": "Vivaldi", "silk": "Amazon Silk", "miui": "MIUI Browser", "duckduckgo": "DuckDuckGo Privacy Browser",
}
"""Umami's browser ids (detect-browser's names) to Plausible's browser names."""

_OS = (("windows", "Windows"), ("mac os", "Mac"), ("ios", "iOS"), ("android", "Android"), ("chrome os", "Chrome OS"),
       ("linux", "GNU/Linux"), ("ubuntu", "GNU/Linux"), ("fedora", "GNU/Linux"), ("freebsd", "FreeBSD"))

DEVICES = {"desktop": "Desktop", "laptop": "Laptop", "mobile": "Mobile", "tablet": "Tablet"}


def check_header(header: list[str], file: str) -> None:
    for index, column in enumerate(header, start=1):
        if column not in KNOWN:
            raise ImportRefused(f"unknown column {column!r} (column {index}); Umami's export has "
                                f"{', '.join(sorted(KNOWN))}", file=file, line=1, column=column or str(index))
        if header.count(column) > 1:
            raise ImportRefused(f"column {column!r} appears twice", file=file, line=1, column=column)
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        raise ImportRefused(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (is this "
                            "Umami's data export?)", file=file, line=1, column=missing[0])


def operating_system(raw: str) -> str:
    lowered = raw.strip().lower()
    for prefix, name in _OS:
        if lowered.startswith(prefix):
            return name
    return raw.strip()


def parse_time(raw: str, file: str, line: int, now: dt.datetime) -> dt.datetime:
    """``created_at`` as Umami writes it (``2024-03-15 10:00:00`` UTC, or ISO 8601 with an offset)."""
    text = raw.strip().replace("Z", "+00:00")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ImportRefused(f"{raw!r} is not a date and time (YYYY-MM-DD HH:MM:SS)", file=file, line=line,
                            column="created_at") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    if moment > now + dt.timedelta(minutes=5):
        raise ImportRefused(f"{raw.strip()} is in the future", file=file, line=line, column="created_at")
    return moment


def parse_row(values: dict[str, str], file: str, line: int, now: dt.datetime) -> tuple[dt.datetime, list[str]] | None:
    """The event's time and its staged values (:data:`STAGED` order), or ``None`` for a skipped event type."""
    kind = values["event_type"].strip()
    if kind not in ("1", "2", "3", "4"):
        raise ImportRefused(f"{values['event_type']!r} is not an Umami event type (1 pageview, 2 custom event)",
                            file=file, line=line, column="event_type")
    moment = parse_time(values["created_at"], file, line, now)
    if kind in ("3", "4"):
        return None
    session = values["session_id"].strip()
    if not session:
        raise ImportRefused("empty session id", file=file, line=line, column="session_id")
    for column, raw in values.items():
        if "\x00" in raw:
            raise ImportRefused("a NUL character", file=file, line=line, column=column)
    visit = values.get("visit_id", "").strip() or session
    os_name = values.get("os", "")
    region = values.get("region", values.get("subdivision1", "")).strip()
    country = values.get("country", "").strip().upper()[:2]
    if region and "-" not in region and country:
        region = f"{country}-{region}"
    path = values["url_path"].strip() or "/"
    staged = [session, visit, moment.isoformat(), kind, values.get("event_name", "").strip()[:120],
              values.get("hostname", "").strip().removeprefix("www."), path[:2000],
              values.get("referrer_domain", "").strip().removeprefix("www.")[:500],
              *(values.get(f"utm_{tag}", "").strip()[:500] for tag in ("source", "medium", "campaign", "content",
                                                                      "term")),
              BROWSERS.get(values.get("browser", "").strip().lower(), values.get("browser", "").strip()),
              operating_system(os_name), DEVICES.get(values.get("device", "").strip().lower(), ""),
              country, region, values.get("city", "").strip()[:200]]
    return moment, staged


# Fold the staged events of one import (:import_id) into the imported_* tables, days in :tz.
FOLD = """
CREATE TEMPORARY TABLE import_visits ON COMMIT DROP AS
WITH ev AS (
    SELECT e.*, (e.created_at AT TIME ZONE :tz)::date AS day FROM site_import_events e WHERE e.import_id = :import_id
), firsts AS (
    SELECT DISTINCT ON (visit_id) visit_id, day, session_id, hostname, referrer_domain, utm_source, utm_medium,
           utm_campaign, utm_content, utm_term, browser, os, device, country, region, city
    FROM ev ORDER BY visit_id, created_at, id
), pages AS (
    SELECT visit_id, (array_agg(url_path ORDER BY created_at, id))[1] AS entry_page,
           (array_agg(url_path ORDER BY created_at DESC, id DESC))[1] AS exit_page
    FROM ev WHERE event_type = 1 GROUP BY visit_id
), totals AS (
    SELECT visit_id, count(*) FILTER (WHERE event_type = 1) AS pageviews,
           count(*) FILTER (WHERE event_type = 2) AS custom,
           extract(epoch FROM max(created_at) - min(created_at))::bigint AS duration
    FROM ev GROUP BY visit_id
)
SELECT f.*, coalesce(p.entry_page, '') AS entry_page, coalesce(p.exit_page, '') AS exit_page, t.pageviews,
       t.duration, (t.pageviews <= 1 AND t.custom = 0)::int AS bounce
FROM firsts f JOIN totals t USING (visit_id) LEFT JOIN pages p USING (visit_id);

INSERT INTO imported_visitors (site_id, import_id, date, visitors, pageviews, bounces, visits, visit_duration)
SELECT :site_id, :import_id, day, count(DISTINCT session_id), sum(pageviews), sum(bounce), count(*), sum(duration)
FROM import_visits GROUP BY day;

INSERT INTO imported_sources (site_id, import_id, date, source, referrer, utm_source, utm_medium, utm_campaign,
                              utm_content, utm_term, pageviews, visitors, visits, visit_duration, bounces)
SELECT :site_id, :import_id, day, CASE WHEN referrer_domain <> '' THEN referrer_domain ELSE utm_source END,
       referrer_domain, utm_source, utm_medium, utm_campaign, utm_content, utm_term, sum(pageviews),
       count(DISTINCT session_id), count(*), sum(duration), sum(bounce)
FROM import_visits
GROUP BY day, referrer_domain, utm_source, utm_medium, utm_campaign, utm_content, utm_term;

INSERT INTO imported_pages (site_id, import_id, date, hostname, page, visits, visitors, pageviews, exits)
SELECT :site_id, :import_id, p.day, min(p.hostname), p.url_path, count(DISTINCT p.visit_id),
       count(DISTINCT p.session_id), count(*), coalesce(max(x.exits), 0)
FROM (SELECT e.*, (e.created_at AT TIME ZONE :tz)::date AS day FROM site_import_events e
      WHERE e.import_id = :import_id AND e.event_type = 1) p
LEFT JOIN (SELECT day, exit_page, count(*) AS exits FROM import_visits WHERE exit_page <> ''
           GROUP BY day, exit_page) x ON x.day = p.day AND x.exit_page = p.url_path
GROUP BY p.day, p.url_path;

INSERT INTO imported_entry_pages (site_id, import_id, date, entry_page, visitors, entrances, visit_duration,
                                  bounces, pageviews)
SELECT :site_id, :import_id, day, entry_page, count(DISTINCT session_id), count(*), sum(duration), sum(bounce),
       sum(pageviews)
FROM import_visits WHERE entry_page <> '' GROUP BY day, entry_page;

INSERT INTO imported_exit_pages (site_id, import_id, date, exit_page, visitors, visit_duration, exits, bounces,
                                 pageviews)
SELECT :site_id, :import_id, day, exit_page, count(DISTINCT session_id), sum(duration), count(*), sum(bounce),
       sum(pageviews)
FROM import_visits WHERE exit_page <> '' GROUP BY day, exit_page;

INSERT INTO imported_custom_events (site_id, import_id, date, name, visitors, events)
SELECT :site_id, :import_id, (created_at AT TIME ZONE :tz)::date, event_name, count(DISTINCT session_id), count(*)
FROM site_import_events WHERE import_id = :import_id AND event_type = 2 AND event_name <> ''
GROUP BY 3, event_name;

INSERT INTO imported_locations (site_id, import_id, date, country, region, city, visitors, visits,
                                visit_duration, bounces, pageviews)
SELECT :site_id, :import_id, day, country, region, 0, count(DISTINCT session_id), count(*), sum(duration),
       sum(bounce), sum(pageviews)
FROM import_visits WHERE country <> '' GROUP BY day, country, region;

INSERT INTO imported_devices (site_id, import_id, date, device, visitors, visits, visit_duration, bounces,
                              pageviews)
SELECT :site_id, :import_id, day, device, count(DISTINCT session_id), count(*), sum(duration), sum(bounce),
       sum(pageviews)
FROM import_visits GROUP BY day, device;

INSERT INTO imported_browsers (site_id, import_id, date, browser, browser_version, visitors, visits,
                               visit_duration, bounces, pageviews)
SELECT :site_id, :import_id, day, browser, '', count(DISTINCT session_id), count(*), sum(duration), sum(bounce),
       sum(pageviews)
FROM import_visits GROUP BY day, browser;

INSERT INTO imported_operating_systems (site_id, import_id, date, operating_system, operating_system_version,
                                        visitors, visits, visit_duration, bounces, pageviews)
SELECT :site_id, :import_id, day, os, '', count(DISTINCT session_id), count(*), sum(duration), sum(bounce),
       sum(pageviews)
FROM import_visits GROUP BY day, os;

DELETE FROM site_import_events WHERE import_id = :import_id;
"""
