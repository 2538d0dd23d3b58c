"""Sites: the Plausible-compatible Sites API, the site pages, invitations, goals, annotations and search."""

from __future__ import annotations

import re

import httpx

from tests.support.accounts import Servers, World, signed_in
from tests.support.beacon import run_beacon


def api_key(servers: Servers, world: World, user_id: int, scopes: list[str]) -> str:
    with signed_in(servers, world, user_id) as client:
        page = client.form("/account/api-keys", {"name": "script", "scopes": scopes})
    found = re.search(r'id="new-api-key">([^<]+)<', page.text)
    assert found is not None
    return found.group(1)


def test_sites_api_provisions_a_site_with_goals(servers: Servers, world: World) -> None:
    """Create, get, goals (idempotent put, list, delete) and delete, in Plausible's shapes."""
    key = api_key(servers, world, world.user("ops@example.com"), ["sites:write"])
    with httpx.Client(base_url=servers.api, headers={"Authorization": f"Bearer {key}"}) as api:
        created = api.post("/api/v1/sites", json={"domain": "new.example", "timezone": "Europe/Berlin"})
        assert (200, {"domain": "new.example", "timezone": "Europe/Berlin"}) == (created.status_code, created.json())
        assert {"domain": "new.example", "timezone": "Europe/Berlin"} == api.get("/api/v1/sites/new.example").json()
        goal = api.put("/api/v1/sites/goals", json={"site_id": "new.example", "goal_type": "event",
                                                    "event_name": "Signup"}).json()
        again = api.put("/api/v1/sites/goals", json={"site_id": "new.example", "goal_type": "event",
                                                     "event_name": "Signup"}).json()
        assert goal == again
        assert {"goal_type": "event", "event_name": "Signup", "page_path": None, "display_name": "Signup"} == {
            k: goal[k] for k in ("goal_type", "event_name", "page_path", "display_name")}
        assert [goal] == api.get("/api/v1/sites/goals", params={"site_id": "new.example"}).json()["goals"]
        assert {"deleted": True} == api.request("DELETE", f"/api/v1/sites/goals/{goal['id']}",
                                                json={"site_id": "new.example"}).json()
        assert {"deleted": True} == api.delete("/api/v1/sites/new.example").json()
        assert 404 == api.get("/api/v1/sites/new.example").status_code
    assert [] == world.sql("SELECT id FROM sites")


def test_sites_api_names_bad_fields_and_checks_scope(servers: Servers, world: World) -> None:
    """Bad input gets 400 naming the field; a stats-only key may not write sites; last use is recorded."""
    user = world.user("ops@example.com")
    key, reader = api_key(servers, world, user, ["sites:write"]), api_key(servers, world, user, ["stats:read"])
    with httpx.Client(base_url=servers.api, headers={"Authorization": f"Bearer {key}"}) as api:
        cases = {
            "domain": api.post("/api/v1/sites", json={}),
            "timezone": api.post("/api/v1/sites", json={"domain": "ok.example", "timezone": "Mars/Base"}),
            "goal_type": api.put("/api/v1/sites/goals", json={"site_id": "ok.example"}),
            "body": api.post("/api/v1/sites", content=b"{not json", headers={"Content-Type": "application/json"}),
        }
    for field, answer in cases.items():
        assert 400 == answer.status_code, (field, answer.text)
        assert "error" in answer.json()
    assert "domain" in cases["domain"].json()["error"] and "timezone" in cases["timezone"].json()["error"]
    assert 403 == httpx.post(f"{servers.api}/api/v1/sites", json={"domain": "x.example"},
                             headers={"Authorization": f"Bearer {reader}"}).status_code
    assert [(True,)] == world.sql(
        "SELECT bool_or(last_used_at IS NOT NULL) FROM api_keys WHERE 'sites:write' = ANY(scopes)")


def test_site_pages_create_edit_and_delete_after_confirmation(servers: Servers, world: World) -> None:
    """A user adds a site (becoming owner), edits it, and deletes it only after typing the domain."""
    with signed_in(servers, world, world.user("me@example.com")) as client:
        assert 303 == client.form("/sites", {"domain": "https://www.Mine.example/", "timezone": "UTC"}).status_code
        settings = client.get("/sites/mine.example/settings")
        assert 'data-domain="mine.example"' in settings.text.replace("&#34;", '"').replace("&quot;", '"')
        bad = client.form("/sites/mine.example/settings", {"domain": "mine.example", "timezone": "Nowhere"})
        assert 400 == bad.status_code and "timezone:" in bad.text
        unconfirmed = client.form("/sites/mine.example/delete", {"confirm": "yes"})
        assert 400 == unconfirmed.status_code and "confirm:" in unconfirmed.text
        assert 303 == client.form("/sites/mine.example/delete", {"confirm": "mine.example"}).status_code
    assert [] == world.sql("SELECT id FROM sites")


