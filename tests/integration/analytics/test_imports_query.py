"""Queries with imported stats (``include.imports``, ``with_imported``) against answers computed by hand.

Site ``imports.example`` (UTC). Native events on 2026-03-10:

- visit 1, visitor 1 (Google, Desktop, Chrome, DE): 09:00 pageview /, 09:05 pageview /pricing (300 s, no bounce);
- visit 2, visitor 2 (direct, Mobile, Safari, FR): 10:00 pageview /blog (a bounce, 0 s).

Native: visitors 2, visits 2, pageviews 3, bounces 1, total duration 300 s, visit pageviews 3.

A completed import covering 2026-03-01..2026-03-09:

- imported_visitors: 03-05 visitors 10, pageviews 30, bounces 4, visits 12, duration 600;
  03-06 visitors 5, pageviews 5, bounces 5, visits 5, duration 0;
- imported_sources: 03-05 Google 6/7/20/2/400 and direct 4/5/10/2/200 (visitors/visits/pageviews/bounces/
  duration); 03-06 Google 5/5/5/5/0;
- imported_pages: 03-05 / visitors 8, visits 9, pageviews 15; /docs visitors 3, visits 3, pageviews 15.
- imported_locations: 03-05 DE, region DE-BE, city 2950159 (Berlin): visitors 4, visits 5, pageviews 9; 03-05 FR
  with no region and city 0: visitors 3, visits 3, pageviews 3; 03-06 DE-BE, 2950159: visitors 1, visits 1,
  pageviews 2. The native visits have region '' and city 0 (no city database).

A failed import holds 1000 visitors on 03-05: it never counts.

Over 03-01..03-10 with imports: visitors 2+15 = 17, visits 2+17 = 19, pageviews 3+35 = 38, events 38 (imported
pageviews count as events), bounce rate (1+9)/19 = 52.6 % -> 53, visit duration (300+600)/19 = 47.4 -> 47 s,
views per visit (3+35)/19 = 2.0.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.core.db import make_engine
from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.settings import Settings

RANGE = ["2026-03-01", "2026-03-10"]
ALL = ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"]
UNSUPPORTED_QUERY = ("Imported stats are not included in the results because query parameters are not supported. "
                     "For more information, see: https://plausible.io/docs/stats-api#filtering-imported-stats")
UNSUPPORTED_INTERVAL = ("Imported stats are not included because the time dimension (i.e. the interval) is too "
                        "short.")


@pytest.fixture
def dataset(settings: Settings, db: None) -> None:
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        site = conn.execute(text("INSERT INTO sites (domain, timezone, created_at) VALUES "
                                 "('imports.example', 'UTC', '2026-01-01') RETURNING id")).scalar_one()
        conn.execute(text("INSERT INTO sites (domain, timezone, created_at) VALUES "
                          "('empty.example', 'UTC', '2026-01-01')"))
        for visitor, session, minute, path, source, device, browser, country in [
            (1, 1, 0, "/", "Google", "Desktop", "Chrome", "DE"),
            (1, 1, 5, "/pricing", "Google", "Desktop", "Chrome", "DE"),
            (2, 2, 60, "/blog", "", "Mobile", "Safari", "FR"),
        ]:
            conn.execute(text(
                "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, "
                "referrer, referrer_source, device, browser, country, interactive, props) VALUES (:site, :ts, "
                "'pageview', :visitor, :session, 'imports.example', :path, :referrer, :source, :device, :browser, "
                ":country, true, '{}')"),
                {"site": site, "ts": datetime(2026, 3, 10, 9 + minute // 60, minute % 60, tzinfo=UTC),
                 "visitor": visitor, "session": session, "path": path, "source": source, "device": device,
                 "browser": browser, "country": country,
                 "referrer": f"https://www.{source.lower()}.com/" if source else ""})
        done, failed = (conn.execute(text(
            "INSERT INTO site_imports (site_id, source, status, start_date, end_date) VALUES "
            "(:site, 'plausible', :status, '2026-03-01', '2026-03-09') RETURNING id"),
            {"site": site, "status": status}).scalar_one() for status in ("completed", "failed"))
        rows = {
            "imported_visitors": [
                (done, "2026-03-05", {"visitors": 10, "pageviews": 30, "bounces": 4, "visits": 12,
                                      "visit_duration": 600}),
                (done, "2026-03-06", {"visitors": 5, "pageviews": 5, "bounces": 5, "visits": 5, "visit_duration": 0}),
                (failed, "2026-03-05", {"visitors": 1000, "pageviews": 1000, "bounces": 0, "visits": 1000,
                                        "visit_duration": 0}),
            ],
            "imported_sources": [
                (done, "2026-03-05", {"source": "Google", "visitors": 6, "visits": 7, "pageviews": 20, "bounces": 2,
                                      "visit_duration": 400}),
                (done, "2026-03-05", {"source": "", "visitors": 4, "visits": 5, "pageviews": 10, "bounces": 2,
                                      "visit_duration": 200}),
                (done, "2026-03-06", {"source": "Google", "visitors": 5, "visits": 5, "pageviews": 5, "bounces": 5,
                                      "visit_duration": 0}),
            ],
            "imported_pages": [
                (done, "2026-03-05", {"hostname": "imports.example", "page": "/", "visitors": 8, "visits": 9,
                                      "pageviews": 15}),
                (done, "2026-03-05", {"hostname": "imports.example", "page": "/docs", "visitors": 3, "visits": 3,
                                      "pageviews": 15}),
            ],
            "imported_locations": [
                (done, "2026-03-05", {"country": "DE", "region": "DE-BE", "city": 2950159, "visitors": 4, "visits": 5,
                                      "pageviews": 9, "bounces": 1, "visit_duration": 100}),
                (done, "2026-03-05", {"country": "FR", "region": "", "city": 0, "visitors": 3, "visits": 3,
                                      "pageviews": 3, "bounces": 3, "visit_duration": 0}),
                (done, "2026-03-06", {"country": "DE", "region": "DE-BE", "city": 2950159, "visitors": 1, "visits": 1,
                                      "pageviews": 2, "bounces": 0, "visit_duration": 50}),
            ],
        }
        for table, entries in rows.items():
            for import_id, day, values in entries:
                columns = ", ".join(values)
                conn.execute(text(f"INSERT INTO {table} (site_id, import_id, date, {columns}) VALUES "
                                  f"(:site, :import_id, :day, {', '.join(':' + c for c in values)})"),
                             {"site": site, "import_id": import_id, "day": day, **values})
    engine.dispose()


def query(settings: Settings, serve: Callable[[str], int], **body: Any) -> httpx.Response:
    payload = {"site_id": "imports.example", "date_range": RANGE, **body}
    return httpx.post(f"http://127.0.0.1:{serve('analytics')}/query", json=payload,
                      headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=20)


def v1(settings: Settings, serve: Callable[[str], int], endpoint: str, **params: str) -> dict[str, Any]:
    response = httpx.get(f"http://127.0.0.1:{serve('analytics')}/v1/{endpoint}",
                         params={"site_id": "imports.example", "period": "custom", "date": ",".join(RANGE), **params},
                         headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=20)
    assert 200 == response.status_code, response.text
    body: dict[str, Any] = response.json()
    return body


def results(response: httpx.Response) -> list[tuple[Any, ...]]:
    assert 200 == response.status_code, response.text
    return [(*row["dimensions"], *row["metrics"]) for row in response.json()["results"]]


def imports_meta(response: httpx.Response) -> dict[str, Any]:
    return {k: v for k, v in response.json()["meta"].items() if k.startswith("imports_")}


def test_aggregate_merges_the_completed_import(settings: Settings, serve: Callable[[str], int],
                                               dataset: None) -> None:
    """Every aggregate metric from native and imported components; the failed import counts nothing."""
    response = query(settings, serve, metrics=ALL, include={"imports": True})
    assert [(17, 19, 38, 38, 53, 47, 2.0)] == results(response)
    assert {"imports_included": True} == imports_meta(response)
    assert {"imports": True} == response.json()["query"]["include"]


def test_all_time_begins_with_the_earliest_completed_import(settings: Settings, serve: Callable[[str], int],
                                                            dataset: None) -> None:
    """Plausible's ``stats_start_date``: "all" begins on the earliest of the first event's day and the first day of
    the earliest completed import, here for a site added (03-10) after the history it imported (03-01..03-09);
    a failed import beginning earlier does not count."""
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        conn.execute(text("UPDATE sites SET created_at = '2026-03-10 12:00+00' WHERE domain = 'imports.example'"))
        conn.execute(text("UPDATE site_imports SET start_date = '2026-02-01' WHERE status = 'failed'"))
    engine.dispose()
    response = query(settings, serve, metrics=["visitors"], date_range="all", include={"imports": True})
    assert [(17,)] == results(response)
    assert response.json()["query"]["date_range"][0].startswith("2026-03-01"), response.json()["query"]
    native = query(settings, serve, metrics=["visitors"], date_range="all")
    assert [(2,)] == results(native)
    assert native.json()["query"]["date_range"][0].startswith("2026-03-01")


def test_without_include_imports_only_native_and_no_meta(settings: Settings, serve: Callable[[str], int],
                                                          dataset: None) -> None:
    """Imports are left out unless asked for, and then the meta says nothing about them."""
    response = query(settings, serve, metrics=ALL)
    assert [(2, 2, 3, 3, 50, 150, 1.5)] == results(response)
    assert {} == imports_meta(response)


def test_breakdown_by_source_merges_groups_and_labels_direct(settings: Settings, serve: Callable[[str], int],
                                                             dataset: None) -> None:
    """Google: 1+11 visitors, bounces (0+7)/(1+12) -> 54; direct (empty source): 1+4, (1+2)/(1+5) -> 50;
    percentage over 2 native + 15 imported visitors."""
    response = query(settings, serve, metrics=["visitors", "bounce_rate", "percentage"],
                     dimensions=["visit:source"], include={"imports": True})
    assert [("Google", 12, 54, 70.6), ("Direct / None", 5, 50, 29.4)] == results(response)


def test_breakdown_by_page_with_pagination(settings: Settings, serve: Callable[[str], int], dataset: None) -> None:
    """Pages: / 1+8 visitors and 1+15 pageviews, /docs imported only; ties by name; total_rows of the merge."""
    response = query(settings, serve, metrics=["visitors", "pageviews"], dimensions=["event:page"],
                     include={"imports": True, "total_rows": True})
    assert [("/", 9, 16), ("/docs", 3, 15), ("/blog", 1, 1), ("/pricing", 1, 1)] == results(response)
    paged = query(settings, serve, metrics=["visitors", "pageviews"], dimensions=["event:page"],
                  include={"imports": True, "total_rows": True}, pagination={"limit": 2, "offset": 1})
    assert [("/docs", 3, 15), ("/blog", 1, 1)] == results(paged)
    assert 4 == paged.json()["meta"]["total_rows"]


def test_time_series_by_day_and_by_week(settings: Settings, serve: Callable[[str], int], dataset: None) -> None:
    """Imported days join the native ones; weeks start on Monday, the first one at the range's start."""
    daily = query(settings, serve, metrics=["visitors"], dimensions=["time:day"], include={"imports": True})
    assert [("2026-03-05", 10), ("2026-03-06", 5), ("2026-03-10", 2)] == results(daily)
    weekly = query(settings, serve, metrics=["visitors", "pageviews"], dimensions=["time:week"],
                   include={"imports": True})
    assert [("2026-03-02", 15, 35), ("2026-03-09", 2, 3)] == results(weekly)


