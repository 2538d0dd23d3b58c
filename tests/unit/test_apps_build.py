"""Every process's app builds without warnings (deprecated Litestar styles fail here, not in production)."""

from __future__ import annotations

import pytest

from app.core.serve import PROCESS_NAMES, _factory
from app.core.settings import load_settings
from tests.unit.test_settings import BASE


@pytest.mark.parametrize("name", PROCESS_NAMES)
def test_app_builds(name: str) -> None:
    """create_app() of each process succeeds with plain settings and touches no server."""
    app = _factory(name)(load_settings(BASE))
    assert app.routes
