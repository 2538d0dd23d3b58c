"""Providers of the admin pages and API: the signed-in instance admin and the process's resources."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import Provide

from app.core.models import User
from app.core.resources import Resources
from app.domain.accounts.deps import require_admin


async def provide_admin(request: Request[Any, Any, Any]) -> User:
    """The signed-in user if an instance admin; 401 signed out, 403 otherwise."""
    return await require_admin(request)


def provide_resources(request: Request[Any, Any, Any]) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


DEPENDENCIES = {"admin": Provide(provide_admin), "resources": Provide(provide_resources, sync_to_thread=False)}
