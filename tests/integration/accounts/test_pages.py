"""Error pages and page helpers of the api: every error a browser can meet is a Beacon page in the layout;
JSON clients keep problem+json; an unexpected exception is logged and never shown.

The api application runs in this process (``create_app`` against the test PostgreSQL and Redis) with one
extra route per error, because a correct api has no route that fails unexpectedly on purpose.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import pytest
from litestar import get
from litestar.exceptions import HTTPException
from litestar.testing import AsyncTestClient

from app.core.errors import Forbidden, ServiceUnavailable, TooManyRequests
from app.core.pages import FormState, sparkline
from app.core.settings import Settings
from app.main import create_app

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
    assert {"type": "about:blank", "title": "Too many requests", "status": 429,
            "detail": "too many requests; try again in 30 s"} == answer.json()


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
