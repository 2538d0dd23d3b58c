"""``GET /api/v1/sites/{domain}/export`` through the api: a stats:read key, site access, the streamed zip."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

import httpx
import pytest

from tests.support.accounts import Servers, World, signed_in
from tests.support.beacon import run_beacon


@pytest.fixture
def key(servers: Servers, world: World, serve: Callable[[str], int]) -> str:
    """A stats:read key of the owner of export.example (two pageviews on 2026-03-10); hidden.example is a
    stranger's."""
    serve("analytics")
    owner = world.user("owner@example.com")
    world.site("export.example", {owner: "owner"})
    world.site("hidden.example", {world.user("stranger@example.com"): "owner"})
    for visitor, path in ((1, "/"), (2, "/pricing")):
        world.sql("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
                  "VALUES (:s, '2026-03-10 12:00+00', 'pageview', :v, :v, 'export.example', :p)",
                  s=world.sites["export.example"], v=visitor, p=path)
    created = run_beacon(servers.environment, "apikey", "create", "--email", "owner@example.com", "--name", "ci")
    assert 0 == created.returncode, created.stderr
    return created.stdout.strip()


def get(servers: Servers, domain: str, key: str | None, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{servers.api}/api/v1/sites/{domain}/export", params=params, headers=headers, timeout=60)


def test_export_streams_the_zip(servers: Servers, key: str) -> None:
    """The owner's key gets the zip; its visitors file holds the day's two visitors."""
    response = get(servers, "export.example", key, date_range="2026-03-01,2026-03-31")
    assert 200 == response.status_code, response.text
    assert "application/zip" == response.headers["content-type"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        visitors = archive.read("imported_visitors_20260301_20260331.csv").decode().splitlines()
    assert ["date,visitors,pageviews,bounces,visits,visit_duration", "2026-03-10,2,2,2,2,0"] == visitors


@pytest.mark.parametrize(("domain", "params", "with_key", "status"), [
    pytest.param("hidden.example", {}, True, 404, id="site-of-another-user"),
    pytest.param("nowhere.example", {}, True, 404, id="no-such-site"),
    pytest.param("export.example", {}, False, 401, id="no-key"),
    pytest.param("export.example", {"date_range": "2026-03-31,2026-03-01"}, True, 400, id="bad-range"),
])
def test_export_refusals(servers: Servers, key: str, domain: str, params: dict[str, str], with_key: bool,
                         status: int) -> None:
    """Plausible's errors: a site the key cannot see is not found; a bad range says what is wrong."""
    response = get(servers, domain, key if with_key else None, **params)
    assert status == response.status_code, response.text
    assert "error" in response.json()


def test_settings_export_button_for_owners(servers: Servers, world: World, key: str) -> None:
    """The imports page's export: the owner gets the zip; a site the user does not administer is not found."""
    with signed_in(servers, world, world.users["owner@example.com"]) as owner:
        mine = owner.get("/sites/export.example/export", params={"date_range": "2026-03-01,2026-03-31"})
        theirs = owner.get("/sites/hidden.example/export")
    assert 200 == mine.status_code, mine.text
    with zipfile.ZipFile(io.BytesIO(mine.content)) as archive:
        assert 10 == len(archive.namelist())
    assert 404 == theirs.status_code
