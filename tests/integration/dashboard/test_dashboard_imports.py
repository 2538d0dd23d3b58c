"""The dashboard's imports toggle: imported stats join its numbers by default and leave with ``imports=off``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.accounts import Servers, World, signed_in


@pytest.fixture
def site(servers: Servers, world: World, serve: Callable[[str], int]) -> int:
    """imported.example: one native visitor and a completed import with 10 visitors, both yesterday (the
    dashboard's "Last 7 days" ends yesterday, as Plausible's does)."""
    serve("analytics")
    owner = world.user("owner@example.com")
    site_id = world.site("imported.example", {owner: "owner"})
    world.sql("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
              "VALUES (:s, date_trunc('day', now()) - interval '12 hours', 'pageview', 1, 1, 'imported.example', '/')",
              s=site_id)
    import_id = world.sql("INSERT INTO site_imports (site_id, source, status, start_date, end_date) VALUES "
                          "(:s, 'plausible', 'completed', current_date - 1, current_date - 1) RETURNING id",
                          s=site_id)[0][0]
    world.sql("INSERT INTO imported_visitors (site_id, import_id, date, visitors, pageviews, bounces, visits, "
              "visit_duration) VALUES (:s, :i, current_date - 1, 10, 20, 5, 10, 100)", s=site_id, i=import_id)
    return site_id


def overview(servers: Servers, world: World, **params: str) -> Any:
    with signed_in(servers, world, world.users["owner@example.com"]) as client:
        return client.get("/sites/imported.example/stats/overview", params={"period": "7d", **params},
                          headers={"Accept": "application/json"})


def test_imports_count_by_default(servers: Servers, world: World, site: int) -> None:
    """1 native + 10 imported visitors; the answer says imports were included."""
    response = overview(servers, world)
    assert 200 == response.status_code, response.text
    body = response.json()
    assert (11, 21) == (body["metrics"]["visitors"]["value"], body["metrics"]["pageviews"]["value"])
    assert {"imports_included": True} == body["imports"]
    assert body["state"]["imports"] is True


def test_imports_off_leaves_them_out(servers: Servers, world: World, site: int) -> None:
    body = overview(servers, world, imports="off").json()
    assert (1, 1) == (body["metrics"]["visitors"]["value"], body["metrics"]["pageviews"]["value"])
    assert {} == body["imports"]


def test_bad_toggle_value_is_refused(servers: Servers, world: World, site: int) -> None:
    response = overview(servers, world, imports="maybe")
    assert 400 == response.status_code
    assert "imports: on or off" in response.text


def test_page_filter_with_imports_shows_what_imports_hold(servers: Servers, world: World, site: int) -> None:
    """With imported pages included, a page filter shows no bounce rate and no time on page (imports hold
    neither; Plausible leaves them out the same way): 1 native + 4 imported visitors of /."""
    world.sql("INSERT INTO imported_pages (site_id, import_id, date, hostname, page, visits, visitors, pageviews, "
              "exits) SELECT :s, id, current_date - 1, 'imported.example', '/', 4, 4, 6, 4 "
              "FROM site_imports WHERE site_id = :s", s=site)
    body = overview(servers, world, f="page==/").json()
    assert {"imports_included": True} == body["imports"], body["imports"]
    assert [("visitors", 5), ("visits", 5), ("pageviews", 7), ("scroll_depth", None)] == \
        [(stat["name"], body["metrics"][stat["name"]]["value"]) for stat in body["top"]]
    native = overview(servers, world, f="page==/", imports="off").json()
    assert ["visitors", "visits", "pageviews", "bounce_rate", "time_on_page", "scroll_depth"] == \
        [stat["name"] for stat in native["top"]]