def test_invitation_link_makes_a_member(servers: Servers, world: World) -> None:
    """An invitation link, opened by the invited user, adds them with the role; it works once."""
    owner, guest = world.user("owner@example.com"), world.user("guest@example.com")
    world.site("team.example", {owner: "owner"})
    with signed_in(servers, world, owner) as client:
        page = client.form("/sites/team.example/invitations", {"email": "guest@example.com", "role": "viewer"})
    link = re.search(r'id="invitation-url">[^<]*/invitations/([^<]+)<', page.text)
    assert link is not None
    with signed_in(servers, world, guest) as client:
        assert 404 == client.get("/sites/team.example").status_code
        assert 303 == client.form(f"/invitations/{link.group(1)}").status_code
        assert 200 == client.get("/sites/team.example").status_code
        assert 404 == client.form(f"/invitations/{link.group(1)}").status_code
    assert [("viewer",)] == world.sql("SELECT role FROM memberships WHERE user_id = :u", u=guest)


def test_search_finds_sites_goals_and_annotations_the_user_can_see(servers: Servers, world: World) -> None:
    """Full-text search over the user's sites, goals and annotations, never another user's."""
    me, other = world.user("me@example.com"), world.user("other@example.com")
    world.site("shop.example", {me: "owner"})
    world.site("secret-shop.example", {other: "owner"})
    with signed_in(servers, world, me) as client:
        client.form("/sites/shop.example/goals", {"goal_type": "event", "event_name": "Checkout"})
        client.form("/sites/shop.example/annotations", {"date": "2026-11-20", "body": "Launched the new checkout"})
        found = client.get("/search", params={"q": "checkout"})
        shops = client.get("/search", params={"q": "shop"})
        empty = client.get("/search", params={"q": " "})
    assert ["annotation", "goal"] == sorted(re.findall(r'data-kind="(\w+)"', found.text))
    assert ["site"] == re.findall(r'data-kind="(\w+)"', shops.text)
    assert "secret-shop" not in shops.text
    assert 400 == empty.status_code and "q:" in empty.text


def test_bad_form_input_names_the_field(servers: Servers, world: World) -> None:
    """Every site form rejects bad input with a 400 naming the field."""
    owner = world.user("owner@example.com")
    world.site("forms.example", {owner: "owner"})
    with signed_in(servers, world, owner) as client:
        cases = {
            "domain": client.form("/sites", {"domain": "not a domain", "timezone": "UTC"}),
            "event_name": client.form("/sites/forms.example/goals", {"goal_type": "event", "event_name": ""}),
            "page_path": client.form("/sites/forms.example/goals", {"goal_type": "page", "page_path": "nope"}),
            "goal_type": client.form("/sites/forms.example/goals", {"goal_type": "other"}),
            "email": client.form("/sites/forms.example/invitations", {"email": "x", "role": "viewer"}),
            "role": client.form("/sites/forms.example/invitations", {"email": "a@b.example", "role": "god"}),
            "date": client.form("/sites/forms.example/annotations", {"date": "yesterday", "body": "x"}),
            "body": client.form("/sites/forms.example/annotations", {"date": "2026-01-01", "body": ""}),
        }
    for field, answer in cases.items():
        assert 400 == answer.status_code, (field, answer.status_code)
        assert f"{field}:" in answer.text, field




def test_cli_creates_an_api_key_that_works(servers: Servers, world: World) -> None:
    """`beacon apikey create` prints a key that the Sites API accepts; an unknown user exits 1."""
    world.user("ops@example.com")
    made = run_beacon(servers.environment, "apikey", "create", "--email", "ops@example.com", "--name", "ci",
                      "--scope", "sites:write")
    missing = run_beacon(servers.environment, "apikey", "create", "--email", "nobody@example.com", "--name", "x")
    assert 0 == made.returncode, made.stderr
    assert (1, "--email: no user") == (missing.returncode, missing.stderr.split(": ", 2)[-1][:16])
    answer = httpx.get(f"{servers.api}/api/v1/sites", headers={"Authorization": f"Bearer {made.stdout.strip()}"})
    assert (200, []) == (answer.status_code, answer.json()["sites"])


def test_ids_outside_bigint_are_not_found_not_500(servers: Servers, world: World) -> None:
    """A huge id in a URL is a 404 like any missing object, never a database error."""
    owner = world.user("owner@example.com")
    world.site("ids.example", {owner: "owner"})
    huge = str(2**70)
    with signed_in(servers, world, owner) as client:
        answers = [client.form(f"/sites/ids.example/goals/{huge}/delete"),
                   client.form(f"/sites/ids.example/annotations/{huge}/delete"),
                   client.form(f"/sites/ids.example/members/{huge}/remove"),
                   client.form(f"/account/api-keys/{huge}/revoke")]
    key = api_key(servers, world, owner, ["sites:write"])
    answers.append(httpx.request("DELETE", f"{servers.api}/api/v1/sites/goals/{huge}", json={"site_id": "ids.example"},
                                 headers={"Authorization": f"Bearer {key}"}))
    assert [404] * 5 == [answer.status_code for answer in answers]
