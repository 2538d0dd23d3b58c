"""Requests and answers of the integrations service."""

from __future__ import annotations

from typing import Annotated

import msgspec


class TestWebhook(msgspec.Struct):
    url: Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern=r"^https?://")]
    """Where to deliver; http or https."""
    secret: Annotated[str, msgspec.Meta(min_length=16, max_length=200)]
    """The shared secret the receiver verifies the signature with."""


class Delivery(msgspec.Struct):
    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: float