def test_page_filter_bounce_rate_counts_the_visits_entering_there(settings: Settings, serve: Callable[[str], int],
                                                                  dataset: None) -> None:
    """Plausible's bounce rate under a page filter is that of the visits entering on the page: visitor 2 entered on
    /blog and bounced (one pageview; its outbound click is not interactive) and clicked out from /pricing, where
    visitor 1 did not enter either, so /pricing has no bounce rate (0) where every visit that saw it would give 50 %.
    The imported pages carry no bounces and count no visit for it (Plausible's imported_pages: 0 bounces of 0)."""
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, interactive, "
            "props) SELECT id, '2026-03-10 10:01+00', 'Outbound Link: Click', 2, 2, 'imports.example', '/pricing', "
            "false, '{}' FROM sites WHERE domain = 'imports.example'"))
    engine.dispose()
    for include in ({}, {"include": {"imports": True}}):
        pricing = query(settings, serve, metrics=["visitors", "visits", "bounce_rate"],
                        filters=[["is", "event:page", ["/pricing"]]], **include)
        blog = query(settings, serve, metrics=["visitors", "visits", "bounce_rate"],
                     filters=[["is", "event:page", ["/blog"]]], **include)
        assert ([(2, 2, 0)], [(1, 1, 100)]) == (results(pricing), results(blog)), include
    # The imported pages' visitors and visits count; their visits do not divide the bounce rate of / (visitor 1
    # entered there and did not bounce).
    home = query(settings, serve, metrics=["visitors", "visits", "bounce_rate"], filters=[["is", "event:page", ["/"]]],
                 include={"imports": True})
    assert [(9, 10, 0)] == results(home)
    assert {"imports_included": True} == imports_meta(home)


