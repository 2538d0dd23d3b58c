"""Error pages and page helpers of the api: every error a browser can meet is a Beacon page in the layout;
JSON clients keep problem+json; an unexpected exception is logged and never shown.

The api application runs in this process (``create_app`` against the test PostgreSQL and Redis) with one
extra route per error, because a correct api has no route that fails unexpectedly on purpose.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable

import pytest
from litestar import get
from litestar.exceptions import HTTPException
from litestar.testing import AsyncTestClient

from app.core.errors import Forbidden, ServiceUnavailable, TooManyRequests
from app.core.pages import FormState, sparkline
from app.core.settings import Settings
from app.main import create_app
from tests.support.accounts import Servers, World, signed_in
from tests.support.beacon import Services

HTML = {"Accept": "text/html,application/xhtml+xml"}
JSON = {"Accept": "application/json"}


@get("/boom", include_in_schema=False)
async def boom() -> str:
    raise RuntimeError("secret detail of a bug")


@get("/busy", include_in_schema=False)
async def busy() -> str:
    raise TooManyRequests("too many requests; try again in 30 s", headers={"Retry-After": "30"})


@get("/down", include_in_schema=False)
async def down() -> str:
    raise ServiceUnavailable("the analytics service is unavailable: timed out")


@get("/secret", include_in_schema=False)
async def secret() -> str:
    raise Forbidden("only instance administrators may see this")


@get("/broken-request", include_in_schema=False)
async def broken_request() -> str:
    raise HTTPException(status_code=400, detail="the request could not be read")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    app = create_app(settings)
    for handler in (boom, busy, down, secret, broken_request):
        app.register(handler)
    async with AsyncTestClient(app=app, base_url="https://127.0.0.1") as test_client:
        yield test_client


@pytest.mark.parametrize(("path", "status", "heading"), [
    pytest.param("/boom", 500, "Something went wrong", id="500"),
    pytest.param("/down", 503, "Temporarily unavailable", id="503"),
    pytest.param("/busy", 429, "Slow down a little", id="429"),
    pytest.param("/secret", 403, "You cannot open this", id="403"),
    pytest.param("/broken-request", 400, "That did not work", id="400"),
    pytest.param("/nowhere", 404, "Page not found", id="404"),
])
async def test_errors_are_beacon_pages_for_browsers(client: AsyncTestClient, path: str, status: int,  # type: ignore[type-arg]
                                                    heading: str) -> None:
    """A browser gets the error as a page in the layout (skip link, heading, a way back), never JSON."""
    answer = await client.get(path, headers=HTML)
    assert (status, "text/html") == (answer.status_code, answer.headers["content-type"].split(";")[0])
    assert f'<h1 id="error-heading">{heading}</h1>' in answer.text
    assert 'class="skip-link"' in answer.text and 'href="/"' in answer.text


async def test_wrong_method_is_a_page(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    """GET on a form's address (405) says so in words."""
    answer = await client.get("/logout", headers=HTML)
    assert 405 == answer.status_code
    assert "does not accept a GET request" in answer.text


