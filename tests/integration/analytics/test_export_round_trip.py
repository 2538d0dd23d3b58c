"""Round trip: a Beacon site's CSV export, imported by the Plausible importer into a new site, answers the same.

Ninety days of generated traffic (America/New_York), with an engagement event after each pageview (scroll depth,
engaged time), are exported by the analytics service, the zip is imported
into an empty site by the import job, and every daily query the imported tables can answer (each day's
aggregate, and each day's breakdown by every imported dimension) gives the original site's native answer
exactly, but for the visit duration: Beacon's durations have sub-second parts and the export's total duration
is whole seconds (Plausible's column is an integer), so an average may round one second apart. Over the whole
range the imported site's visitors are the sum of the daily visitors, as imported stats are in Plausible;
pageviews match outright. Scroll depth and time on page per day and page match exactly.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from app.core.db import make_engine
from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.settings import Settings
from services.integrations.imports import job, store
from services.integrations.imports.files import imports_dir, store_stream
from tests.support.datagen import generate

TZ = "America/New_York"
DAYS = 90
SESSION = ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"]


@pytest.fixture
def copied(settings: Settings, db: None, serve: Callable[[str], int], tmp_path: Path) -> tuple[list[str], int]:
    """(the exported range, the import's id): source.example's 90 days exported and imported into copy.example."""
    last = datetime.now(UTC).astimezone(ZoneInfo(TZ)).date() - timedelta(days=1)
    first = last - timedelta(days=DAYS - 1)
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        ids = [conn.execute("INSERT INTO sites (domain, timezone, created_at) VALUES (%s, %s, %s) RETURNING id",
                            (domain, TZ, datetime(2020, 1, 1, tzinfo=UTC))).fetchone() for domain in
               ("source.example", "copy.example")]
    source_id, copy_id = (int(row[0]) for row in ids if row is not None)
    generate(settings.database.libpq_url, source_id, "source.example", events=12_000, days=DAYS, end=last, tz=TZ,
             seed=11)
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        # An engagement event 5 s after each pageview: scroll depth from the event's id (none for every fifth),
        # engaged time in whole seconds (0 to 119; the export's column is whole seconds, as Plausible's).
        conn.execute(
            "INSERT INTO engagements (site_id, timestamp, visitor_id, session_id, hostname, pathname, scroll_depth, "
            "engagement_time) SELECT site_id, timestamp + interval '5 seconds', visitor_id, session_id, hostname, "
            "pathname, CASE WHEN id %% 5 <> 0 THEN (id * 37) %% 101 END, ((id * 7) %% 120) * 1000 FROM events "
            "WHERE site_id = %s AND name = 'pageview'", (source_id,))
    response = httpx.get(f"http://127.0.0.1:{serve('analytics')}/sites/{source_id}/export",
                         params={"date_range": f"{first},{last}"},
                         headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=120)
    assert 200 == response.status_code, response.text
    limits = settings.imports
    stored = store_stream(io.BytesIO(response.content), imports_dir(settings.paths.state_dir), store.upload_name(),
                          limits.max_upload)
    engine = make_engine(settings.database)
    try:
        import_id = store.create_import(engine, copy_id, "plausible", stored, "export.zip", limits)
        assert "completed" == job.run_import(engine, limits, import_id)
    finally:
        engine.dispose()
    return [first.isoformat(), last.isoformat()], import_id


def query(settings: Settings, serve: Callable[[str], int], site: str, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"http://127.0.0.1:{serve('analytics')}/query", json={"site_id": site, **body},
                          headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=60)
    assert 200 == response.status_code, response.text
    answer: dict[str, Any] = response.json()
    return answer


def both(settings: Settings, serve: Callable[[str], int], **body: Any) -> tuple[list[Any], list[Any]]:
    """(the original's native rows, the copy's rows from its imports), sorted."""
    original = query(settings, serve, "source.example", **body)
    copy = query(settings, serve, "copy.example", include={"imports": True, "total_rows": True}, **body)
    assert {"imports_included": True} == {k: v for k, v in copy["meta"].items() if k.startswith("imports_")}
    assert copy["meta"]["total_rows"] == len(copy["results"])
    return (sorted(map(_row, original["results"])), sorted(map(_row, copy["results"])))


def _row(row: dict[str, Any]) -> tuple[Any, ...]:
    return (*row["dimensions"], *row["metrics"])


def assert_same(original: list[Any], copy: list[Any], metrics: list[str]) -> None:
    """Equal rows; the visit duration (the last metric when asked for) within one second."""
    if "visit_duration" not in metrics:
        assert original == copy
        return
    assert metrics[-1] == "visit_duration"
    assert [r[:-1] for r in original] == [r[:-1] for r in copy]
    far = [(a, b) for a, b in zip(original, copy, strict=True) if abs(a[-1] - b[-1]) > 1]
    assert [] == far


def test_daily_aggregates_match(settings: Settings, serve: Callable[[str], int],
                                copied: tuple[list[str], int]) -> None:
    """Every day: visitors, visits, pageviews, bounce rate and visit duration."""
    original, copy = both(settings, serve, metrics=SESSION, date_range=copied[0], dimensions=["time:day"])
    assert DAYS == len(original)
    assert_same(original, copy, SESSION)


BREAKDOWNS = [
    ("visit:source", SESSION, []),
    ("visit:utm_medium", SESSION, []),
    # A channel spans sources and a browser its versions (the rows of their files): their visitors add up across
    # those rows, as imported visitors do in Plausible; the rest is exact.
    ("visit:channel", SESSION[1:], []),
    ("event:page", ["visitors", "visits", "pageviews"], []),
    ("visit:entry_page", SESSION, []),
    ("visit:exit_page", SESSION, []),
    ("visit:country", SESSION, []),
    ("visit:device", SESSION, []),
    ("visit:browser", SESSION[1:], []),
    ("visit:os_version", SESSION, []),
    ("event:name", ["visitors", "events"], [["is_not", "event:name", ["pageview"]]]),
]


def test_daily_breakdowns_match(settings: Settings, serve: Callable[[str], int],
                                copied: tuple[list[str], int]) -> None:
    """Every (day, group) of every imported dimension (one export and import for all of them: it is the slow
    part)."""
    for dimension, metrics, filters in BREAKDOWNS:
        original, copy = both(settings, serve, metrics=metrics, date_range=copied[0],
                              dimensions=["time:day", dimension], filters=filters)
        assert original, dimension
        assert_same(original, copy, metrics)


def test_range_totals(settings: Settings, serve: Callable[[str], int], copied: tuple[list[str], int]) -> None:
    """Over the range: the same pageviews; visitors the sum of the daily visitors."""
    daily = query(settings, serve, "source.example", metrics=["visitors"], date_range=copied[0],
                  dimensions=["time:day"])
    original = query(settings, serve, "source.example", metrics=["pageviews"], date_range=copied[0])
    copy = query(settings, serve, "copy.example", metrics=["visitors", "pageviews"], date_range=copied[0],
                 include={"imports": True})
    assert [sum(r["metrics"][0] for r in daily["results"]), original["results"][0]["metrics"][0]] \
        == copy["results"][0]["metrics"]


def test_daily_scroll_depth_and_time_on_page_match(settings: Settings, serve: Callable[[str], int],
                                                   copied: tuple[list[str], int]) -> None:
    """Every (day, page): the copy's scroll depth and time on page, from the imported pages' totals alone, are the
    original's from its engagement events."""
    metrics = ["visitors", "scroll_depth", "time_on_page"]
    original, copy = both(settings, serve, metrics=metrics, date_range=copied[0],
                          dimensions=["time:day", "event:page"])
    assert any(row[3] is not None for row in original) and any(row[4] for row in original)
    assert original == copy
