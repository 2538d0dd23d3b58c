"""The site's webhooks page: add (the secret shown once), test, disable, delete; who may see it."""

from __future__ import annotations

import json
import re
import secrets

import httpx
import pytest
import redis

from app.domain.accounts.session import new_session
from tests.integration.integrations.conftest import Receiver, Site, Stack, wait_for


def browser(stack: Stack, user_id: int | None) -> httpx.Client:
    client = httpx.Client(base_url=stack.api, timeout=15, headers={"Accept": "text/html"})
    if user_id is not None:
        session_id = secrets.token_hex(32)
        with redis.Redis.from_url(stack.settings.redis.url) as store:
            # A new user's session epoch is 0: nothing has signed them out everywhere yet.
            store.set(f"{stack.settings.redis.key_prefix}sessions:{session_id}",
                      json.dumps(new_session(user_id, 0)), ex=600)
        client.cookies.set("beacon_session", session_id)
    return client


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


def test_add_test_and_delete_an_endpoint_in_the_browser(stack: Stack, site: Site, receiver: Receiver) -> None:
    with browser(stack, site.owner) as client:
        page = client.get(f"/sites/{site.domain}/webhooks")
        assert 200 == page.status_code
        refused = client.post(f"/sites/{site.domain}/webhooks", data={
            "url": "ftp://files.example", "event_types": ["webhook.test"], "_csrf_token": csrf(page)})
        assert (400, True) == (refused.status_code, "Must start with https://" in refused.text)
        added = client.post(f"/sites/{site.domain}/webhooks", data={
            "url": receiver.url("/ui"), "format": "generic", "event_types": ["webhook.test", "goal.completed"],
            "_csrf_token": csrf(page)})
        assert 201 == added.status_code, added.text[:500]
        shown = re.search(r'id="signing-secret">(whsec_[^<]+)<', added.text)
        assert shown is not None
        hook = stack.sql("SELECT id, secret, event_types FROM webhook_endpoints")[0]
        assert (shown.group(1), ["goal.completed", "webhook.test"]) == (hook[1], hook[2])
        assert shown.group(1) not in client.get(f"/sites/{site.domain}/webhooks").text

        sent = client.post(f"/sites/{site.domain}/webhooks/{hook[0]}/test", data={"_csrf_token": csrf(page)})
        assert 303 == sent.status_code
        wait_for(lambda: receiver.on("/ui"), 30, "the test message")
        wait_for(lambda: "succeeded" in client.get(f"/sites/{site.domain}/webhooks").text, 30, "the log")
        disabled = client.post(f"/sites/{site.domain}/webhooks/{hook[0]}/disable", data={"_csrf_token": csrf(page)})
        assert (303, [(False,)]) == (disabled.status_code, [tuple(r) for r in stack.sql(
            "SELECT enabled FROM webhook_endpoints")])
        client.post(f"/sites/{site.domain}/webhooks/{hook[0]}/delete", data={"_csrf_token": csrf(page)})
        assert [] == stack.sql("SELECT id FROM webhook_endpoints")


@pytest.mark.parametrize(("who", "status"), [
    pytest.param("anonymous", 302, id="anonymous-to-sign-in"),
    pytest.param("other", 404, id="another-sites-owner"),
    pytest.param("viewer", 403, id="viewer"),
    pytest.param("admin", 200, id="admin"),
    pytest.param("owner", 200, id="owner"),
])
def test_who_may_open_the_page(stack: Stack, site: Site, who: str, status: int) -> None:
    user_id: int | None = site.owner if who == "owner" else None
    if who in ("other", "viewer", "admin"):
        user_id = stack.sql("INSERT INTO users (email, password_hash) VALUES (:e, 'x') RETURNING id",
                            e=f"{who}@hooks.example")[0][0]
        if who == "other":
            other = stack.sql("INSERT INTO sites (domain) VALUES ('other.example') RETURNING id")[0][0]
            stack.sql("INSERT INTO memberships (site_id, user_id, role) VALUES (:s, :u, 'owner')", s=other, u=user_id)
        else:
            stack.sql("INSERT INTO memberships (site_id, user_id, role) VALUES (:s, :u, :r)", s=site.id, u=user_id,
                      r=who)
    with browser(stack, user_id) as client:
        assert status == client.get(f"/sites/{site.domain}/webhooks", follow_redirects=False).status_code


def test_members_choose_their_reports(stack: Stack, site: Site) -> None:
    """Owners get the weekly report by default; a viewer who ticks monthly gets the monthly one on the 1st."""
    from datetime import UTC, datetime

    from services.integrations import reports

    viewer = stack.sql("INSERT INTO users (email, password_hash) VALUES ('viewer@hooks.example', 'x') "
                       "RETURNING id")[0][0]
    stack.sql("INSERT INTO memberships (site_id, user_id, role) VALUES (:s, :u, 'viewer')", s=site.id, u=viewer)
    with browser(stack, site.owner) as owner:
        assert 'name="weekly" checked' in owner.get(f"/sites/{site.domain}/reports").text
    with browser(stack, viewer) as client:
        page = client.get(f"/sites/{site.domain}/reports")
        assert (False, False) == ('name="weekly" checked' in page.text, 'name="monthly" checked' in page.text)
        saved = client.post(f"/sites/{site.domain}/reports", data={"monthly": "on", "_csrf_token": csrf(page)})
        assert 303 == saved.status_code
        assert 'name="monthly" checked' in client.get(f"/sites/{site.domain}/reports").text
    reports.send_reports(stack.engine, stack.settings, datetime(2026, 12, 1, 9, 5, tzinfo=UTC))
    assert [("viewer@hooks.example", "report.monthly")] == [tuple(r) for r in stack.sql(
        "SELECT recipient, kind FROM emails ORDER BY id")]
