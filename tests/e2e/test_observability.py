"""End to end: every process's Prometheus endpoint on the running stack, and one request id through the logs."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.checks import metrics_endpoints
from tests.support.stack import ADMIN_EMAIL, SITE, Stack

pytestmark = pytest.mark.e2e

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
BOT_UA = "Googlebot/2.1 (+http://www.google.com/bot.html)"


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one endpoint: (name, sorted labels) -> value."""
    response = httpx.get(url, timeout=10)
    assert 200 == response.status_code, (url, response.text[:200])
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          where: Callable[[dict[str, str]], bool] = lambda labels: True) -> float:
    return sum(value for (sample, labels), value in samples.items() if sample == name and where(dict(labels)))


def post_events(stack: Stack, count: int, *, domain: str = SITE, user_agent: str = UA) -> list[int]:
    with stack.client() as client:
        return [client.post("/api/event", headers={"User-Agent": user_agent, "Content-Type": "text/plain"},
                            content=json.dumps({"name": "pageview", "url": f"https://{domain}/m/{i}",
                                                "domain": domain})).status_code
                for i in range(count)]


def api_key(stack: Stack) -> str:
    created = stack.beacon("apikey", "create", "--email", ADMIN_EMAIL, "--name", f"metrics-{secrets.token_hex(3)}")
    assert 0 == created.returncode, created.stderr
    return created.stdout.strip()


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/metrics?format=text", "/%6Detrics"])
def test_nginx_never_routes_metrics(running: Stack, path: str) -> None:
    """From outside, /metrics in any spelling is a 404, while the api's own port serves it."""
    with running.client() as client:
        outside = client.get(path)
    inside = httpx.get(f"{running.settings.server.service_urls['api']}/metrics", timeout=10)
    assert (404, 200) == (outside.status_code, inside.status_code)
    assert "# TYPE" not in outside.text


def test_metrics_behind_a_double_slash_stay_hidden(running: Stack) -> None:
    """``//metrics`` reaches the api as a page address (sign-in redirect), never as the exposition."""
    with running.client() as client:
        outside = client.get("//metrics")
    assert 200 != outside.status_code
    assert "# TYPE" not in outside.text


def test_check_lists_every_metrics_endpoint(running: Stack) -> None:
    """`beacon check --metrics` names every process's endpoint and finds each answering."""
    result = running.beacon("check", "--metrics")
    assert 0 == result.returncode, result.stdout + result.stderr
    for name, url in metrics_endpoints(running.settings).items():
        assert re.search(rf"^ok\s+{name} {re.escape(url)}$", result.stdout, re.M), result.stdout


