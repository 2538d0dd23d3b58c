"""The error mapping every process shares: a value PostgreSQL refuses is the client's 400, in each API's shape."""

from __future__ import annotations

from typing import Any

from litestar import get, post
from litestar.params import FromQuery, JSONBody
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from app.core.db import make_async_engine
from app.core.service import create_service_app
from app.core.settings import Settings


def _app(settings: Settings) -> Any:
    engine = make_async_engine(settings.database)

    @get("/api/v1/out-of-range")
    async def plausible_route(value: FromQuery[int]) -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT CAST(:v AS smallint)"), {"v": value})).scalar_one())

    @get("/api/out-of-range")
    async def problem_route(value: FromQuery[int]) -> int:
        return await plausible_route.fn(value)

    @post("/api/v1/query")
    async def body_route(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        return data

    return create_service_app("api", settings, [plausible_route, problem_route, body_route], health_route=False,
                              plausible_prefixes=("/api/v1/",), on_shutdown=[engine.dispose])


async def test_data_error_is_a_400_with_postgresqls_reason(settings: Settings) -> None:
    """smallint out of range: 400 problem+json, and Plausible's {"error"} under a Plausible prefix."""
    async with AsyncTestClient(app=_app(settings)) as client:
        problem = await client.get("/api/out-of-range", params={"value": 100_000})
        plausible = await client.get("/api/v1/out-of-range", params={"value": 100_000})
        fine = await client.get("/api/out-of-range", params={"value": 7})
    assert (400, "application/problem+json") == (problem.status_code, problem.headers["content-type"])
    assert "smallint out of range" in problem.json()["detail"]
    assert (400, {"error": "a value is out of range for its field: smallint out of range"}) == (
        plausible.status_code, plausible.json())
    assert (200, 7) == (fine.status_code, fine.json())


async def test_guard_answers_in_each_apis_shape(settings: Settings) -> None:
    """The input guard's refusals (and routing errors) follow the path's error shape too."""
    async with AsyncTestClient(app=_app(settings)) as client:
        plausible = await client.get("/api/v1/out-of-range", params={"value": "1\x00"})
        problem = await client.get("/api/out-of-range", params={"value": "1\x00"})
        missing = await client.get("/api/v1/nothing-here")
    assert (400, {"error": "query string: NUL characters are not allowed"}) == (plausible.status_code,
                                                                                 plausible.json())
    assert (400, "query string: NUL characters are not allowed") == (problem.status_code, problem.json()["detail"])
    assert (404, ["error"]) == (missing.status_code, list(missing.json()))


async def test_unreadable_bodies_say_what_is_wrong(settings: Settings) -> None:
    """An empty body and JSON cut short are 400s that say so, not Litestar's internal words ("data: 'data'",
    "Input data was truncated")."""
    async with AsyncTestClient(app=_app(settings)) as client:
        answers = [await client.post("/api/v1/query", content=body, headers={"content-type": "application/json"})
                   for body in (b"", b'{"metrics": ["visitors"', b'{"metrics": x}', b'{"metrics": []}')]
    assert [(a.status_code, a.json()) for a in answers[:2]] == [
        (400, {"error": "the request body is empty: send a JSON object"}),
        (400, {"error": "JSON is malformed: the body ends before the JSON does"})]
    assert (400, True) == (answers[2].status_code, answers[2].json()["error"].startswith("JSON is malformed"))
    assert (201, {"metrics": []}) == (answers[3].status_code, answers[3].json())
