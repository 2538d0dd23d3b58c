"""The Stats API through the api process: key authentication, site access, Plausible's shapes and errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.accounts import Servers, World
from tests.support.beacon import run_beacon


@pytest.fixture
def key(servers: Servers, world: World, serve: Callable[[str], int]) -> str:
    """A stats:read key of an owner of stats.example, which has two pageviews of two visitors."""
    serve("analytics")
    owner = world.user("owner@example.com")
    world.site("stats.example", {owner: "owner"})
    world.user("stranger@example.com")
    world.site("hidden.example", {world.users["stranger@example.com"]: "owner"})
    for visitor, path in ((1, "/"), (2, "/pricing")):
        world.sql("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
                  "VALUES (:s, now(), 'pageview', :v, :v, 'stats.example', :p)",
                  s=world.sites["stats.example"], v=visitor, p=path)
    created = run_beacon(servers.environment, "apikey", "create", "--email", "owner@example.com", "--name", "ci")
    assert 0 == created.returncode, created.stderr
    return created.stdout.strip()


def api(servers: Servers, method: str, path: str, key: str | None, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, servers.api + path, headers=headers, timeout=20, **kwargs)


def test_v2_query(servers: Servers, key: str) -> None:
    """Today's visitors and pageviews by page, in Plausible's response shape."""
    response = api(servers, "POST", "/api/v2/query", key, json={
        "site_id": "stats.example", "metrics": ["visitors", "pageviews"], "date_range": "day",
        "dimensions": ["event:page"]})
    assert 200 == response.status_code, response.text
    body = response.json()
    expected = [{"dimensions": ["/"], "metrics": [1, 1]}, {"dimensions": ["/pricing"], "metrics": [1, 1]}]
    assert expected == body["results"]
    assert ["visitors", "pageviews"] == body["query"]["metrics"]


def test_v2_behavioral_filter(servers: Servers, key: str) -> None:
    """A has_done filter through the api: the visitor who viewed /pricing, on every page of their visit."""
    response = api(servers, "POST", "/api/v2/query", key, json={
        "site_id": "stats.example", "metrics": ["visitors"], "date_range": "day", "dimensions": ["event:page"],
        "filters": [["has_done", ["is", "event:page", ["/pricing"]]]]})
    assert 200 == response.status_code, response.text
    assert [{"dimensions": ["/pricing"], "metrics": [1]}] == response.json()["results"]


def test_v1_endpoints(servers: Servers, key: str) -> None:
    """realtime/visitors, aggregate and breakdown answer through the api."""
    realtime = api(servers, "GET", "/api/v1/stats/realtime/visitors", key, params={"site_id": "stats.example"})
    aggregate = api(servers, "GET", "/api/v1/stats/aggregate", key,
                    params={"site_id": "stats.example", "period": "day", "metrics": "visitors,pageviews"})
    breakdown = api(servers, "GET", "/api/v1/stats/breakdown", key,
                    params={"site_id": "stats.example", "period": "day", "property": "event:page"})
    assert (200, 2) == (realtime.status_code, realtime.json())
    assert {"visitors": {"value": 2}, "pageviews": {"value": 2}} == aggregate.json()["results"]
    assert [{"page": "/", "visitors": 1}, {"page": "/pricing", "visitors": 1}] == breakdown.json()["results"]


def test_v1_without_a_site_is_plausibles_400(servers: Servers, key: str) -> None:
    """No site_id: Plausible's sentence (its AuthorizePublicAPI plug), as for v2."""
    response = api(servers, "GET", "/api/v1/stats/aggregate", key, params={"metrics": "pageviews"})
    assert (400, {"error": "Missing site ID. Please provide the required site_id parameter with your request."}) \
        == (response.status_code, response.json())


@pytest.mark.parametrize(("site", "body", "status", "message"), [
    pytest.param("stats.example", {"metrics": ["visitorz"], "date_range": "day"}, 400,
                 "#/metrics/0: Invalid metric \"visitorz\"", id="metric"),
    pytest.param("stats.example", {"metrics": ["visitors"]}, 400,
                 "#: Required property date_range was not present.", id="no-range"),
    pytest.param("stats.example", {"metrics": ["visitors"], "date_range": "day",
                                   "filters": [["has_done", ["is", "visit:source", ["Google"]]]]}, 400,
                 "Behavioral filters (has_done, has_not_done) can only be used with event dimension filters",
                 id="behavioral-visit-filter"),
    pytest.param("stats.example", {"metrics": ["views_per_visit"], "date_range": "day",
                                   "filters": [["is", "event:page", ["/"]]]}, 400,
                 "Metric `views_per_visit` cannot be queried with a filter on `event:page`.",
                 id="views-per-visit-page-filter"),
    pytest.param("stats.example", {"metrics": ["views_per_visit"], "date_range": "day",
                                   "dimensions": ["time:hour"]}, 400,
                 "Metric `views_per_visit` cannot be queried with `dimensions`.", id="views-per-visit-dimensions"),
    pytest.param("hidden.example", {"metrics": ["visitors"], "date_range": "day"}, 404, "not be found",
                 id="other-users-site"),
    pytest.param("missing.example", {"metrics": ["visitors"], "date_range": "day"}, 404, "not be found",
                 id="no-such-site"),
    pytest.param(None, {"metrics": ["visitors"], "date_range": "day"}, 400,
                 "Missing site ID. Please provide the required site_id parameter with your request.", id="no-site"),
])
def test_v2_errors_say_what_is_wrong(servers: Servers, key: str, site: str | None, body: dict[str, Any],
                                     status: int, message: str) -> None:
    """Invalid queries and inaccessible sites: Plausible's {"error": ...} with the reason."""
    response = api(servers, "POST", "/api/v2/query", key, json={**body, **({"site_id": site} if site else {})})
    assert status == response.status_code
    assert message in response.json()["error"]


def test_keys_are_required_and_scoped(servers: Servers, key: str, world: World) -> None:
    """No key: 401; a sites:write-only key: 403; a revoked key: 401."""
    assert 401 == api(servers, "POST", "/api/v2/query", None, json={}).status_code
    sites_only = run_beacon(servers.environment, "apikey", "create", "--email", "owner@example.com", "--name",
                            "sites", "--scope", "sites:write").stdout.strip()
    assert 403 == api(servers, "POST", "/api/v2/query", sites_only, json={}).status_code
    world.sql("UPDATE api_keys SET revoked_at = now()")
    assert 401 == api(servers, "POST", "/api/v2/query", key, json={}).status_code
