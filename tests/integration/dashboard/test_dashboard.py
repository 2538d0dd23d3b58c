"""The dashboard's JSON endpoints through the api: access, the v2 queries they build, and their validation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.core.tokens import token_hash
from tests.support.accounts import Servers, World, signed_in

SHARE = "share-token-of-dash-example-0123456789"
EVENTS = [  # visitor, name, path, source, props
    (1, "pageview", "/", "Google", {}),
    (2, "pageview", "/pricing", "", {}),
    (2, "pageview", "/", "", {}),
    (2, "Signup", "/pricing", "", {"plan": "pro"}),
]


@pytest.fixture
def site(servers: Servers, world: World, serve: Callable[[str], int]) -> int:
    """dash.example, owned by owner@example.com and shared, with two visitors' events today."""
    serve("analytics")
    owner = world.user("owner@example.com")
    site_id = world.site("dash.example", {owner: "owner"})
    world.user("stranger@example.com")
    world.sql("UPDATE sites SET share_token_hash = :h WHERE id = :s", h=token_hash(SHARE), s=site_id)
    world.sql("INSERT INTO goals (site_id, event_name, display_name) VALUES (:s, 'Signup', 'Signup')", s=site_id)
    world.sql("INSERT INTO goals (site_id, page_path, display_name) VALUES (:s, '/pricing', 'Visit /pricing')",
              s=site_id)
    for visitor, name, path, source, props in EVENTS:
        world.sql("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, "
                  "referrer_source, props) VALUES (:s, now(), :n, :v, :v, 'dash.example', :p, :r, "
                  "CAST(:props AS jsonb))", s=site_id, n=name, v=visitor, p=path, r=source,
                  props=json.dumps(props))
    return site_id


def owner_get(servers: Servers, world: World, path: str, **params: Any) -> Any:
    with signed_in(servers, world, world.users["owner@example.com"]) as client:
        return client.get(path, params=params, headers={"Accept": "application/json"})


def test_overview(servers: Servers, world: World, site: int) -> None:
    """Today's top metrics and an hourly series of the chart."""
    response = owner_get(servers, world, "/sites/dash.example/stats/overview", period="today")
    assert 200 == response.status_code, response.text
    body = response.json()
    assert {"visitors": 2, "visits": 2, "pageviews": 3} == {k: body["metrics"][k]["value"]
                                                            for k in ("visitors", "visits", "pageviews")}
    assert "hour" == body["series"]["interval"]
    assert 2 == max(body["series"]["visitors"])
    assert body["comparison"] is None


def test_overview_filtered_and_compared(servers: Servers, world: World, site: int) -> None:
    """A filter narrows every figure; the comparison brings the previous period, which had nothing."""
    body = owner_get(servers, world, "/sites/dash.example/stats/overview", period="today", compare="previous",
                     f="page==/pricing").json()
    assert (1, 1) == (body["metrics"]["visitors"]["value"], body["metrics"]["pageviews"]["value"])
    assert (0, None) == (body["metrics"]["visitors"]["previous"], body["metrics"]["visitors"]["change"])
    assert len(body["comparison"]["series"]["visitors"]) == len(body["series"]["labels"]) > 0
    assert [{"name": "page", "value": "/pricing", "negated": False, "param": "page==/pricing"}] == \
        body["state"]["filters"]