def test_filter_answered_from_the_sources_table(settings: Settings, serve: Callable[[str], int],
                                                dataset: None) -> None:
    """visit:source is Google: 1 native + 11 imported visitors; the direct label filters empty sources."""
    google = query(settings, serve, metrics=["visitors"], filters=[["is", "visit:source", ["Google"]]],
                   include={"imports": True})
    assert [(12,)] == results(google)
    direct = query(settings, serve, metrics=["visitors", "visits"],
                   filters=[["is", "visit:source", ["Direct / None"]]], include={"imports": True})
    assert [(5, 6)] == results(direct)


@pytest.mark.parametrize(("body", "site", "meta"), [
    pytest.param({"dimensions": ["visit:source"], "filters": [["is", "visit:device", ["Desktop"]]]},
                 "imports.example",
                 {"imports_included": False, "imports_skip_reason": "unsupported_query",
                  "imports_warning": UNSUPPORTED_QUERY}, id="unsupported_query"),
    # Imported stats have no visits to tell who did what: a behavioural filter keeps them out.
    pytest.param({"filters": [["has_done", ["is", "event:page", ["/"]]]]}, "imports.example",
                 {"imports_included": False, "imports_skip_reason": "unsupported_query",
                  "imports_warning": UNSUPPORTED_QUERY}, id="behavioral-filter"),
    pytest.param({"dimensions": ["visit:entry_page_hostname"]}, "imports.example",
                 {"imports_included": False, "imports_skip_reason": "unsupported_query",
                  "imports_warning": UNSUPPORTED_QUERY}, id="dimension-without-table"),
    pytest.param({"dimensions": ["time:hour"], "date_range": ["2026-03-05", "2026-03-05"]}, "imports.example",
                 {"imports_included": False, "imports_skip_reason": "unsupported_interval",
                  "imports_warning": UNSUPPORTED_INTERVAL}, id="unsupported_interval"),
    pytest.param({"date_range": ["2026-03-10", "2026-03-10"]}, "imports.example",
                 {"imports_included": False, "imports_skip_reason": "out_of_range"}, id="out_of_range"),
    pytest.param({}, "empty.example",
                 {"imports_included": False, "imports_skip_reason": "no_imported_data"}, id="no_imported_data"),
])
def test_skip_reasons(settings: Settings, serve: Callable[[str], int], dataset: None, body: dict[str, Any],
                      site: str, meta: dict[str, Any]) -> None:
    """Plausible's skip reasons and warnings; the answer is the native one."""
    response = query(settings, serve, **{"metrics": ["visitors"], "include": {"imports": True}, "site_id": site,
                                         **body})
    assert meta == imports_meta(response)
    native = query(settings, serve, **{"metrics": ["visitors"], "site_id": site, **body})
    assert results(native) == results(response)


