"""Every process's app builds without warnings (deprecated Litestar styles fail here, not in production)."""

from __future__ import annotations

import pytest

from app.core.resources import Resources
from app.core.settings import load_settings
from app.realtime.app import RealtimeServer
from app.serve import LITESTAR_PROCESSES, app_factory
from tests.support.settings import BASE


@pytest.mark.parametrize("name", LITESTAR_PROCESSES)
def test_app_builds(name: str) -> None:
    """create_app() of each process succeeds with plain settings and touches no server."""
    app = app_factory(name)(load_settings(BASE))
    assert app.routes


async def test_realtime_server_builds() -> None:
    """The realtime process's server builds with plain settings and touches no server until started."""
    resources = Resources.open(load_settings(BASE), "realtime")
    server = RealtimeServer(resources)
    assert ("/ws", 0) == (server.path, server.hub.connections)
    await resources.close()
