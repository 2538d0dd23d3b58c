"""Providers of the Webhooks API: the site the key may manage, and the shared service client."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

from app.core.http import ServiceClient
from app.core.models import Site
from app.core.resources import Resources
from app.domain.apikeys.deps import ApiPrincipal, principal_site


async def provide_managed_site(request: Request[Any, Any, Any], principal: NamedDependency[ApiPrincipal],
                               domain: FromPath[str]) -> Site:
    """The site ``domain`` if the key's user is its owner or admin; 404 otherwise (existence not revealed)."""
    return await principal_site(request, principal, domain, "admin")


def provide_services(request: Request[Any, Any, Any]) -> ServiceClient:
    resources: Resources = request.app.state.resources
    return resources.services


DEPENDENCIES = {"site": Provide(provide_managed_site), "services": Provide(provide_services, sync_to_thread=False)}
