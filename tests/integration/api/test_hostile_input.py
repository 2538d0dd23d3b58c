"""Hostile input to the api process (and through it the analytics service): every case a 4xx naming the problem.

Each case is one kind from the hardening review: NUL characters, invalid UTF-8, JSON nested too deep, dates
outside the calendar in every date form, integers beyond 64 bits, regular expressions only PostgreSQL rejects,
and answers too large to return or cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.accounts import Servers, World, signed_in
from tests.support.beacon import run_beacon

SITE = "hostile.example"


@pytest.fixture
def key(servers: Servers, world: World, serve: Callable[[str], int]) -> str:
    """A stats:read + sites:write key of the owner of hostile.example (a site east of UTC)."""
    serve("analytics")
    owner = world.user("owner@example.com")
    world.site(SITE, {owner: "owner"})
    world.sql("UPDATE sites SET timezone = 'Pacific/Kiritimati' WHERE domain = :d", d=SITE)
    # One event, so PostgreSQL compiles a filter's regular expression (it does not without rows).
    world.sql("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
              "VALUES (:s, now() - interval '2 days', 'pageview', 1, 1, :d, '/')", s=world.sites[SITE], d=SITE)
    created = run_beacon(servers.environment, "apikey", "create", "--email", "owner@example.com", "--name", "ci",
                         "--scope", "stats:read", "--scope", "sites:write")
    assert 0 == created.returncode, created.stderr
    return created.stdout.strip()


def call(servers: Servers, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, servers.api + path, headers={"Authorization": f"Bearer {key}",
                                                              **kwargs.pop("headers", {})}, timeout=30, **kwargs)


def query(**fields: Any) -> dict[str, Any]:
    return {"site_id": SITE, "metrics": ["visitors"], "date_range": "7d", **fields}


V2_CASES = [
    pytest.param(query(filters=[["is", "event:page", ["/a\x00"]]]), "NUL", id="nul-in-filter"),
    pytest.param(query(dimensions=["event:props:a\x00"]), "NUL", id="nul-in-dimension"),
    pytest.param(query(date_range=["9999-12-31", "9999-12-31"]), "1970-01-01 to 2999-12-31", id="date-9999"),
    pytest.param(query(date_range="month", date="9999-12-31"), "1970-01-01 to 2999-12-31", id="month-of-9999"),
    pytest.param(query(date_range=["0001-01-01", "0001-01-02"]), "1970-01-01 to 2999-12-31", id="year-1-east"),
    pytest.param(query(date_range=["0001-01-01T00:00:00+00:00", "0001-01-02T00:00:00+00:00"]),
                 "1970-01-01 to 2999-12-31", id="date-time-year-1"),
    pytest.param(query(date_range=["1525-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"],
                       dimensions=["time:day"], include={"time_labels": True}),
                 "1970-01-01 to 2999-12-31", id="date-times-500-years"),
    pytest.param(query(date_range=["1990-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"],
                       dimensions=["time:day"], include={"time_labels": True}),
                 "at most ten years", id="date-times-35-years"),
    pytest.param(query(pagination={"limit": 10, "offset": 2**63}), "pagination.offset", id="offset-2^63"),
    pytest.param(query(pagination={"limit": 10, "offset": 10**30}), "pagination.offset", id="offset-10^30"),
    pytest.param(query(filters=[["matches", "event:page", ["(?P<n>a)"]]]), "invalid regular expression",
                 id="regex-postgresql-rejects"),
]


@pytest.mark.parametrize(("body", "reason"), V2_CASES)
def test_v2_query_refuses(servers: Servers, key: str, body: dict[str, Any], reason: str) -> None:
    """400 in Plausible's shape, naming the problem."""
    response = call(servers, key, "POST", "/api/v2/query", json=body)
    assert 400 == response.status_code, response.text
    assert reason in response.json()["error"]
    assert "psycopg" not in response.text and "Error" not in response.json()["error"]