def test_v1_with_imported(settings: Settings, serve: Callable[[str], int], dataset: None) -> None:
    """v1: with_imported=true merges; an unsupported query or interval says so in ``warning``."""
    assert {"results": {"visitors": {"value": 17}}} == v1(settings, serve, "aggregate", with_imported="true")
    assert {"results": {"visitors": {"value": 2}}} == v1(settings, serve, "aggregate")
    breakdown = v1(settings, serve, "breakdown", property="visit:source", with_imported="true",
                   filters="visit:device==Desktop")
    assert {"results": [{"source": "Google", "visitors": 1}], "warning": UNSUPPORTED_QUERY} == breakdown
    hourly = v1(settings, serve, "timeseries", period="day", date="2026-03-05",
                with_imported="true")
    assert UNSUPPORTED_INTERVAL == hourly["warning"]
    daily = v1(settings, serve, "timeseries", interval="date", with_imported="true")
    assert {"date": "2026-03-05", "visitors": 10} == daily["results"][4]
    assert "warning" not in daily


def test_scroll_depth_with_imports_lacking_it_is_native_and_warned(settings: Settings, serve: Callable[[str], int],
                                                                  dataset: None) -> None:
    """Plausible's ``no_imported_scroll_depth``: with imports included and none holding scroll depth, scroll
    depth is Beacon's own (no engagement events here: null) beside the merged visitors, and the meta says why."""
    response = query(settings, serve, metrics=["visitors", "scroll_depth"], dimensions=["event:page"],
                     include={"imports": True})
    assert [("/", 9, None), ("/docs", 3, None), ("/blog", 1, None), ("/pricing", 1, None)] == results(response)
    assert {"scroll_depth": {"code": "no_imported_scroll_depth",
                             "warning": "No imports with scroll depth data were found"}} == \
        response.json()["meta"]["metric_warnings"]
    native = query(settings, serve, metrics=["visitors", "scroll_depth"], dimensions=["event:page"])
    assert "metric_warnings" not in native.json()["meta"]


