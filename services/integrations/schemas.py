"""Requests and answers of the integrations service (the api forwards the Webhooks API's bodies here).

The shapes both sides share live in ``app.core.integration_contracts``; the ones below are the service's own.
"""

from __future__ import annotations

from typing import Annotated

import msgspec


class Unsubscribe(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(max_length=200)]


class Unsubscribed(msgspec.Struct):
    site: str
    kind: str


class ReportChoice(msgspec.Struct, forbid_unknown_fields=True):
    weekly: bool
    """Monday's report of the week before."""
    monthly: bool
    """The 1st's report of the month before."""