@pytest.mark.parametrize(("content", "reason"), [
    pytest.param(b'{"site_id":"\xff"}', "not valid UTF-8", id="invalid-utf8"),
    pytest.param(b'{"site_id":"' + SITE.encode() + b'","metrics":' + b"[" * 20_000 + b"]" * 20_000 + b"}",
                 "nested deeper than", id="nested-20000"),
])
def test_v2_body_refused_before_parsing(servers: Servers, key: str, content: bytes, reason: str) -> None:
    """Bytes no JSON parser should see get a 400 before decoding."""
    response = call(servers, key, "POST", "/api/v2/query", content=content,
                    headers={"Content-Type": "application/json"})
    assert (400, reason) == (response.status_code, reason if reason in response.json()["error"] else response.text)


@pytest.mark.parametrize(("path", "params", "reason"), [
    pytest.param("/api/v1/stats/breakdown", {"property": "event:page", "page": "100000000000000000000"},
                 "page", id="page-10^20"),
    pytest.param("/api/v1/stats/breakdown", {"property": "event:page", "limit": "1001"},
                 "Please provide limit as a number between 1 and 1000.", id="limit-1001-plausibles-message"),
    pytest.param("/api/v1/stats/breakdown", {}, "The `property` parameter is required.", id="no-property"),
    pytest.param("/api/v1/stats/aggregate", {"period": "custom", "date": "0001-01-01,0001-01-03",
                                             "compare": "previous_period"}, "1970-01-01", id="custom-year-1"),
    pytest.param("/api/v1/stats/timeseries", {"period": "month", "date": "9999-12-31"}, "1970-01-01",
                 id="month-9999"),
    pytest.param("/api/v1/sites/goals", {"site_id": SITE + "\x00"}, "NUL", id="goals-nul-site"),
    pytest.param("/api/v1/stats/aggregate", {"site_id": SITE, "filters": "event:page==/\x00"}, "NUL",
                 id="v1-filter-nul"),
])
def test_v1_refuses(servers: Servers, key: str, path: str, params: dict[str, str], reason: str) -> None:
    """400 in Plausible's shape for query-string input out of any field's domain."""
    response = call(servers, key, "GET", path, params={"site_id": SITE, **params})
    assert 400 == response.status_code, response.text
    assert reason in response.json()["error"]


def test_forms_refuse_nul_everywhere(servers: Servers, world: World) -> None:
    """Every form that stores text answers NUL with a 400 page, not a 500."""
    owner = world.user("forms@example.com")
    world.site("forms.example", {owner: "owner"})
    with signed_in(servers, world, owner) as client:
        answers = {
            "goal": client.form("/sites/forms.example/goals", {"goal_type": "event", "event_name": "a\x00"}),
            "annotation": client.form("/sites/forms.example/annotations", {"date": "2026-01-01", "body": "a\x00"}),
            "exclusion": client.form("/sites/forms.example/exclusions", {"kind": "path", "pattern": "/a\x00"}),
            "invitation": client.form("/sites/forms.example/invitations", {"email": "a\x00@b.example"}),
            "key": client.form("/account/api-keys", {"name": "k\x00", "scopes": ["stats:read"]}),
            "search": client.get("/search", params={"q": "a\x00"}),
            "dashboard": client.get("/sites/forms.example", params={
                "period": "custom", "from": "0001-01-01", "to": "0001-01-03", "compare": "previous"}),
            "dashboard-data": client.get("/sites/forms.example/stats/overview", params={
                "period": "custom", "from": "0001-01-01", "to": "0001-01-03", "compare": "previous"}),
        }
    with httpx.Client(base_url=servers.api, headers={"Accept": "text/html"}) as anonymous:
        page = anonymous.get("/register")
        answers["register"] = anonymous.post("/register", data={"email": "a\x00@b.example", "password": "x" * 12,
                                                                 "password_again": "x" * 12}, headers={
            "X-CSRFToken": page.cookies.get("beacon_csrf", "")})
        answers["login"] = anonymous.post("/login", data={"email": "a\x00@b.example", "password": "x"})
    assert {name: 400 for name in answers} == {name: answer.status_code for name, answer in answers.items()}
    assert [] == world.sql("SELECT id FROM goals UNION ALL SELECT id FROM annotations")
