"""The Webhooks and Alerts APIs hold the contract their OpenAPI document declares, through the real processes.

One test per kind of breach the API-contract fuzz suite (tests/e2e/test_api_contract.py) found: error answers
the document did not declare, path ids outside PostgreSQL's bigint range, ids in bodies out of range, and the
integrations service's own 4xx answers, which must reach the caller with their status in Plausible's
``{"error": "..."}`` shape (never a 5xx for bad input).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.core.internal import INTERNAL_TOKEN_HEADER
from tests.support.integrations import Receiver, Site, Stack

OPERATIONS = [
    ("GET", "/webhooks"), ("POST", "/webhooks"), ("GET", "/webhooks/1"), ("PATCH", "/webhooks/1"),
    ("DELETE", "/webhooks/1"), ("POST", "/webhooks/1/test"), ("GET", "/webhooks/1/deliveries"),
    ("POST", "/webhooks/1/deliveries/1/retry"), ("GET", "/alerts"), ("POST", "/alerts"), ("PATCH", "/alerts/1"),
    ("DELETE", "/alerts/1"), ("GET", "/alerts/1/history"),
]
BODIES = {("POST", "/webhooks"): {"url": "https://hooks.example.net/in", "event_types": ["goal.completed"]},
          ("PATCH", "/webhooks/1"): {"description": "x"},
          ("POST", "/alerts"): {"kind": "spike", "params": {"threshold": 5}, "recipients": ["a@b.example"]},
          ("PATCH", "/alerts/1"): {"enabled": False}}


def _call(client: httpx.Client, method: str, path: str, body: Any = None) -> httpx.Response:
    return client.request(method, path, json=body) if body is not None else client.request(method, path)


def _error(response: httpx.Response) -> str:
    """The Plausible error message of ``response``, asserting the shape on the way."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    payload = response.json()
    assert [("error", str)] == [(key, type(value)) for key, value in payload.items()], payload
    return str(payload["error"])


def test_every_error_answer_is_declared_with_plausibles_body(stack: Stack) -> None:
    """Each operation declares 400, 401, 403, 404 and 503 (writes 409 and 413 too) as ``{"error"}``, and the key."""
    with httpx.Client(base_url=stack.api, timeout=15) as client:
        document = client.get("/api/docs/openapi.json").json()
    found = 0
    for path, item in document["paths"].items():
        if not path.startswith(("/api/v1/sites/{domain}/webhooks", "/api/v1/sites/{domain}/alerts")):
            continue
        for method, operation in item.items():
            found += 1
            codes = {"400", "401", "403", "404", "503"} | ({"409", "413"} if method != "get" else set())
            assert codes <= set(operation["responses"]), (method, path, sorted(operation["responses"]))
            for code in codes:
                schema = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/PlausibleError"}, (method, path, code, schema)
            assert [{"bearerAuth": []}] == operation["security"], (method, path)
    assert len(OPERATIONS) == found


@pytest.mark.parametrize("domain", [
    pytest.param("0", id="not-a-domain"),
    pytest.param("%27%19%C2%94", id="control-characters"),
    pytest.param("unknown.example", id="unknown"),
])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_a_site_that_is_not_the_keys_is_a_404(stack: Stack, site: Site, domain: str, method: str,
                                               path: str) -> None:
    with stack.client() as client:
        response = _call(client, method, f"/api/v1/sites/{domain}{path}", BODIES.get((method, path)))
    assert (404, "Site could not be found") == (response.status_code, _error(response))


@pytest.mark.parametrize("bad", ["0", "-1", str(2**63), "9" * 40])
@pytest.mark.parametrize(("method", "path"), [op for op in OPERATIONS if "/1" in op[1]])
def test_ids_out_of_bigint_range_are_a_400_naming_the_parameter(stack: Stack, site: Site, bad: str, method: str,
                                                                path: str) -> None:
    """Checked at the edge against the declared bounds [1, 2**63-1]: nothing out of range reaches SQL."""
    name = "rule_id" if "alerts" in path else "webhook_id"
    with stack.client() as client:
        response = _call(client, method, f"/api/v1/sites/{site.domain}{path.replace('/1', '/' + bad, 1)}",
                         BODIES.get((method, path)))
    assert 400 == response.status_code, response.text
    assert name in _error(response)


@pytest.mark.parametrize(("method", "path"), [op for op in OPERATIONS if "/1" in op[1]])
def test_non_numeric_ids_are_a_404(stack: Stack, site: Site, method: str, path: str) -> None:
    """No route has a text id there: the router's 404, still in Plausible's shape."""
    with stack.client() as client:
        response = _call(client, method, f"/api/v1/sites/{site.domain}{path.replace('/1', '/abc', 1)}",
                         BODIES.get((method, path)))
    assert 404 == response.status_code, response.text
    _error(response)