async def test_unexpected_exception_is_logged_and_not_shown(client: AsyncTestClient,  # type: ignore[type-arg]
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """The 500 page and problem+json hide the exception; the log has it with its traceback."""
    with caplog.at_level(logging.ERROR, logger="beacon.errors"):
        page = await client.get("/boom", headers=HTML)
        problem = await client.get("/boom", headers=JSON)
    assert "secret detail" not in page.text and "Traceback" not in page.text
    assert (500, "application/problem+json") == (problem.status_code, problem.headers["content-type"])
    assert "secret detail" not in problem.text
    logged = [record for record in caplog.records if record.name == "beacon.errors"]
    assert 2 == len(logged)
    assert logged[0].exc_info is not None and "secret detail of a bug" in str(logged[0].exc_info[1])


async def test_json_clients_keep_problem_json(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    """Outside /api/ too, a client asking for JSON gets problem+json with the detail and headers."""
    answer = await client.get("/busy", headers=JSON)
    assert (429, "30") == (answer.status_code, answer.headers["retry-after"])
    body = answer.json()
    assert answer.headers["x-request-id"] == body.pop("request_id")
    assert {"type": "about:blank", "title": "Too many requests", "status": 429,
            "detail": "too many requests; try again in 30 s"} == body


async def test_signed_out_page_visit_redirects_to_sign_in_and_back(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    """401 on a page is a redirect to the sign-in form that returns to the page; a form post stays 401."""
    page = await client.get("/sites/new", headers=HTML, follow_redirects=False)
    token = re.search(r'name="_csrf_token" value="([^"]+)"', (await client.get("/login", headers=HTML)).text)
    assert token is not None
    posted = await client.post("/account/api-keys", headers=HTML, data={"name": "x", "_csrf_token": token.group(1)})
    assert (302, "/login?next=%2Fsites%2Fnew") == (page.status_code, page.headers["location"])
    assert 401 == posted.status_code


def test_form_state_puts_the_message_next_to_its_field() -> None:
    """``field: message`` goes to the field; a message without a field only to the summary."""
    named = FormState.failed(ServiceUnavailable("timezone: unknown time zone 'X'"), {"timezone": "X"})
    plain = FormState.failed(Forbidden("registration is closed"), {})
    assert ({"timezone": "Unknown time zone 'X'"}, "X") == (named.errors, named.value("timezone"))
    assert ({}, [(None, "registration is closed")]) == (plain.errors, plain.summary)


@pytest.mark.parametrize(("values", "line"), [
    pytest.param([0, 0, 0], "2.0,30.0 60.0,30.0 118.0,30.0", id="flat"),
    pytest.param([0, 5, 10], "2.0,30.0 60.0,16.0 118.0,2.0", id="rising"),
])
def test_sparkline_points(values: list[int], line: str) -> None:
    """The line spans the width; the highest day touches the top, zero the bottom."""
    assert line == sparkline(values).line


@pytest.fixture
def analytics_down(services: Services) -> None:
    """The analytics service of the session stopped (tests that need it start it again)."""
    services.stop("analytics")


def test_sites_list_shows_every_site_when_analytics_is_down(servers: Servers, world: World,
                                                             analytics_down: None) -> None:
    """No analytics service runs: the list still has each site, and says the numbers are unavailable."""
    me = world.user("me@example.com")
    world.site("one.example", {me: "owner"})
    world.site("two.example", {me: "viewer"})
    with signed_in(servers, world, me) as client:
        page = client.get("/")
    assert 200 == page.status_code
    assert ["one.example", "two.example"] == re.findall(r'<h2><a href="/sites/([^"]+)">', page.text)
    assert "Visitor numbers are unavailable right now" in page.text
    assert "sparkline" not in page.text


def test_exclusions_are_validated_and_scoped_to_the_site(servers: Servers, world: World) -> None:
    """An IP range is normalised, a path must start with /, a duplicate is refused, and only this site's
    exclusion can be deleted."""
    me = world.user("me@example.com")
    world.site("mine.example", {me: "owner"})
    other = world.site("other.example", {world.user("other@example.com"): "owner"})
    world.sql("INSERT INTO site_exclusions (site_id, kind, pattern) VALUES (:s, 'path', '/x')", s=other)
    foreign = world.sql("SELECT id FROM site_exclusions")[0][0]
    with signed_in(servers, world, me) as client:
        added = client.form("/sites/mine.example/exclusions", {"kind": "ip", "pattern": " 203.0.113.9/24 "})
        again = client.form("/sites/mine.example/exclusions", {"kind": "ip", "pattern": "203.0.113.0/24"})
        bad_ip = client.form("/sites/mine.example/exclusions", {"kind": "ip", "pattern": "300.1.1.1"})
        bad_path = client.form("/sites/mine.example/exclusions", {"kind": "path", "pattern": "admin"})
        bad_kind = client.form("/sites/mine.example/exclusions", {"kind": "cookie", "pattern": "/x"})
        path = client.form("/sites/mine.example/exclusions", {"kind": "path", "pattern": "/admin/**"})
        stolen = client.form(f"/sites/mine.example/exclusions/{foreign}/delete")
    assert [303, 409, 400, 400, 400, 303, 404] == [answer.status_code for answer in
                                                   (added, again, bad_ip, bad_path, bad_kind, path, stolen)]
    assert 'aria-invalid="true"' in bad_ip.text and "pattern:" in bad_ip.text and 'value="300.1.1.1"' in bad_ip.text
    assert "kind:" in bad_kind.text
    assert [("mine.example", "ip", "203.0.113.0/24"), ("mine.example", "path", "/admin/**"),
            ("other.example", "path", "/x")] == world.sql(
        "SELECT s.domain, x.kind, x.pattern FROM site_exclusions x JOIN sites s ON s.id = x.site_id ORDER BY 1, 2")


def test_first_event_status_turns_true_with_the_first_event(servers: Servers, world: World,
                                                            serve: Callable[[str], int]) -> None:
    """``/sites/<domain>/status`` answers JSON: false until an event of the site is stored, then true (asked of the
    analytics service, the only reader of events); the setup page says the same."""
    serve("analytics")
    me = world.user("me@example.com")
    site = world.site("new.example", {me: "viewer"})
    with signed_in(servers, world, me) as client:
        before = client.get("/sites/new.example/status", headers={"Accept": "application/json"})
        world.sql("INSERT INTO events (timestamp, site_id, name, visitor_id, hostname, pathname) "
                  "VALUES (now(), :s, 'pageview', 1, 'new.example', '/')", s=site)
        after = client.get("/sites/new.example/status", headers={"Accept": "application/json"})
    assert [False, True] == [before.json()["received"], after.json()["received"]]
    assert "no-store" == after.headers["cache-control"]
    with signed_in(servers, world, world.user("admin@example.com")) as client:
        world.sql("INSERT INTO memberships (user_id, site_id, role) VALUES (:u, :s, 'admin')",
                  u=world.users["admin@example.com"], s=site)
        setup = client.get("/sites/new.example/setup")
    assert 200 == setup.status_code and 'data-received="true"' in setup.text


def test_flash_message_is_shown_once_after_a_redirect(servers: Servers, world: World) -> None:
    """The message an action leaves appears on the next page and not on the one after."""
    me = world.user("me@example.com")
    world.site("flash.example", {me: "owner"})
    with signed_in(servers, world, me) as client:
        client.form("/sites/flash.example/goals", {"goal_type": "event", "event_name": "Signup"})
        first = client.get("/sites/flash.example/settings")
        second = client.get("/sites/flash.example/settings")
    assert 'role="status">Goal added.</p>' in first.text
    assert "Goal added." not in second.text


def test_admin_page_for_admins_only_and_names_failing_components(servers: Servers, world: World,
                                                                  analytics_down: None) -> None:
    """Admins see health (analytics stopped, the workers not running) and counts; others 403."""
    boss, plain = world.user("boss@example.com", admin=True), world.user("plain@example.com")
    world.sql("INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes) VALUES (:u, 'k', 'bk_', 'x', '{}')",
              u=boss)
    with signed_in(servers, world, boss) as client:
        page = client.get("/admin")
    with signed_in(servers, world, plain) as client:
        refused = client.get("/admin")
    assert 200 == page.status_code
    states = {name: state for state, name in re.findall(r'<li class="(ok|bad)" data-component="(\w+)">', page.text)}
    assert {"database": "ok", "redis": "ok", "analytics": "bad", "worker": "bad"} == {
        name: states[name] for name in ("database", "redis", "analytics", "worker")}
    assert '<span class="number" id="count-users">2</span>' in page.text
    assert re.search(r'<span class="number">1</span><span class="muted">active API keys', page.text)
    assert 403 == refused.status_code
