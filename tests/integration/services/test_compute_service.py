"""The compute service as a real process, reading series from the real analytics service."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text

from app.core.db import make_engine
from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.redis import Keys
from app.core.settings import Settings
from tests.support.beacon import Services

START = datetime(2026, 2, 1, tzinfo=UTC)
DAYS = 21
SPIKE = START + timedelta(days=19, hours=14)


def hourly_visitors(moment: datetime) -> int:
    """A daily rhythm, quieter at weekends; 120 visitors at the spike hour."""
    if moment == SPIKE:
        return 120
    base = 6 + 5 * math.sin((moment.hour - 8) / 24 * 2 * math.pi)
    return max(0, round(base * (0.6 if moment.weekday() >= 5 else 1.0)))


@pytest.fixture
def site(settings: Settings, db: None) -> str:
    engine = make_engine(settings.database)
    rows: list[dict[str, Any]] = []
    visitor = 0
    for hour in range(DAYS * 24):
        moment = START + timedelta(hours=hour)
        for k in range(hourly_visitors(moment)):
            visitor += 1
            variant = "B" if visitor % 2 else "A"
            rows.append({"ts": moment + timedelta(minutes=k % 60), "name": "pageview", "visitor": visitor,
                         "props": json.dumps({"variant": variant})})
            # variant B converts at 20 %, A at 10 %
            if visitor % 20 in ((1, 3) if variant == "B" else (0,)):
                rows.append({"ts": moment + timedelta(minutes=k % 60, seconds=30), "name": "Signup",
                             "visitor": visitor, "props": json.dumps({"variant": variant})})
    with engine.begin() as conn:
        site_id = conn.execute(text("INSERT INTO sites (domain, timezone, created_at) VALUES "
                                    "('compute.example', 'UTC', '2026-01-01') RETURNING id")).scalar_one()
        conn.execute(text("INSERT INTO goals (site_id, display_name, event_name) VALUES (:s, 'Signup', 'Signup')"),
                     {"s": site_id})
        conn.execute(text(
            "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, props) "
            "VALUES (:site, :ts, :name, :visitor, :visitor, 'compute.example', '/', CAST(:props AS jsonb))"),
            [{**row, "site": site_id} for row in rows])
    engine.dispose()
    return "compute.example"


def post(settings: Settings, serve: Callable[[str], int], path: str, body: dict[str, Any]) -> httpx.Response:
    serve("analytics")
    return httpx.post(f"http://127.0.0.1:{serve('compute')}{path}", json=body, timeout=60,
                      headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token})


def test_detect_flags_the_spike_with_an_explanation(settings: Settings, serve: Callable[[str], int],
                                                    site: str) -> None:
    """The 120-visitor hour is an anomaly explained in words; the ordinary rhythm raises at most one other."""
    response = post(settings, serve, "/detect", {"site_id": site, "interval": "hour",
                                                "date_range": ["2026-02-01", "2026-02-21"]})
    assert 200 == response.status_code, response.text
    points = response.json()["points"]
    assert DAYS * 24 == len(points)
    flagged = [p for p in points if p["anomaly"]]
    spike = next(p for p in points if p["time"] == "2026-02-20 14:00:00")
    assert spike["anomaly"], spike
    assert spike["explanation"].startswith("visitors 120 at 14:00 on Fri 20 Feb, expected ")
    assert spike["explanation"].endswith("for a Friday afternoon")
    assert len(flagged) <= 2, flagged


def test_forecast_has_ordered_intervals(settings: Settings, serve: Callable[[str], int], site: str) -> None:
    """Seven days past the range, each with 95 % ⊇ 80 % ∋ the median, none negative."""
    response = post(settings, serve, "/forecast", {"site_id": site, "horizon": 7,
                                                  "date_range": ["2026-02-01", "2026-02-19"]})
    assert 400 == response.status_code  # 19 days are too few
    assert "too short" in response.json()["detail"]
    response = post(settings, serve, "/forecast", {"site_id": site, "horizon": 7,
                                                  "date_range": ["2026-01-15", "2026-02-19"]})
    assert 200 == response.status_code, response.text
    rows = response.json()["forecast"]
    assert ["2026-02-20", "2026-02-26"] == [rows[0]["date"], rows[-1]["date"]]
    for row in rows:
        assert 0 <= row["yhat_lower_95"] <= row["yhat_lower"] <= row["yhat"] <= row["yhat_upper"] \
            <= row["yhat_upper_95"]


def test_compare_variants(settings: Settings, serve: Callable[[str], int], site: str) -> None:
    """Visitors and conversions per variant come from analytics; the verdict names the better one."""
    segment = {"date_range": ["2026-02-01", "2026-02-21"], "property": "variant"}
    response = post(settings, serve, "/compare", {"site_id": site, "goal": "Signup",
                                                 "a": {**segment, "value": "A"}, "b": {**segment, "value": "B"}})
    assert 200 == response.status_code, response.text
    body = response.json()
    assert body["a"]["visitors"] > 500 and body["b"]["visitors"] > 500
    assert body["b"]["conversion_rate"] > body["a"]["conversion_rate"]
    assert body["conclusive"] and body["verdict"].startswith("B converts better")


@pytest.mark.parametrize(("path", "body", "detail"), [
    pytest.param("/detect", {"site_id": "compute.example", "interval": "hour",
                             "date_range": ["2026-02-01", "2026-03-15"]}, "at most 31 days", id="hourly-too-long"),
    pytest.param("/detect", {"site_id": "compute.example", "date_range": ["2026-02-05", "2026-02-01"]},
                 "before the first", id="reversed"),
    pytest.param("/detect", {"site_id": "compute.example", "date_range": ["2026-02-01"]}, "date_range",
                 id="one-date"),
    pytest.param("/detect/hour", {"site_id": "compute.example", "hour": "2026-02-20T14:30:00"},
                 "not the start of an hour", id="hour-not-on-the-hour"),
    pytest.param("/detect/hour", {"site_id": "compute.example", "hour": "2026-02-20T14:00:00Z"}, "hour",
                 id="hour-with-a-time-zone"),
    pytest.param("/detect/hour", {"site_id": "compute.example", "hour": "2026-02-20T14:00:00", "threshold": 0},
                 "threshold", id="hour-threshold-zero"),
    pytest.param("/forecast", {"site_id": "compute.example", "date_range": ["2026-01-01", "2026-02-20"],
                               "horizon": 0}, "horizon", id="horizon"),
    pytest.param("/compare", {"site_id": "compute.example", "goal": "Signup",
                              "a": {"date_range": ["2026-02-01", "2026-02-02"], "property": "variant"},
                              "b": {"date_range": ["2026-02-01", "2026-02-02"]}}, "needs its value",
                 id="property-without-value"),
])
def test_bad_requests_are_400(settings: Settings, serve: Callable[[str], int], site: str, path: str,
                              body: dict[str, Any], detail: str) -> None:
    """Bad requests get a 400 whose detail says what is wrong."""
    response = post(settings, serve, path, body)
    assert 400 == response.status_code, response.text
    assert detail in json.dumps(response.json())


def test_openapi_lists_the_endpoints(settings: Settings, serve: Callable[[str], int]) -> None:
    """The OpenAPI document has detect, forecast and compare with their schemas."""
    document = httpx.get(f"http://127.0.0.1:{serve('compute')}/schema/openapi.json", timeout=10).json()
    assert {"/detect", "/detect/hour", "/forecast", "/compare"} <= set(document["paths"])
    assert {"DetectRequest", "DetectResponse", "DetectHourRequest", "DetectHourResponse", "ForecastResponse",
            "CompareResponse"} <= \
        set(document["components"]["schemas"])


def test_detect_hour_keeps_the_detector_state(settings: Settings, services: Services, site: str,
                                              redis_client: redis.Redis) -> None:
    """The hourly check's stored state: the first check replays 31 days (``rebuilt``), the next hour is one
    update (``advanced``) with exactly the score ``POST /detect`` gives over the same range, the same hour again
    is the stored verdict; the state survives a restart of the service and is rebuilt when it is lost."""
    key = Keys(settings.redis.key_prefix).compute_detector(site, "visitors")
    redis_client.delete(key)

    def hour(label: str) -> dict[str, Any]:
        response = post(settings, services.start, "/detect/hour", {"site_id": site, "hour": label})
        assert 200 == response.status_code, response.text
        return dict(response.json())

    first = hour("2026-02-20T13:00:00")
    assert ("rebuilt", 30 * 24 + 14, False) == (first["state"], first["hours_fed"], first["point"]["anomaly"])
    assert redis_client.ttl(key) > 0
    spike = hour("2026-02-20T14:00:00")
    assert ("advanced", 1, True) == (spike["state"], spike["hours_fed"], spike["point"]["anomaly"])
    replay = post(settings, services.start, "/detect", {"site_id": site, "interval": "hour",
                                                        "date_range": ["2026-01-21", "2026-02-20"]}).json()
    replayed = {p["time"]: p for p in replay["points"]}
    assert replayed["2026-02-20 14:00:00"] == spike["point"]
    assert replayed["2026-02-20 13:00:00"] == first["point"]
    assert ("stored", spike["point"]) == (hour("2026-02-20T14:00:00")["state"], spike["point"])

    services.stop("compute")
    later = hour("2026-02-20T17:00:00")  # a new process; three hours in one step (two passes were missed)
    assert ("advanced", 3) == (later["state"], later["hours_fed"])
    assert replayed["2026-02-20 17:00:00"] == later["point"]

    redis_client.delete(key)
    again = hour("2026-02-20T18:00:00")
    assert ("rebuilt", 30 * 24 + 19) == (again["state"], again["hours_fed"])
    back = hour("2026-02-20T10:00:00")  # behind the stored state (e.g. the site's time zone changed): rebuilt
    assert "rebuilt" == back["state"]
    assert replayed["2026-02-20 10:00:00"]["score"] == back["point"]["score"]
    month = hour("2026-03-22T10:00:00")  # 30 days later: the hours in between in one query
    assert ("advanced", 30 * 24) == (month["state"], month["hours_fed"])
    assert "rebuilt" == hour("2026-04-22T10:00:00")["state"]  # 31 days behind: too far to catch up