@pytest.fixture
def scrolled(settings: Settings, dataset: None) -> None:
    """Scroll depth on both sides. Native engagement events on 2026-03-10: visit 1 on / 40 % then 60 % (its
    deepest: 60), on /pricing 90 %; visit 2 on /blog 30 %. The completed import has scroll depth: / 450 over 9
    visits (50 on average), /docs 210 over 3 (70)."""
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        site = conn.execute(text("SELECT id FROM sites WHERE domain = 'imports.example'")).scalar_one()
        for session, minute, path, depth in [(1, 1, "/", 40), (1, 4, "/", 60), (1, 6, "/pricing", 90),
                                             (2, 61, "/blog", 30)]:
            conn.execute(text(
                "INSERT INTO engagements (site_id, timestamp, visitor_id, session_id, hostname, pathname, "
                "scroll_depth, engagement_time) VALUES (:site, :ts, :session, :session, 'imports.example', :path, "
                ":depth, 1000)"),
                {"site": site, "ts": datetime(2026, 3, 10, 9 + minute // 60, minute % 60, tzinfo=UTC),
                 "session": session, "path": path, "depth": depth})
        for page, total, visits in [("/", 450, 9), ("/docs", 210, 3)]:
            conn.execute(text("UPDATE imported_pages SET total_scroll_depth = :total, "
                              "total_scroll_depth_visits = :visits WHERE site_id = :site AND page = :page"),
                         {"site": site, "page": page, "total": total, "visits": visits})
        conn.execute(text("UPDATE site_imports SET has_scroll_depth = true WHERE site_id = :site "
                          "AND status = 'completed'"), {"site": site})
    engine.dispose()


def test_scroll_depth_merges_imported_scroll_depth(settings: Settings, serve: Callable[[str], int],
                                                   scrolled: None) -> None:
    """Plausible's merge: (native depths + imported ``total_scroll_depth``) / (native visits with a depth +
    ``total_scroll_depth_visits``): / (60 + 450) / (1 + 9) = 51; /docs 210 / 3 = 70 (imported only); /blog and
    /pricing native only, 30 and 90. No ``no_imported_scroll_depth`` warning: the import holds scroll depth."""
    response = query(settings, serve, metrics=["visitors", "scroll_depth"], dimensions=["event:page"],
                     include={"imports": True}, order_by=[["scroll_depth", "desc"]])
    assert [("/pricing", 1, 90), ("/docs", 3, 70), ("/", 9, 51), ("/blog", 1, 30)] == results(response)
    assert "metric_warnings" not in response.json()["meta"]
    native = query(settings, serve, metrics=["scroll_depth"], dimensions=["event:page"],
                   order_by=[["scroll_depth", "desc"]])
    assert [("/pricing", 90), ("/", 60), ("/blog", 30)] == results(native)


@pytest.mark.parametrize(("body", "expected"), [
    # Visit 1's deepest scroll on the pages kept (60) plus the imported / and /docs: (60 + 450 + 210) / 13 = 55.4.
    pytest.param({"filters": [["is", "event:page", ["/", "/docs"]]]}, [(55,)], id="aggregate"),
    # By day: the import's 5 March (450 / 9) and the native 10 March.
    pytest.param({"filters": [["is", "event:page", ["/"]]], "dimensions": ["time:day"]},
                 [("2026-03-05", 50), ("2026-03-10", 60)], id="by-day"),
])
def test_scroll_depth_merged_aggregate_and_by_day(settings: Settings, serve: Callable[[str], int], scrolled: None,
                                                  body: dict[str, Any], expected: list[tuple[Any, ...]]) -> None:
    assert expected == results(query(settings, serve, metrics=["scroll_depth"], include={"imports": True}, **body))


def test_scroll_depth_and_legacy_time_on_page_warnings_together(settings: Settings, serve: Callable[[str], int],
                                                                dataset: None) -> None:
    """Both of Plausible's metric warnings in one answer: the import lacks scroll depth, and the range reaches
    before the site's first engagement event (2026-03-10)."""
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO engagements (site_id, timestamp, visitor_id, session_id, hostname, pathname, scroll_depth, "
            "engagement_time) SELECT id, :ts, 1, 1, domain, '/', 40, 5000 FROM sites WHERE domain = 'imports.example'"),
            {"ts": datetime(2026, 3, 10, 9, 1, tzinfo=UTC)})
    engine.dispose()
    response = query(settings, serve, metrics=["scroll_depth", "time_on_page"], filters=[["is", "event:page", ["/"]]],
                     include={"imports": True})
    assert [(40, 5)] == results(response)
    assert {"scroll_depth": {"code": "no_imported_scroll_depth",
                             "warning": "No imports with scroll depth data were found"},
            "time_on_page": {"code": "legacy_time_on_page_used", "message": "This period includes data calculated "
                             "with the legacy time on page method up to 2026-03-10"}} == \
        response.json()["meta"]["metric_warnings"]


