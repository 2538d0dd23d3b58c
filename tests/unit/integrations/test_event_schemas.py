"""The OpenAPI document publishes the JSON schema of every webhook event type Beacon sends."""

from __future__ import annotations

from typing import Any

from app.core.settings import load_settings
from app.main import create_app
from services.integrations.alerts import MESSAGE_TYPES
from services.integrations.models import EVENT_TYPES
from tests.support.settings import BASE


def document() -> dict[str, Any]:
    return dict(create_app(load_settings(BASE)).openapi_schema.to_schema())


def resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_event_type_has_a_published_schema() -> None:
    """Each subscribable type and each alert message type is a member of GET /api/v1/webhooks/events's answer,
    whose schema has ``type`` fixed to it and a ``data`` object with the site and the dashboard link."""
    doc = document()
    answer = doc["paths"]["/api/v1/webhooks/events"]["get"]["responses"]["200"]["content"]["application/json"]
    members = resolve(answer["schema"], doc)["properties"]
    published = {}
    for schema in members.values():
        event = resolve(schema, doc)
        data = resolve(event["properties"]["data"], doc)
        kind = resolve(event["properties"]["type"], doc)
        for name in kind.get("enum", [kind.get("const")]):
            published[name] = sorted({"site", "dashboard_url"} & set(data["properties"]))
    expected = set(EVENT_TYPES) | set(MESSAGE_TYPES.values())
    assert {name: ["dashboard_url", "site"] for name in expected} == {
        name: published.get(name) for name in expected}
