"""Providers of the Webhooks API: the site the key may manage, and the shared service client."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

from app.core.http import ServiceClient
from app.core.models import Site
from app.core.resources import Resources
from app.domain.apikeys.deps import ApiPrincipal, principal_site
from app.domain.deps import DEPENDENCIES as SHARED


async def provide_managed_site(resources: NamedDependency[Resources], principal: NamedDependency[ApiPrincipal],
                               domain: FromPath[str]) -> Site:
    """The site ``domain`` if the key's user is its owner or admin; 404 otherwise (existence not revealed)."""
    return await principal_site(resources, principal, domain, "admin")


def provide_services(resources: NamedDependency[Resources]) -> ServiceClient:
    """``services``: the client of the other services (:class:`app.core.http.ServiceClient`)."""
    return resources.services


SERVICES = {**SHARED, "services": Provide(provide_services, sync_to_thread=False)}
"""The shared providers and ``services``."""

DEPENDENCIES = {**SERVICES, "site": Provide(provide_managed_site)}
"""The shared providers, ``services`` and ``site`` (needs ``principal`` and the path's ``domain``)."""