def _imported_time_on_page(settings: Settings, pages: dict[str, tuple[int, int]]) -> None:
    """Set the import's ``total_time_on_page`` (seconds) and ``total_time_on_page_visits`` per page."""
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        for page, (total, visits) in pages.items():
            conn.execute(text("UPDATE imported_pages SET total_time_on_page = :total, "
                              "total_time_on_page_visits = :visits WHERE page = :page AND site_id = "
                              "(SELECT id FROM sites WHERE domain = 'imports.example')"),
                         {"page": page, "total": total, "visits": visits})
    engine.dispose()


@pytest.fixture
def timed(settings: Settings, dataset: None) -> None:
    """Time on page on both sides. Native engagement events on 2026-03-10 (so the site's legacy cutoff is that
    day, and no native event comes before it): visit 1 on / 120 s, on /pricing 30 s; visit 2 on /blog 10 s. The
    completed import: / 180 s over 9 visits (20 on average, Plausible's test), /docs 100 s over 4 (25)."""
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        site = conn.execute(text("SELECT id FROM sites WHERE domain = 'imports.example'")).scalar_one()
        for session, minute, path, milliseconds in [(1, 1, "/", 120_000), (1, 6, "/pricing", 30_000),
                                                    (2, 61, "/blog", 10_000)]:
            conn.execute(text(
                "INSERT INTO engagements (site_id, timestamp, visitor_id, session_id, hostname, pathname, "
                "scroll_depth, engagement_time) VALUES (:site, :ts, :session, :session, 'imports.example', :path, "
                "50, :ms)"),
                {"site": site, "ts": datetime(2026, 3, 10, 9 + minute // 60, minute % 60, tzinfo=UTC),
                 "session": session, "path": path, "ms": milliseconds})
    engine.dispose()
    _imported_time_on_page(settings, {"/": (180, 9), "/docs": (100, 4)})


def test_time_on_page_merges_imported_time_on_page(settings: Settings, serve: Callable[[str], int],
                                                   timed: None) -> None:
    """Plausible's merge (its test: (120 + 9 x 20) / 10 = 30): (native engaged seconds + imported
    ``total_time_on_page``) / (native visits + ``total_time_on_page_visits``): / 300 / 10 = 30; /docs 100 / 4 = 25
    (imported only); /blog and /pricing native only, 10 and 30. No metric warning: the range starts before the
    cutoff but no native event does, and Plausible has no imported time-on-page warning."""
    response = query(settings, serve, metrics=["visitors", "time_on_page"], dimensions=["event:page"],
                     include={"imports": True})
    assert [("/", 9, 30), ("/docs", 3, 25), ("/blog", 1, 10), ("/pricing", 1, 30)] == results(response)
    assert {"imports_included": True} == imports_meta(response)
    native = query(settings, serve, metrics=["visitors", "time_on_page"], dimensions=["event:page"])
    assert [("/", 1, 120), ("/blog", 1, 10), ("/pricing", 1, 30)] == results(native)


@pytest.mark.parametrize(("body", "expected"), [
    # Visit 1's 120 s on / plus the imported / and /docs: (120 + 180 + 100) / (1 + 9 + 4) = 28.6.
    pytest.param({"filters": [["is", "event:page", ["/", "/docs"]]]}, [(29,)], id="aggregate"),
    # By day: the import's 5 March (180 / 9) and the native 10 March (120 / 1).
    pytest.param({"filters": [["is", "event:page", ["/"]]], "dimensions": ["time:day"]},
                 [("2026-03-05", 20), ("2026-03-10", 120)], id="by-day"),
    # By hostname (imported_pages holds it): every page of both sides, (120 + 30 + 10 + 280) / (2 + 13) = 29.3.
    pytest.param({"filters": [["contains", "event:page", ["/"]]], "dimensions": ["event:hostname"]},
                 [("imports.example", 29)], id="by-hostname"),
])
def test_time_on_page_merged_aggregate_and_by_dimension(settings: Settings, serve: Callable[[str], int],
                                                        timed: None, body: dict[str, Any],
                                                        expected: list[tuple[Any, ...]]) -> None:
    assert expected == results(query(settings, serve, metrics=["time_on_page"], include={"imports": True}, **body))


def test_time_on_page_merges_imports_with_the_legacy_part(settings: Settings, serve: Callable[[str], int],
                                                          dataset: None) -> None:
    """No engagement events: Beacon's own time on page is the legacy one (visit 1: / then /pricing 300 s later,
    one transition). The imported / adds 180 s over 9 visits: (300 + 180) / (1 + 9) = 48. Without imported time
    on page (zeros) the answer is the native 300."""
    body: dict[str, Any] = {"metrics": ["time_on_page"], "filters": [["is", "event:page", ["/"]]],
                            "include": {"imports": True}}
    assert [(300,)] == results(query(settings, serve, **body))
    _imported_time_on_page(settings, {"/": (180, 9)})
    assert [(48,)] == results(query(settings, serve, **body))
    by_page = query(settings, serve, **{**body, "dimensions": ["event:page"], "filters": []})
    assert [("/", 48), ("/blog", None), ("/docs", None), ("/pricing", None)] == results(by_page)


def test_imported_regions_and_cities_join_the_unknown_native_ones(settings: Settings, serve: Callable[[str], int],
                                                                  dataset: None) -> None:
    """v2 by city: Berlin from the import (visitors 4+1, visits 5+1) and the native city 0 (2 visitors, 2
    visits); the imported FR row without a city is left out, as Plausible's imported city groups leave out 0."""
    rows = results(query(settings, serve, metrics=["visitors", "visits"], dimensions=["visit:city"],
                         include={"imports": True}))
    assert [(2950159, 5, 6), (0, 2, 2)] == rows
    rows = results(query(settings, serve, metrics=["visitors", "visits"], dimensions=["visit:region"],
                         include={"imports": True}))
    assert [("DE-BE", 5, 6), ("", 2, 2)] == rows


@pytest.mark.parametrize(("condition", "expected"), [
    # Only imported Berlin: visitors 4+1, visits 5+1, pageviews 9+2.
    pytest.param(["is", "visit:city", [2950159]], (5, 6, 11), id="city-is"),
    # The native visits (2, 2, 3) and the imported FR row (3, 3, 3).
    pytest.param(["is_not", "visit:city", [2950159]], (5, 5, 6), id="city-is-not"),
    pytest.param(["contains", "visit:region", ["BE"]], (5, 6, 11), id="region-contains"),
    pytest.param(["is", "visit:region", [""]], (5, 5, 6), id="region-is-empty"),
])
def test_region_and_city_filters_with_imports(settings: Settings, serve: Callable[[str], int], dataset: None,
                                              condition: list[Any], expected: tuple[int, ...]) -> None:
    """(visitors, visits, pageviews): a place filter keeps imported rows of the place, native visits never."""
    response = query(settings, serve, metrics=["visitors", "visits", "pageviews"], filters=[condition],
                     include={"imports": True})
    assert [expected] == results(response)
    assert {"imports_included": True} == imports_meta(response)


def test_v1_breakdown_by_city_with_imports(settings: Settings, serve: Callable[[str], int], dataset: None) -> None:
    """v1 leaves out city 0 and region '' (Plausible's legacy breakdown): only the imported Berlin, DE-BE."""
    assert [{"city": 2950159, "visitors": 5}] == v1(settings, serve, "breakdown", property="visit:city",
                                                    with_imported="true")["results"]
    assert [{"region": "DE-BE", "visitors": 5}] == v1(settings, serve, "breakdown", property="visit:region",
                                                      with_imported="true")["results"]
    assert [] == v1(settings, serve, "breakdown", property="visit:city")["results"]


def test_city_names_are_answered_without_imports(settings: Settings, serve: Callable[[str], int],
                                                 dataset: None) -> None:
    """Beacon has no GeoNames names for imported ids: by city name the answer is native only, and says so."""
    response = query(settings, serve, metrics=["visitors"], dimensions=["visit:city_name"], include={"imports": True})
    assert [("", 2)] == results(response)
    assert {"imports_included": False, "imports_skip_reason": "unsupported_query",
            "imports_warning": UNSUPPORTED_QUERY} == imports_meta(response)


def test_country_names_with_imports(settings: Settings, serve: Callable[[str], int], dataset: None) -> None:
    """By country name: Germany native 1 visitor, 1 visit + imported 5, 6; France native 1, 1 + imported 3, 3."""
    response = query(settings, serve, metrics=["visitors", "visits"], dimensions=["visit:country_name"],
                     include={"imports": True})
    assert [("Germany", 6, 7), ("France", 4, 4)] == results(response)
    assert {"imports_included": True} == imports_meta(response)
    response = query(settings, serve, metrics=["visitors", "visits", "pageviews"],
                     filters=[["is", "visit:country_name", ["France"]]], include={"imports": True})
    assert [(4, 4, 4)] == results(response)
