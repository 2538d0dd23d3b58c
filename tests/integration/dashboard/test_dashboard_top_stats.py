"""What the dashboard's top stats, chart and reports show under a goal filter and under a page filter.

Plausible's dashboard (StatsController.top_stats and its reports' breakdown_metrics) replaces the usual tiles
under a goal filter by "Unique visitors", "Unique conversions", "Total conversions", "Average revenue", "Total
revenue" (revenue goals only) and "Conversion rate", and the reports' columns by "Conversions" and "CR"; under a
page filter it shows bounce rate, time on page and scroll depth in place of views per visit and visit duration.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from tests.support.accounts import Servers, World, signed_in

# visitor, name, path, source, revenue in USD
EVENTS: list[tuple[int, str, str, str, Decimal | None]] = [
    (1, "pageview", "/", "Google", None),
    (2, "pageview", "/pricing", "", None),
    (2, "pageview", "/", "", None),
    (2, "Signup", "/pricing", "", Decimal("10")),
    (3, "pageview", "/", "", None),
    (3, "Signup", "/", "", Decimal("30")),
    (3, "Signup", "/", "", Decimal("20")),
    (4, "pageview", "/pricing", "", None),
    (4, "Download", "/pricing", "", None),
]


@pytest.fixture
def site(servers: Servers, world: World, serve: Callable[[str], int]) -> int:
    """goals.example: four visitors today, two of whom signed up three times for $60 in all."""
    serve("analytics")
    owner = world.user("owner@example.com")
    site_id = world.site("goals.example", {owner: "owner"})
    for name in ("Signup", "Download"):
        world.sql("INSERT INTO goals (site_id, event_name, display_name) VALUES (:s, :n, :n)", s=site_id, n=name)
    for visitor, name, path, source, revenue in EVENTS:
        world.sql("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, "
                  "referrer_source, props, revenue_amount, revenue_currency) VALUES (:s, now(), :n, :v, :v, "
                  "'goals.example', :p, :r, CAST(:props AS jsonb), :amount, :currency)", s=site_id, n=name,
                  v=visitor, p=path, r=source, props=json.dumps({}), amount=revenue,
                  currency="USD" if revenue is not None else None)
    return site_id


def get(servers: Servers, world: World, part: str, **params: Any) -> Any:
    with signed_in(servers, world, world.users["owner@example.com"]) as client:
        response = client.get(f"/sites/goals.example/stats/{part}", params={"period": "today", **params},
                              headers={"Accept": "application/json"})
    assert 200 == response.status_code, response.text
    return response.json()


def tiles(body: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(stat["label"], body["metrics"][stat["name"]]["value"]) for stat in body["top"]]


def test_unfiltered_tiles(servers: Servers, world: World, site: int) -> None:
    body = get(servers, world, "overview")
    assert ["Unique visitors", "Total visits", "Total pageviews", "Views per visit", "Bounce rate",
            "Visit duration"] == [label for label, _ in tiles(body)]
    # 5 pageviews in 4 visits; visitor 1 alone left after one pageview and nothing else (1 of 4 bounced).
    assert [4, 4, 5, 1.25, 25] == [value for _, value in tiles(body)][:5]


def test_goal_filter_tiles(servers: Servers, world: World, site: int) -> None:
    """2 of 4 visitors converted, 3 times, for $60 ($20 each on average)."""
    body = get(servers, world, "overview", f="goal==Signup", compare="previous")
    assert ["Unique visitors", "Unique conversions", "Total conversions", "Average revenue", "Total revenue",
            "Conversion rate"] == [label for label, _ in tiles(body)]
    values = dict(tiles(body))
    assert (4, 2, 3, 50.0) == (values["Unique visitors"], values["Unique conversions"],
                               values["Total conversions"], values["Conversion rate"])
    assert ({"currency": "USD", "value": 20.0, "long": "$20.00", "short": "$20.0"},
            {"currency": "USD", "value": 60.0, "long": "$60.00", "short": "$60.0"}) == \
        (values["Average revenue"], values["Total revenue"])
    # Nothing the day before: the conversion rate's change is in points.
    assert (0, 50.0) == (body["metrics"]["conversion_rate"]["previous"], body["metrics"]["conversion_rate"]["change"])
    assert not [stat for stat in body["top"] if stat["graphable"] != (stat["name"] != "total_visitors")]


def test_goal_without_revenue_has_no_revenue_tiles(servers: Servers, world: World, site: int) -> None:
    body = get(servers, world, "overview", f="goal==Download")
    assert [("Unique visitors", 4), ("Unique conversions", 1), ("Total conversions", 1),
            ("Conversion rate", 25.0)] == tiles(body)


def test_goal_filter_chart_metric(servers: Servers, world: World, site: int) -> None:
    """The chart draws any of the goal's tiles but its unique visitors; a metric the goal filter does not show
    (pageviews) falls back to visitors."""
    rate = get(servers, world, "overview", f="goal==Signup", metric="conversion_rate")
    total = get(servers, world, "overview", f="goal==Signup", metric="total_revenue")
    fallback = get(servers, world, "overview", f="goal==Signup", metric="pageviews")
    assert ("conversion_rate", 50.0) == (rate["state"]["metric"], max(rate["series"]["conversion_rate"]))
    assert ("total_revenue", 60.0) == (total["state"]["metric"], max(total["series"]["total_revenue"]))
    assert ("visitors", 2, {"labels", "interval", "visitors"}) == (
        fallback["state"]["metric"], max(fallback["series"]["visitors"]), set(fallback["series"]))


def test_page_filter_tiles(servers: Servers, world: World, site: int) -> None:
    """Visitors 1, 2 and 3 viewed /, once each; no engagement events, so no scroll depth and a time on page
    of 0 (Plausible shows 0 too); the chart keeps a top stat of this set (bounce rate)."""
    body = get(servers, world, "overview", f="page==/", metric="bounce_rate")
    assert ["Unique visitors", "Total visits", "Total pageviews", "Bounce rate", "Time on page",
            "Scroll depth"] == [label for label, _ in tiles(body)]
    values = dict(tiles(body))
    # Three visits saw /; the bounce rate is Plausible's under a page filter, of the visits entering on / only:
    # visitor 2 entered on /pricing, and of visitors 1 and 3 visitor 1 alone had one pageview and nothing else.
    assert (3, 3, 3, 50, 0, None) == (values["Unique visitors"], values["Total visits"], values["Total pageviews"],
                                      values["Bounce rate"], values["Time on page"], values["Scroll depth"]), values
    assert ("bounce_rate", 50) == (body["state"]["metric"], max(body["series"]["bounce_rate"]))


def test_goal_filtered_reports(servers: Servers, world: World, site: int) -> None:
    """Sources: Direct / None brought 3 visitors, 2 of them converted (66.7 %); Google's one did not."""
    sources = get(servers, world, "breakdown", f="goal==Signup", dimension="source")
    assert (["visitors", "conversion_rate"], {"visitors": "Conversions", "conversion_rate": "CR"}) == \
        (sources["metrics"], sources["labels"])
    assert [{"value": "Direct / None", "visitors": 2, "conversion_rate": 66.7}] == sources["rows"]
    goals = get(servers, world, "breakdown", f="goal==Signup", dimension="goal")
    assert [{"value": "Signup", "visitors": 2, "events": 3, "conversion_rate": 50.0}] == goals["rows"]
    assert {} == goals["labels"]
