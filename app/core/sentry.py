"""Errors to Sentry (sentry-sdk) when ``BEACON_SENTRY_DSN`` is set; nothing at all otherwise.

Every event carries the process name and the request id of the request or job it happened in (tag
``request_id``, the same ``X-Request-ID`` as in the logs), the deployed version as ``release``, and no
personal data (sentry-sdk's ``data_collection``, which replaces ``send_default_pii``: no user, cookies,
bodies, query strings, local variables or client addresses; request headers only from a short allowlist).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from app.core.errors import unreadable_body
from app.core.logging import current_request_id
from app.core.settings import Settings

if TYPE_CHECKING:
    from sentry_sdk.integrations import Integration

logger = logging.getLogger("beacon.sentry")

_HTTP_PROCESSES = frozenset({"api", "ingest", "analytics", "integrations", "compute"})


def _tag_request_id(event: Any, hint: Any) -> Any:
    """``before_send``: tag the event with the current request id (see :mod:`app.core.request_id`); drop it when
    it is a request body the client sent unreadable (answered 400, see :func:`app.core.errors.unreadable_body`),
    which the Litestar integration reports as it passes."""
    exc_info = (hint or {}).get("exc_info")
    if exc_info and isinstance(exc_info[1], Exception) and unreadable_body(exc_info[1]) is not None:
        return None
    request_id = current_request_id()
    if request_id is not None:
        tags = event.setdefault("tags", {})
        if isinstance(tags, dict):
            tags["request_id"] = request_id
        else:  # the protocol also allows a list of pairs
            tags.append(["request_id", request_id])
    return event


def init_sentry(process: str, settings: Settings) -> bool:
    """Start sending ``process``'s errors to Sentry if a DSN is configured; returns whether it did.

    ``process`` is a watcher name: the HTTP processes get the Litestar integration, ``worker`` the Dramatiq
    one (call this before the broker's workers start), ``realtime`` and ``scheduler`` the defaults (logged
    errors and uncaught exceptions). Must run before the Litestar app is built (the integration wraps it).
    """
    config = settings.observability
    if not config.sentry_dsn:
        return False
    # Imported only when a DSN is set: sentry-sdk and its integrations add ~0.25 s to every process's start-up
    # on this machine, which counts when Circus restarts a killed process (tests/e2e/test_stack.py).
    import sentry_sdk  # noqa: PLC0415 - only with a DSN (start-up cost, see above)
    from sentry_sdk.integrations.dramatiq import DramatiqIntegration  # noqa: PLC0415 - only with a DSN (start-up cost, see above)
    from sentry_sdk.integrations.litestar import LitestarIntegration  # noqa: PLC0415 - only with a DSN (start-up cost, see above)

    integrations: list[Integration] = []
    if process in _HTTP_PROCESSES:
        integrations.append(LitestarIntegration())
    elif process == "worker":
        integrations.append(DramatiqIntegration())
    sentry_sdk.init(
        dsn=config.sentry_dsn,
        release=config.release,
        environment=config.sentry_environment,
        # No personal data: what send_default_pii=False meant, stricter (sentry-sdk's data_collection option,
        # which replaces it): no user, cookies, bodies or query strings; only headers that identify no one.
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_headers": {"request": {"mode": "allowlist", "terms": ["accept", "content-type", "user-agent",
                                                                         "x-request-id"]}},
            "http_bodies": [],
            "url_query_params": {"mode": "off"},
            "database_query_data": False,
            "queues": False,
            "stack_frame_variables": False,
        },
        sample_rate=config.sentry_sample_rate,
        traces_sample_rate=config.sentry_traces_sample_rate,
        integrations=integrations,
        before_send=_tag_request_id,
    )
    sentry_sdk.set_tag("process", process)
    logger.info("errors are sent to Sentry",
                extra={"release": config.release, "sample_rate": config.sentry_sample_rate})
    return True
