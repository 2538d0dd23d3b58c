"""Export formats: Plausible's file names and the columns of each of its export versions, Umami's names."""

from __future__ import annotations

import datetime as dt

import pytest

from services.integrations.imports import plausible, umami
from services.integrations.imports.files import ImportRefused


@pytest.mark.parametrize(("name", "table"), [
    pytest.param("imported_pages_20240101_20240331.csv", "imported_pages", id="full"),
    pytest.param("pages_20240101_20240331.csv", "imported_pages", id="short"),
    pytest.param("imported_custom_events_20240101_20240331.csv", "imported_custom_events", id="underscores"),
    pytest.param("export/imported_operating_systems_20240101_20240331.csv", "imported_operating_systems",
                 id="in-a-directory"),
    pytest.param("imported_visitors.csv", "imported_visitors", id="no-dates"),
])
def test_plausible_file_names(name: str, table: str) -> None:
    """The names Plausible's CSV importer accepts (``parse_filename!``) give their table."""
    assert table == plausible.table_of(name)


@pytest.mark.parametrize("name", ["my_data.csv", "imported_sessions_20240101_20240131.csv", "pages.json"])
def test_other_file_names_are_refused(name: str) -> None:
    with pytest.raises(ImportRefused, match="not a file of Plausible's CSV export"):
        plausible.table_of(name)


@pytest.mark.parametrize("header", [
    pytest.param("date,hostname,page,visitors,pageviews,exits,time_on_page", id="2024-01"),
    pytest.param("date,hostname,page,visits,visitors,pageviews,scroll_depth,pageleave_visitors", id="2024-12"),
    pytest.param("date,hostname,page,visits,visitors,pageviews,total_scroll_depth,total_scroll_depth_visits",
                 id="2025-02"),
    pytest.param("date,hostname,page,visits,visitors,pageviews,total_scroll_depth,total_scroll_depth_visits,"
                 "total_time_on_page,total_time_on_page_visits", id="2025-11"),
])
def test_every_version_of_the_pages_export_is_read(header: str) -> None:
    """Columns Plausible's export added later are optional, columns it dropped are ignored."""
    columns = header.split(",")
    plausible.check_header(plausible.SPECS["imported_pages"], columns, "pages.csv")
    values = dict(zip(columns, ["2024-01-02", "example.com", "/", *["3"] * (len(columns) - 3)], strict=True))

    day, row = plausible.parse_row(plausible.SPECS["imported_pages"], values, "pages.csv", 2, dt.date(2024, 2, 1))

    out = dict(zip(plausible.SPECS["imported_pages"].columns, row, strict=True))
    assert (dt.date(2024, 1, 2), "/", 3) == (day, out["page"], out["pageviews"])
    assert (3 if "visits" in columns else 0) == out["visits"]


def test_a_null_of_an_older_export_is_zero() -> None:
    """ClickHouse wrote a Nullable scroll depth as \\N."""
    assert 0 == plausible.parse_count("\\N", "pages.csv", 2, "total_scroll_depth")


@pytest.mark.parametrize(("raw", "name"), [("Windows 10", "Windows"), ("Mac OS", "Mac"), ("Android OS", "Android"),
                                          ("iOS", "iOS"), ("Linux", "GNU/Linux"), ("BeOS", "BeOS")])
def test_umami_systems_become_plausibles(raw: str, name: str) -> None:
    assert name == umami.operating_system(raw)


def test_umami_rows_take_plausibles_names() -> None:
    """Browser ids, devices, ``www.`` and a region without its country are put in Plausible's terms."""
    values = dict.fromkeys(umami.KNOWN, "")
    values.update(session_id="s", url_path="", event_type="1", created_at="2024-03-15T10:00:00Z",
                  browser="edge-chromium", device="tablet", hostname="www.example.com", country="de",
                  region="BE", referrer_domain="www.news.example")
    parsed = umami.parse_row(values, "e.csv", 2, dt.datetime(2024, 4, 1, tzinfo=dt.UTC))

    assert parsed is not None
    staged = dict(zip(umami.STAGED, parsed[1], strict=True))
    assert ("Microsoft Edge", "Tablet", "example.com", "/", "DE", "DE-BE", "news.example", "s") == (
        staged["browser"], staged["device"], staged["hostname"], staged["url_path"], staged["country"],
        staged["region"], staged["referrer_domain"], staged["visit_id"])
