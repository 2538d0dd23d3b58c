"""Typed messages between the api and the integrations service (msgspec): the Webhooks and Alerts APIs' bodies.

The api validates them at its edge and publishes them in the OpenAPI document; the integrations service, which
owns the data, validates the same shapes again when the api forwards them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar.params import PathParameter

ID_MAX = 2**63 - 1
"""Ids are PostgreSQL bigints: one outside [1, ID_MAX] names nothing and must not reach SQL."""
Id = Annotated[int, msgspec.Meta(ge=1, le=ID_MAX)]
PathId = Annotated[int, PathParameter(ge=1, le=ID_MAX)]
"""An id in a path: out of range it is a 400 naming the parameter."""

Format = Literal["generic", "slack", "discord"]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
Description = Annotated[str, msgspec.Meta(max_length=200)]
EventTypes = Annotated[list[Annotated[str, msgspec.Meta(max_length=32)]], msgspec.Meta(min_length=1, max_length=7)]


class WebhookCreate(msgspec.Struct, forbid_unknown_fields=True):
    url: Url
    """Where deliveries are POSTed: https, resolving to public addresses only."""
    event_types: EventTypes
    """The event types delivered to this endpoint (see the README for each one's body)."""
    format: Format = "generic"
    """``generic`` (Standard Webhooks JSON), ``slack`` (incoming webhook) or ``discord`` (webhook)."""
    description: Description = ""


class WebhookUpdate(msgspec.Struct, forbid_unknown_fields=True):
    url: Url | msgspec.UnsetType = msgspec.UNSET
    event_types: EventTypes | msgspec.UnsetType = msgspec.UNSET
    format: Format | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    """``true`` re-enables an endpoint that was disabled (after a 410 or days of failures)."""


class Webhook(msgspec.Struct):
    id: int
    url: str
    description: str
    format: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    secret: str | None = None
    """The ``whsec_`` signing secret: present only in the answer that created the endpoint."""


class Attempt(msgspec.Struct):
    attempted_at: datetime
    status_code: int | None
    duration_ms: float
    response_body: str
    """The first 2 KB of the receiver's answer."""
    error: str | None


class Delivery(msgspec.Struct):
    id: int
    webhook_id: str
    """The ``webhook-id`` header, the same on every attempt."""
    event_type: str
    status: str
    """``pending``, ``succeeded`` or ``failed``."""
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, object]
    log: list[Attempt]


Email = Annotated[str, msgspec.Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class AlertRuleCreate(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["spike", "drop", "goal", "anomaly"]
    """``spike``: current visitors ≥ threshold; ``drop``: last hour ≤ threshold while the same hour last week
    ≥ baseline; ``goal``: the goal's conversions today ≥ threshold; ``anomaly``: the last complete hour's
    anomaly score (compute service's detector) ≥ threshold."""
    params: dict[str, str | int | float]
    """``{"threshold"}``, ``{"threshold", "baseline"}``, ``{"goal", "threshold"}`` or, for ``anomaly``,
    ``{"threshold": 0.5, "metric": "visitors"}`` (score in (0, 1]; ``visitors`` or ``pageviews``)."""
    recipients: Annotated[list[Email], msgspec.Meta(max_length=20)] = []
    endpoint_ids: Annotated[list[Id], msgspec.Meta(max_length=20)] = []
    cooldown: Annotated[int, msgspec.Meta(ge=60, le=30 * 86400)] = 43200
    """Seconds the rule stays quiet after firing."""


class AlertRuleUpdate(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool
    """``false`` pauses the rule (it is not evaluated); ``true`` resumes it."""


class AlertRule(msgspec.Struct):
    id: int
    kind: str
    params: dict[str, object]
    recipients: list[str]
    endpoint_ids: list[int]
    cooldown: int
    enabled: bool
    last_fired_at: datetime | None
    created_at: datetime


class AlertFiring(msgspec.Struct):
    fired_at: datetime
    value: float
    details: dict[str, object]


class PasswordResetMail(msgspec.Struct, forbid_unknown_fields=True):
    """What the api asks the integrations service to mail: a password reset link for an existing account."""

    recipient: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
    link: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    """The one-time link (``<base url>/password/reset?token=...``)."""
    valid_minutes: Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 60)]
    """How long the link works, told to the reader."""
