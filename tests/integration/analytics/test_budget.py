"""A query over the analytics budget is stopped by PostgreSQL and answered with a 503 naming the budget."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.core.internal import INTERNAL_TOKEN_HEADER
from app.core.settings import Settings, load_settings
from app.devstack import free_port
from tests.integration.analytics.test_stats_query import DAY, dataset  # noqa: F401 - the fixture
from tests.integration.conftest import Services


@pytest.fixture
def tight(environment: dict[str, str], settings: Settings) -> Iterator[int]:
    """An analytics process whose query budget is one millisecond; yields its port."""
    port = free_port()
    env = environment | {"BEACON_ANALYTICS_PORT": str(port), "BEACON_ANALYTICS_QUERY_BUDGET": "0.001"}
    processes = Services(env, load_settings(env))
    processes.start("analytics")
    try:
        yield port
    finally:
        processes.stop("analytics")


def test_query_over_budget(settings: Settings, tight: int, dataset: None) -> None:  # noqa: F811
    """The statement is cancelled at the budget; the answer says so, with the budget, not 'unavailable'."""
    response = httpx.post(f"http://127.0.0.1:{tight}/query",
                          json={"site_id": "stats.example", "date_range": DAY, "metrics": ["visitors", "bounce_rate"],
                                "dimensions": ["visit:source"], "filters": [["is", "event:page", ["/"]]]},
                          headers={INTERNAL_TOKEN_HEADER: settings.security.internal_token}, timeout=20)
    assert 503 == response.status_code, response.text
    assert "budget of 0.001 s" in response.json()["detail"]