@pytest.mark.parametrize(("dimension", "expected"), [
    # Scroll depth comes from engagement events; these pages have none.
    pytest.param("page", [{"value": "/", "visitors": 2, "pageviews": 2, "scroll_depth": None},
                          {"value": "/pricing", "visitors": 1, "pageviews": 1, "scroll_depth": None}], id="pages"),
    pytest.param("source", [{"value": "Direct / None", "visitors": 1, "percentage": 50.0},
                            {"value": "Google", "visitors": 1, "percentage": 50.0}], id="sources"),
    # Goals from the site's settings: an event goal and a page goal, each reached by one of two visitors.
    pytest.param("goal", [{"value": "Signup", "visitors": 1, "events": 1, "conversion_rate": 50.0},
                          {"value": "Visit /pricing", "visitors": 1, "events": 1, "conversion_rate": 50.0}],
                 id="goals"),
    pytest.param("event", [{"value": "Signup", "visitors": 1, "events": 1, "conversion_rate": 50.0}],
                 id="custom-events"),
    # Events without the property are "(none)", as in Plausible.
    pytest.param("props:plan", [{"value": "(none)", "visitors": 2, "events": 3},
                                {"value": "pro", "visitors": 1, "events": 1}], id="properties"),
])
def test_breakdown(servers: Servers, world: World, site: int, dimension: str, expected: list[dict[str, Any]]) -> None:
    """Each panel's rows, by visitors."""
    response = owner_get(servers, world, "/sites/dash.example/stats/breakdown", period="today", dimension=dimension)
    assert 200 == response.status_code, response.text
    assert expected == sorted(response.json()["rows"], key=lambda row: (-row["visitors"], row["value"]))


def test_goals_report_of_a_site_without_goals_says_so(servers: Servers, world: World, site: int) -> None:
    """An empty goals report says why when the site has no goals (Plausible's dashboard offers to set them up);
    with goals, an empty range says nothing more than any other empty report."""
    before = owner_get(servers, world, "/sites/dash.example/stats/breakdown", period="custom", dimension="goal",
                       **{"from": "2026-01-01", "to": "2026-01-02"}).json()
    assert ([], None) == (before["rows"], before.get("empty"))
    world.sql("DELETE FROM goals WHERE site_id = :s", s=site)
    for period in ("today", "7d"):
        body = owner_get(servers, world, "/sites/dash.example/stats/breakdown", period=period, dimension="goal").json()
        assert ([], "No goals set up yet.") == (body["rows"], body["empty"])


def test_property_keys(servers: Servers, world: World, site: int) -> None:
    """The custom property keys seen in the range."""
    assert {"keys": ["plan"]} == owner_get(servers, world, "/sites/dash.example/stats/properties").json()


@pytest.mark.parametrize(("params", "field"), [
    pytest.param({"period": "yesterday"}, "period", id="period"),
    pytest.param({"from": "2026-01-01"}, "from", id="from-without-custom"),
    pytest.param({"period": "custom", "from": "2026-01-01"}, "to", id="custom-without-to"),
    pytest.param({"period": "custom", "from": "2026-01-31", "to": "2026-01-01"}, "to", id="to-before-from"),
    pytest.param({"period": "custom", "from": "2026-13-01", "to": "2026-01-01"}, "from", id="bad-date"),
    pytest.param({"compare": "yes"}, "compare", id="compare"),
    pytest.param({"metric": "bounces"}, "metric", id="metric"),
    pytest.param({"period": "30d", "interval": "hour"}, "interval", id="hourly-30-days"),
    pytest.param({"interval": "minute"}, "interval", id="interval"),
    pytest.param({"f": "nope==x"}, "f", id="filter-dimension"),
    pytest.param({"f": "page"}, "f", id="filter-shape"),
    pytest.param({"f": "page=="}, "f", id="filter-empty-value"),
    pytest.param({"f": ["page==/", "page==/"]}, "f", id="filter-twice"),
    pytest.param({"f": "goal!=Signup"}, "f", id="negated-goal"),
    pytest.param({"period": ["7d", "30d"]}, "period", id="period-twice"),
    pytest.param({"whatever": "1"}, "whatever", id="unknown"),
])
def test_bad_state_is_400_naming_the_field(servers: Servers, world: World, site: int, params: dict[str, Any],
                                            field: str) -> None:
    """Every parameter is checked before anything is queried."""
    response = owner_get(servers, world, "/sites/dash.example/stats/overview", **params)
    assert 400 == response.status_code, response.text
    assert response.json()["detail"].startswith(f"{field}:"), response.text