def test_endpoint_ids_out_of_range_in_a_body_are_a_400(stack: Stack, site: Site) -> None:
    with stack.client() as client:
        response = client.post(f"/api/v1/sites/{site.domain}/alerts", json={
            "kind": "spike", "params": {"threshold": 5}, "endpoint_ids": [2**63]})
    assert 400 == response.status_code, response.text
    assert "endpoint_ids" in _error(response)
    assert [] == stack.sql("SELECT id FROM alert_rules")


@pytest.mark.parametrize(("method", "path", "message"), [
    pytest.param("GET", f"/webhooks/{2**63 - 1}", "webhook not found", id="get-webhook"),
    pytest.param("DELETE", f"/webhooks/{2**63 - 1}", "webhook not found", id="delete-webhook"),
    pytest.param("GET", f"/webhooks/{2**63 - 1}/deliveries", "webhook not found", id="deliveries"),
    pytest.param("POST", f"/webhooks/{2**63 - 1}/deliveries/1/retry", "not found", id="retry"),
    pytest.param("DELETE", f"/alerts/{2**63 - 1}", "alert rule not found", id="delete-rule"),
    pytest.param("GET", f"/alerts/{2**63 - 1}/history", "alert rule not found", id="history"),
])
def test_the_services_404s_pass_through(stack: Stack, site: Site, method: str, path: str, message: str) -> None:
    """The largest id is valid input: the integrations service answers 404, and the caller gets it as such."""
    with stack.client() as client:
        response = client.request(method, f"/api/v1/sites/{site.domain}{path}")
    assert 404 == response.status_code, response.text
    assert message in _error(response)


def test_the_services_409_and_400_pass_through(stack: Stack, site: Site, receiver: Receiver) -> None:
    """A conflict (a disabled endpoint) stays a 409 and a refusal of the service's own checks a 400."""
    with stack.client() as client:
        created = client.post(f"/api/v1/sites/{site.domain}/webhooks",
                              json={"url": receiver.url("/ok"), "event_types": ["webhook.test"]})
        assert 201 == created.status_code, created.text
        hook = created.json()["id"]
        assert 200 == client.patch(f"/api/v1/sites/{site.domain}/webhooks/{hook}", json={"enabled": False}).status_code
        conflict = client.post(f"/api/v1/sites/{site.domain}/webhooks/{hook}/test")
        refused = client.post(f"/api/v1/sites/{site.domain}/alerts",
                              json={"kind": "spike", "params": {"threshold": 5}, "endpoint_ids": [hook + 1]})
    assert (409, "the webhook is disabled; enable it first") == (conflict.status_code, _error(conflict))
    assert (400, True) == (refused.status_code, _error(refused).startswith("endpoint_ids: "))


@pytest.mark.parametrize("path", [f"/sites/{2**63}/webhooks", f"/sites/1/webhooks/{2**63}", "/sites/0/alerts",
                                  f"/sites/1/alerts/{2**64}/history", f"/sites/1/reports/{2**63}"])
def test_the_service_refuses_out_of_range_ids_itself(stack: Stack, site: Site, path: str) -> None:
    """Its own edge holds too, for any other caller: a 400 problem naming the id, never a 500."""
    headers = {INTERNAL_TOKEN_HEADER: stack.settings.security.internal_token}
    base = stack.settings.server.service_urls["integrations"]
    with httpx.Client(base_url=base, timeout=15, headers=headers) as client:
        response = client.get(path)
    assert (400, "application/problem+json") == (response.status_code, response.headers["content-type"])
    assert "_id" in response.json()["detail"], response.text


def test_unsubscribe_errors_are_pages_as_declared(stack: Stack) -> None:
    """A bad one-click link is a 400 page for the person who followed it, and the document says text/html."""
    with httpx.Client(base_url=stack.api, timeout=15) as client:
        answer = client.post("/api/v1/unsubscribe/not-a-token")
        declared = client.get("/api/docs/openapi.json").json()["paths"]["/api/v1/unsubscribe/{token}"]["post"]
    assert (400, "text/html; charset=utf-8") == (answer.status_code, answer.headers["content-type"])
    assert "token: not a valid unsubscribe link" in answer.text
    assert {"400": ["text/html"], "404": ["text/html"], "503": ["application/problem+json"]} == {
        code: list(declared["responses"][code]["content"]) for code in ("400", "404", "503")}
