"""Which imported table answers a query (Plausible's decide_tables), table-driven."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.analytics.imports import Imports, decide_table
from services.analytics.query import parse_query

NOW = datetime(2026, 3, 20, tzinfo=UTC)


def table_for(**body: object) -> str | None:
    query = parse_query({"site_id": "x.example", "date_range": "7d", "metrics": ["visitors"], **body},
                        timezone="UTC", now=NOW)
    return decide_table(query)


@pytest.mark.parametrize(("body", "expected"), [
    pytest.param({}, "imported_visitors", id="aggregate"),
    pytest.param({"dimensions": ["time:day"]}, "imported_visitors", id="time-only"),
    pytest.param({"dimensions": ["visit:source"]}, "imported_sources", id="source"),
    pytest.param({"dimensions": ["visit:utm_campaign", "time:week"]}, "imported_sources", id="utm-by-week"),
    pytest.param({"dimensions": ["visit:browser", "visit:browser_version"]}, "imported_browsers",
                 id="browser-and-version"),
    pytest.param({"dimensions": ["visit:os"], "filters": [["is", "visit:os_version", ["14"]]]},
                 "imported_operating_systems", id="os-filtered-by-version"),
    pytest.param({"dimensions": ["event:page"], "filters": [["is", "event:hostname", ["a.example"]]]},
                 "imported_pages", id="page-and-hostname"),
    pytest.param({"filters": [["is", "visit:entry_page", ["/"]]]}, "imported_entry_pages", id="entry-filter"),
    pytest.param({"dimensions": ["event:name"]}, "imported_custom_events", id="event-name"),
    pytest.param({"dimensions": ["visit:source", "visit:device"]}, None, id="two-tables"),
    pytest.param({"dimensions": ["visit:source"], "filters": [["is", "event:page", ["/"]]]}, None,
                 id="filter-on-another-table"),
    pytest.param({"dimensions": ["visit:entry_page_hostname"]}, None, id="no-imported-column"),
    pytest.param({"dimensions": ["event:props:plan"]}, None, id="custom-property"),
    pytest.param({"dimensions": ["event:goal"]}, None, id="goals"),
])
def test_decide_table(body: dict[str, object], expected: str | None) -> None:
    """One table holding every dimension and filtered dimension, else None."""
    assert expected == table_for(**body)


@pytest.mark.parametrize(("imports", "meta"), [
    pytest.param(Imports(False, "no_imported_data"), {}, id="not-requested"),
    pytest.param(Imports(True, None, "imported_visitors", (1,)), {"imports_included": True}, id="included"),
    pytest.param(Imports(True, "out_of_range"), {"imports_included": False, "imports_skip_reason": "out_of_range"},
                 id="no-warning"),
    pytest.param(Imports(True, "unsupported_interval"),
                 {"imports_included": False, "imports_skip_reason": "unsupported_interval",
                  "imports_warning": "Imported stats are not included because the time dimension (i.e. the "
                                     "interval) is too short."}, id="warning"),
])
def test_meta_fields(imports: Imports, meta: dict[str, object]) -> None:
    """Plausible's meta: only when asked for; the warning only for unsupported queries and intervals."""
    assert meta == imports.meta()
