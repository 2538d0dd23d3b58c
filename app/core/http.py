"""The one HTTP client the api uses to call Beacon's internal services: timeouts, retries, the token."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from app.core.errors import AppError, ServiceUnavailable
from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.settings import Settings

logger = logging.getLogger("beacon.http")

_RETRY_STATUSES = {502, 503, 504}
_IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}


class ServiceError(AppError):
    """An internal service answered with a client error; its detail is passed on."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.title = "Bad request" if status_code == 400 else "Request failed"


class ServiceClient:
    """Calls ``ingest``, ``analytics``, ``integrations`` and ``compute`` by name.

    A service that cannot be reached, times out or fails raises :class:`ServiceUnavailable` naming the
    service, so one failing service degrades one feature instead of the whole app.
    """

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._urls = dict(settings.server.service_urls)
        self._retries = settings.http_client.retries
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.http_client.timeout, connect=2.0),
            headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token, "User-Agent": "beacon-api"},
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(self, service: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; retry idempotent ones on connection errors and 502/503/504."""
        url = self._urls[service] + path
        attempts = 1 + (self._retries if method.upper() in _IDEMPOTENT else 0)
        last_error = ""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(0.05 * 2**attempt)
            try:
                response = await self._client.request(method, url, **kwargs)
            except httpx.TimeoutException:
                last_error = "timed out"
                continue
            except httpx.TransportError as exc:
                last_error = f"unreachable ({type(exc).__name__})"
                continue
            if response.status_code in _RETRY_STATUSES:
                last_error = f"answered {response.status_code}"
                continue
            return response
        logger.warning("service call failed", extra={"service": service, "path": path, "error": last_error})
        raise ServiceUnavailable(f"the {service} service is unavailable: {last_error}")

    async def json(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        """Call a service and return its JSON body; 4xx answers become :class:`ServiceError`."""
        response = await self.request(service, method, path, **kwargs)
        if response.status_code >= 500:
            raise ServiceUnavailable(f"the {service} service failed with {response.status_code}")
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail") or response.text
            except ValueError:
                detail = response.text
            raise ServiceError(response.status_code, str(detail))
        return response.json()