@pytest.mark.parametrize(("params", "field"), [
    pytest.param({}, "dimension", id="missing"),
    pytest.param({"dimension": "city"}, "dimension", id="unknown"),
    pytest.param({"dimension": "props:"}, "dimension", id="empty-key"),
    pytest.param({"dimension": "page", "limit": "0"}, "limit", id="limit"),
    pytest.param({"dimension": "page", "limit": "x"}, "limit", id="limit-not-a-number"),
])
def test_bad_breakdown_is_400(servers: Servers, world: World, site: int, params: dict[str, Any], field: str) -> None:
    response = owner_get(servers, world, "/sites/dash.example/stats/breakdown", **params)
    assert 400 == response.status_code, response.text
    assert response.json()["detail"].startswith(f"{field}:"), response.text


def test_access(servers: Servers, world: World, site: int) -> None:
    """Members and share-link holders get data; the signed-out and strangers do not."""
    with signed_in(servers, world, world.users["stranger@example.com"]) as stranger:
        hidden = stranger.get("/sites/dash.example/stats/overview", headers={"Accept": "application/json"})
    with signed_in(servers, world, world.users["owner@example.com"]) as owner:
        unknown_part = owner.get("/sites/dash.example/stats/secrets", headers={"Accept": "application/json"})
    with httpx.Client(base_url=servers.api, headers={"Accept": "application/json"}) as anonymous:
        signed_out = anonymous.get("/sites/dash.example/stats/overview")
        shared = anonymous.get(f"/share/{SHARE}/stats/overview", params={"period": "today"})
        revoked = anonymous.get("/share/not-a-token/stats/overview")
        realtime = anonymous.get(f"/share/{SHARE}/stats/realtime")
        page = anonymous.get(f"/share/{SHARE}", params={"period": "today"}, headers={"Accept": "text/html"})
    assert (401, 404, 404, 404) == (signed_out.status_code, hidden.status_code, unknown_part.status_code,
                                    revoked.status_code)
    assert (200, 2) == (shared.status_code, shared.json()["metrics"]["visitors"]["value"])
    assert (200, {"visitors": 2}) == (realtime.status_code, realtime.json())
    assert 200 == page.status_code
    assert 'id="pageviews" data-count="3"' in page.text


def test_dashboard_page_rejects_a_bad_url(servers: Servers, world: World, site: int) -> None:
    """A bad parameter in the page's URL is a Beacon error page naming it, not a traceback."""
    with signed_in(servers, world, world.users["owner@example.com"]) as client:
        page = client.get("/sites/dash.example", params={"period": "forever"})
    assert 400 == page.status_code
    assert "period: one of" in page.text.lower()  # the error page capitalises the detail


def test_goal_filter(servers: Servers, world: World, site: int) -> None:
    """Clicking a goal filters the dashboard to the visitors who reached it."""
    body = owner_get(servers, world, "/sites/dash.example/stats/overview", period="today",
                     f="goal==Visit /pricing").json()
    pages = owner_get(servers, world, "/sites/dash.example/stats/breakdown", period="today", dimension="page",
                      f="goal==Visit /pricing").json()
    assert 1 == body["metrics"]["visitors"]["value"]
    # Under a goal filter the pages report shows conversions and the conversion rate among each page's visitors.
    assert [{"value": "/pricing", "visitors": 1, "conversion_rate": 100.0}] == pages["rows"]
    assert {"visitors": "Conversions", "conversion_rate": "CR"} == pages["labels"]
    # A custom-event goal's conversions are listed under the page its events happened on, as Plausible's are.
    pages = owner_get(servers, world, "/sites/dash.example/stats/breakdown", period="today", dimension="page",
                      f="goal==Signup").json()
    assert [{"value": "/pricing", "visitors": 1, "conversion_rate": 100.0}] == pages["rows"]
