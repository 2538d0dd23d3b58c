"""The one HTTP client the api uses to call Beacon's internal services: timeouts, retries, the token."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from app.core.errors import AppError, ServiceUnavailable
from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.logging import REQUEST_ID_HEADER, current_request_id
from app.core.settings import Settings

logger = logging.getLogger("beacon.http")

_NOT_STARTED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Failures after which the callee cannot be working on the request: it never received it."""


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

    A call is retried only when the callee cannot be working on it: the connection was never made (refused,
    connect timeout, no free connection), so nothing was sent, whatever the method. A read timeout, a
    connection lost after sending, or a 5xx answer is not retried:
    the first attempt may still be running, and a retry would double the load of exactly the slow requests.
    A call given up on closes its connection, which the callee sees as a disconnect (the analytics service
    cancels its statement then; its statements are bounded by a budget below this timeout anyway).
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
        """Send a request; retry it only if it never reached the service (see the class docstring)."""
        url = self._urls[service] + path
        request_id = current_request_id()
        if request_id is not None:
            # The callee logs and answers under the same id (app.core.request_id).
            kwargs["headers"] = {**(kwargs.get("headers") or {}), REQUEST_ID_HEADER: request_id}
        attempts = 1 + self._retries
        last_error = ""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(0.05 * 2**attempt)
            try:
                return await self._client.request(method, url, **kwargs)
            except _NOT_STARTED as exc:
                last_error = f"unreachable ({type(exc).__name__})"
                continue
            except httpx.TimeoutException:
                last_error = "timed out"
            except httpx.TransportError as exc:
                last_error = f"connection lost ({type(exc).__name__})"
            break
        logger.warning("service call failed", extra={"service": service, "path": path, "error": last_error})
        raise ServiceUnavailable(f"the {service} service is unavailable: {last_error}")

    async def json(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        """Call a service and return its JSON body; 4xx answers become :class:`ServiceError`."""
        response = await self.request(service, method, path, **kwargs)
        _raise_for(service, response)
        return response.json()

    async def open_stream(self, service: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call a service whose answer is streamed; errors map as in :meth:`json` before any byte is read.

        The caller reads ``aiter_bytes()`` and must ``aclose()`` the response. Not retried: the answer may be
        long and the callee may be working on it.
        """
        try:
            response = await self._client.send(
                self._client.build_request(method, self._urls[service] + path, **kwargs), stream=True)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"the {service} service is unavailable: {type(exc).__name__}") from None
        if response.status_code >= 400:
            try:
                await response.aread()
            finally:
                await response.aclose()
            _raise_for(service, response)
        return response


def _raise_for(service: str, response: httpx.Response) -> None:
    """Map a service's error answer: 5xx to :class:`ServiceUnavailable`, 4xx to :class:`ServiceError`."""
    if response.status_code == 503 and _problem_detail(response):
        # The service said why (e.g. a query over its budget): pass that on.
        raise ServiceUnavailable(_problem_detail(response))
    if response.status_code >= 500:
        raise ServiceUnavailable(f"the {service} service failed with {response.status_code}")
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail") or response.text
        except ValueError:
            detail = response.text
        raise ServiceError(response.status_code, str(detail))


def _problem_detail(response: httpx.Response) -> str:
    """The ``detail`` of a problem+json answer, or ''."""
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return ""
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("detail") or "") if isinstance(body, dict) else ""
