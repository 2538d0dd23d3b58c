"""The dashboard's URL state: date presets in the site's time zone, intervals and filters."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from app.core.errors import ClientError
from app.core.models import Site
from app.domain.dashboard.services import default_interval, parse_filter, parse_state

# 23:30 UTC on 2026-03-31 is already 1 April in Berlin.
NOW = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
SITE = Site(domain="state.example", timezone="Europe/Berlin")


@pytest.mark.parametrize(("period", "first", "last"), [
    pytest.param("today", date(2026, 4, 1), date(2026, 4, 1), id="today"),
    # Plausible's last N days and last N months end before today and before this month.
    pytest.param("7d", date(2026, 3, 25), date(2026, 3, 31), id="7d"),
    pytest.param("30d", date(2026, 3, 2), date(2026, 3, 31), id="30d"),
    pytest.param("month", date(2026, 4, 1), date(2026, 4, 1), id="month"),
    pytest.param("6mo", date(2025, 10, 1), date(2026, 3, 31), id="6mo"),
    pytest.param("12mo", date(2025, 4, 1), date(2026, 3, 31), id="12mo"),
    pytest.param("all", None, date(2026, 4, 1), id="all"),
])
def test_presets_follow_plausible_in_the_sites_time_zone(period: str, first: date | None, last: date) -> None:
    state = parse_state({"period": [period]}, SITE, now=NOW)
    assert (first, last) == (state.first, state.last)


@pytest.mark.parametrize(("created", "period"), [
    pytest.param(datetime(2026, 3, 31, 8, tzinfo=UTC), "today", id="added-yesterday"),
    pytest.param(datetime(2026, 3, 29, 8, tzinfo=UTC), "30d", id="added-before"),
])
def test_default_period_is_today_for_a_new_site(created: datetime, period: str) -> None:
    """Without a period: today for a site added today or yesterday (its last 30 days are empty), else 30 days."""
    site = Site(domain="state.example", timezone="Europe/Berlin", created_at=created)
    assert period == parse_state({}, site, now=NOW).period


def test_previous_period_has_the_same_length() -> None:
    state = parse_state({"period": ["custom"], "from": ["2026-02-01"], "to": ["2026-02-10"],
                         "compare": ["previous"]}, SITE, now=NOW)
    assert (date(2026, 1, 22), date(2026, 1, 31)) == state.previous()


@pytest.mark.parametrize(("days", "interval"), [(1, "hour"), (7, "day"), (31, "day"), (40, "day"), (91, "week"),
                                                (120, "week"), (121, "month"), (365, "month")])
def test_default_interval(days: int, interval: str) -> None:
    assert interval == default_interval(days)


@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param("page==/a==b", ("page", "/a==b", False), id="first-separator-wins"),
    pytest.param("source!=Google", ("source", "Google", True), id="negated"),
    pytest.param("props:plan==pro", ("props:plan", "pro", False), id="property"),
])
def test_filters(raw: str, expected: tuple[str, str, bool]) -> None:
    parsed = parse_filter(raw)
    assert expected == (parsed.name, parsed.value, parsed.negated)
    assert raw == parsed.param()


def test_props_filter_becomes_an_event_property_dimension() -> None:
    assert ["is", "event:props:plan", ["pro"]] == parse_filter("props:plan==pro").v2()


@pytest.mark.parametrize("raw", ["page", "city==Berlin", "props:==x", "page=="])
def test_bad_filters(raw: str) -> None:
    with pytest.raises(ClientError, match=r"^f: "):
        parse_filter(raw)
