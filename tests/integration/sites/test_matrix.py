"""The authorisation matrix: every site endpoint and the site's WebSocket room x every kind of caller.

Callers: anonymous, another user (member of another site only), viewer, admin, owner, an API key of
another site's user, a revoked key of the owner, and a holder of the site's share link. Each row says what
each caller gets; callers without access get the same answer whether or not the object exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
import websockets

from app.core.sessions import SESSION_COOKIE
from tests.support.accounts import Browser, Servers, World, signed_in

ACTORS = ("anonymous", "other", "viewer", "admin", "owner", "key_other", "key_revoked", "share")
SITE = "matrix.example"
MISSING = "missing.example"
SHARE_TOKEN = "share-token-for-the-matrix-site"


def key_for(name: str) -> str:
    return f"bk_matrix_{name}_key_0123456789"


@dataclass
class Case:
    method: str
    path: str
    allowed: dict[str, int]
    """Status for callers with access; everyone else gets ``denied`` below."""
    form: dict[str, str] | None = None
    api: bool = False


def ui(method: str, path: str, need: str, ok: int, form: dict[str, str] | None = None) -> Case:
    roles = {"viewer": ("viewer", "admin", "owner"), "admin": ("admin", "owner"), "owner": ("owner",)}[need]
    return Case(method, path, {role: ok for role in roles} | {r: 403 for r in ("viewer", "admin")
                                                             if r not in roles}, form)


CASES = [
    pytest.param(ui("GET", "/sites/{site}", "viewer", 200), id="dashboard"),
    pytest.param(ui("GET", "/sites/{site}/settings", "admin", 200), id="settings"),
    pytest.param(ui("POST", "/sites/{site}/settings", "admin", 303, {"domain": "{site}", "timezone": "UTC"}),
                 id="edit-site"),
    pytest.param(ui("GET", "/sites/{site}/delete", "owner", 200), id="delete-page"),
    pytest.param(ui("POST", "/sites/{site}/delete", "owner", 303, {"confirm": "{site}"}), id="delete-site"),
    pytest.param(ui("POST", "/sites/{site}/goals", "admin", 303, {"goal_type": "event", "event_name": "Signup"}),
                 id="add-goal"),
    pytest.param(ui("POST", "/sites/{site}/share", "admin", 201), id="share"),
    pytest.param(ui("POST", "/sites/{site}/share/revoke", "admin", 303), id="unshare"),
    pytest.param(ui("POST", "/sites/{site}/invitations", "admin", 201, {"email": "n@example.com", "role": "viewer"}),
                 id="invite"),
    pytest.param(ui("POST", "/sites/{site}/annotations", "admin", 303, {"date": "2026-11-26", "body": "v2"}),
                 id="annotate"),
    pytest.param(ui("GET", "/sites/{site}/setup", "admin", 200), id="setup"),
    pytest.param(ui("GET", "/sites/{site}/status", "viewer", 200), id="first-event-status"),
    pytest.param(ui("POST", "/sites/{site}/exclusions", "admin", 303, {"kind": "ip", "pattern": "10.0.0.0/8"}),
                 id="exclude"),
    pytest.param(Case("GET", "/api/v1/sites/{site}", {"admin": 200, "owner": 200}, api=True), id="api-get-site"),
    pytest.param(Case("DELETE", "/api/v1/sites/{site}", {"owner": 200}, api=True), id="api-delete-site"),
    pytest.param(Case("GET", "/api/v1/sites/goals?site_id={site}", {"admin": 200, "owner": 200}, api=True),
                 id="api-goals"),
    pytest.param(Case("PUT", "/api/v1/sites/goals", {"admin": 200, "owner": 200}, api=True,
                      form={"site_id": "{site}", "goal_type": "page", "page_path": "/thanks"}), id="api-put-goal"),
]


def build(world: World) -> dict[str, int]:
    ids = {name: world.user(f"{name}@example.com") for name in ("other", "viewer", "admin", "owner")}
    world.site(SITE, {ids["viewer"]: "viewer", ids["admin"]: "admin", ids["owner"]: "owner"})
    world.site("other.example", {ids["other"]: "owner"})
    world.sql("UPDATE sites SET share_token_hash = :h WHERE domain = :d",
              h=hashlib.sha256(SHARE_TOKEN.encode()).digest(), d=SITE)
    for name, user_id in ids.items():
        world.sql("INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes) VALUES (:u, :n, 'bk_', :h, :s)",
                  u=user_id, n=name, h=hashlib.sha256(key_for(name).encode()).digest(),
                  s=["stats:read", "sites:write"])
    world.sql("INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes, revoked_at) "
              "VALUES (:u, 'old', 'bk_', :h, :s, now())", u=ids["owner"],
              h=hashlib.sha256(key_for("revoked").encode()).digest(), s=["stats:read", "sites:write"])
    return ids


def client_for(servers: Servers, world: World, ids: dict[str, int], actor: str, api: bool) -> Browser:
    if actor in ("other", "viewer", "admin", "owner") and not api:
        return signed_in(servers, world, ids[actor])
    headers = {"Accept": "text/html"}
    if api and actor in ("other", "viewer", "admin", "owner", "key_other", "key_revoked"):
        name = {"key_other": "other", "key_revoked": "revoked"}.get(actor, actor)
        headers["Authorization"] = f"Bearer {key_for(name)}"
    return Browser(base_url=servers.api, timeout=15, headers=headers)


def call(client: Browser, case: Case, site: str) -> httpx.Response:
    path = case.path.format(site=site)
    form = {k: v.format(site=site) for k, v in (case.form or {}).items()}
    if case.api:
        return client.request(case.method, path, json=form or None)
    if case.method == "GET":
        return client.get(path, follow_redirects=False)
    return client.form(path, form, follow_redirects=False)


def denied(case: Case, actor: str) -> int:
    if case.api:
        # Plausible's rule: a key without access to the site learns nothing: 404; no valid key: 401.
        return 401 if actor in ("anonymous", "key_revoked", "share") else 404
    if actor in ("anonymous", "key_other", "key_revoked", "share"):
        return 302 if case.method == "GET" else 401
    return 404  # another user: the site might as well not exist


@pytest.fixture(autouse=True)
def analytics(serve: Callable[[str], int]) -> None:
    """The site pages ask the analytics service (the setup page whether the first event has arrived)."""
    serve("analytics")


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("case", CASES)
def test_matrix(servers: Servers, world: World, case: Case, actor: str) -> None:
    """Exactly the allowed roles succeed; the others get 401/403/404, the same for a missing site."""
    ids = build(world)
    expected = case.allowed.get(actor, denied(case, actor)) if actor in ("viewer", "admin", "owner") \
        else denied(case, actor)
    with client_for(servers, world, ids, actor, case.api) as client:
        if actor == "share":
            assert 200 == client.get(f"/share/{SHARE_TOKEN}").status_code  # the link opens only its page
        answer = call(client, case, SITE)
        assert expected == answer.status_code, answer.text[:300]
        if expected in (302, 401, 404):
            assert expected == call(client, case, MISSING).status_code
    if expected == 302:
        assert answer.headers["location"].startswith("/login")


def test_share_link_opens_the_read_only_dashboard_until_revoked(servers: Servers, world: World) -> None:
    """The share link shows the dashboard without sign-in; once revoked it is not found."""
    build(world)
    with httpx.Client(base_url=servers.api) as client:
        assert 200 == client.get(f"/share/{SHARE_TOKEN}").status_code
        world.sql("UPDATE sites SET share_token_hash = NULL")
        assert 404 == client.get(f"/share/{SHARE_TOKEN}").status_code


async def ws_join(servers: Servers, world: World, ids: dict[str, int], actor: str, room: str) -> str:
    """``joined``, ``refused`` (handshake) or the error detail of the join."""
    url = f"ws://127.0.0.1:{servers.realtime_port}/ws"
    headers: dict[str, str] = {"Origin": servers.api}
    if actor in ("other", "viewer", "admin", "owner"):
        headers["Cookie"] = f"{SESSION_COOKIE}={world.session_for(ids[actor])}"
    elif actor in ("key_other", "key_revoked"):
        headers["Authorization"] = f"Bearer {key_for('other' if actor == 'key_other' else 'revoked')}"
    elif actor == "share":
        url += f"?share={SHARE_TOKEN}"
    try:
        async with websockets.connect(url, additional_headers=headers) as socket:
            json.loads(await socket.recv())
            await socket.send(json.dumps({"type": "join", "room": room}))
            while True:
                answer = json.loads(await asyncio.wait_for(socket.recv(), 5))
                if answer["type"] != "ping":
                    return "joined" if answer["type"] == "joined" else str(answer["detail"])
    except websockets.exceptions.InvalidStatus as exc:
        assert 403 == exc.response.status_code
        return "refused"


WS_EXPECTED = {"anonymous": "refused", "other": "no such room", "viewer": "joined", "admin": "joined",
               "owner": "joined", "key_other": "refused", "key_revoked": "refused", "share": "joined"}


@pytest.mark.parametrize("actor", ACTORS)
async def test_matrix_websocket_room(servers: Servers, world: World, actor: str) -> None:
    """Joining the site's room needs access; without it, the answer equals that for a room that does not exist."""
    ids = build(world)
    room = f"site:{world.sites[SITE]}"
    assert WS_EXPECTED[actor] == await ws_join(servers, world, ids, actor, room)
    if WS_EXPECTED[actor] != "joined":
        assert WS_EXPECTED[actor] == await ws_join(servers, world, ids, actor, "site:999999")
    else:
        assert "no such room" == await ws_join(servers, world, ids, actor, "site:999999")