def test_families_move_under_load(running: Stack) -> None:
    """Events, queries and jobs move the counters of ingest, api, analytics, the workers and the scheduler."""
    endpoints = metrics_endpoints(running.settings)
    before = {name: scrape(url) for name, url in endpoints.items()}
    assert {202} == set(post_events(running, 30))
    assert {202} == set(post_events(running, 5, user_agent=BOT_UA))
    assert {202} == set(post_events(running, 5, domain="not-a-site.example"))
    key = api_key(running)
    with running.client(headers={"Authorization": f"Bearer {key}"}) as client:
        for metrics in (["pageviews"], ["visitors", "bounce_rate"]):
            answer = client.post("/api/v2/query", json={"site_id": SITE, "metrics": metrics, "date_range": "all"})
            assert 200 == answer.status_code, answer.text
    time.sleep(2.5)  # the scheduler enqueues heartbeats every second in this stack; the workers run them
    after = {name: scrape(url) for name, url in endpoints.items()}

    def moved(process: str, name: str, where: Callable[[dict[str, str]], bool] = lambda labels: True) -> float:
        return total(after[process], name, where) - total(before[process], name, where)

    assert 30 <= moved("ingest", "beacon_ingest_events_accepted_total")
    assert 5 <= moved("ingest", "beacon_ingest_events_dropped_total", lambda labels: labels["reason"] == "bot")
    assert 5 <= moved("ingest", "beacon_ingest_events_dropped_total",
                      lambda labels: labels["reason"] == "unknown_site")
    assert 1 <= moved("ingest", "beacon_ingest_batch_size_events_count")
    assert 1 <= moved("ingest", "beacon_ingest_commit_duration_seconds_count")
    assert 40 <= moved("ingest", "beacon_http_requests_total",
                       lambda labels: labels["route"] == "/api/event" and labels["status_class"] == "2xx")
    assert 2 <= moved("api", "beacon_http_requests_total",
                      lambda labels: labels["route"] == "/api/v2/query" and labels["status_class"] == "2xx")
    assert 2 <= moved("analytics", "beacon_analytics_query_duration_seconds_count")
    assert 1 <= moved("worker", "dramatiq_messages_total")
    assert 0 < moved("scheduler", "beacon_scheduler_last_run_timestamp_seconds",
                     lambda labels: labels["job"] == "heartbeat")
    assert {"system", "analytics"} <= {dict(labels)["queue_name"] for (name, labels) in after["worker"]
                                       if name == "beacon_queue_messages"}
    assert 0 == total(after["worker"], "beacon_queue_scrape_error")
    assert ("beacon_realtime_connections", ()) in after["realtime"]
    assert ("beacon_analytics_rollup_lag_seconds", ()) in after["analytics"]
    assert ("beacon_db_pool_connections_in_use", ()) in after["api"]
    # The watchers share their figures through files under the run directory (circus.ini), nowhere else.
    shared = Path(running.environment["BEACON_RUN_DIR"]) / "metrics"
    assert {"api", "ingest", "worker"} <= {path.parent.name for path in shared.glob("*/counter_*.db")}


def log_lines_with(log: Path, request_id: str) -> list[dict[str, object]]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        if request_id in line:
            lines.append(json.loads(line))
    return lines


def test_one_request_id_through_nginx_api_and_analytics(running: Stack) -> None:
    """A client's X-Request-ID comes back, and the api's and the analytics service's log lines carry it."""
    request_id = f"e2e-{secrets.token_hex(8)}"
    key = api_key(running)
    with running.client(headers={"Authorization": f"Bearer {key}", "X-Request-ID": request_id}) as client:
        # A metric analytics refuses: the api passes the query on, analytics answers 400, both log it.
        answer = client.post("/api/v2/query", json={"site_id": SITE, "metrics": ["no_such_metric"],
                                                    "date_range": "all"})
    assert 400 == answer.status_code, answer.text
    assert request_id == answer.headers["x-request-id"]
    log_dir = Path(running.environment["BEACON_LOG_DIR"])
    deadline = time.monotonic() + 10
    found: dict[str, list[dict[str, object]]] = {}
    while time.monotonic() < deadline:
        found = {name: log_lines_with(log_dir / f"{name}.log", request_id) for name in ("api", "analytics")}
        if all(found.values()):
            break
        time.sleep(0.2)
    assert all(found.values()), found
    assert {request_id} == {line["request_id"] for lines in found.values() for line in lines}


def test_an_invalid_request_id_is_replaced(running: Stack) -> None:
    """A header no log should hold (spaces, too short) is not passed on: Nginx's own id replaces it."""
    with running.client(headers={"X-Request-ID": "bad id"}) as client:
        answer = client.get("/api/health")
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])


def test_problem_json_shows_the_request_id(running: Stack) -> None:
    """An API error body (problem+json) carries the request id the user can quote."""
    with running.client(headers={"X-Request-ID": "e2e-problem-0001"}) as client:
        answer = client.get("/api/no-such-endpoint")
    assert (404, "application/problem+json") == (answer.status_code, answer.headers["content-type"])
    assert "e2e-problem-0001" == answer.json()["request_id"]
