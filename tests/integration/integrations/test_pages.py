"""The site's webhooks page: add (the secret shown once), test, disable, delete; who may see it."""

from __future__ import annotations

import html
import json
import re
import secrets
from datetime import UTC, datetime

import httpx
import pytest
import redis

from app.core.sessions import SESSION_COOKIE, new_session
from services.integrations import alerts, reports
from tests.support.integrations import Receiver, Site, Stack
from tests.support.polling import wait_until


def browser(stack: Stack, user_id: int | None) -> httpx.Client:
    client = httpx.Client(base_url=stack.api, timeout=15, headers={"Accept": "text/html"})
    if user_id is not None:
        session_id = secrets.token_hex(32)
        epoch = stack.sql("SELECT session_epoch FROM users WHERE id = :u", u=user_id)[0][0]
        with redis.Redis.from_url(stack.settings.redis.url) as store:
            store.set(f"{stack.settings.redis.key_prefix}sessions:{session_id}",
                      json.dumps(new_session(user_id, epoch)), ex=600)
        client.cookies.set(SESSION_COOKIE, session_id)
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
        wait_until(lambda: receiver.on("/ui"), 30, "the test message")
        wait_until(lambda: "succeeded" in client.get(f"/sites/{site.domain}/webhooks").text, 30, "the log")
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


def field_error(page: httpx.Response, field_id: str) -> str:
    """The text of the error shown next to a field ("" when the field has none)."""
    found = re.search(rf'<p class="field-error" id="{field_id}-error"( hidden)?>([^<]*)</p>', page.text)
    assert found is not None, f"no error slot for {field_id}"
    return "" if found.group(1) else html.unescape(found.group(2))


def test_add_an_alert_rule_see_it_fire_and_delete_it(stack: Stack, site: Site) -> None:
    """Refused forms come back with the error next to the field and nothing stored; a valid one is listed,
    after it fires its history page shows the value, paused it does not fire, and it can be deleted."""


    with browser(stack, site.owner) as client:
        page = client.get(f"/sites/{site.domain}/alerts")
        assert (200, True) == (page.status_code, "No alert rules yet." in page.text)
        token = csrf(page)
        base = {"kind": "spike", "threshold": "2", "cooldown": "60", "_csrf_token": token}
        for fields, field_id, message in (
            ({"recipients": "ops@hooks.example, nope"}, "spike-recipients", "'nope' is not an email address"),
            ({"recipients": ""}, "spike-recipients", "Give at least one recipient or webhook endpoint"),
            ({"recipients": "ops@hooks.example", "threshold": "0"}, "spike-threshold", "a whole number of at least 1"),
            ({"recipients": "ops@hooks.example", "threshold": "two"}, "spike-threshold", "must be a whole number"),
            ({"recipients": "ops@hooks.example", "cooldown": "0"}, "spike-cooldown", "Between 1 minute and 30 days"),
        ):
            refused = client.post(f"/sites/{site.domain}/alerts", data={**base, **fields})
            assert (400, True) == (refused.status_code, message in field_error(refused, field_id)), fields
            assert "" == field_error(refused, "drop-threshold")  # only the form that was sent shows it
        assert [] == stack.sql("SELECT id FROM alert_rules")

        added = client.post(f"/sites/{site.domain}/alerts", data={**base, "recipients": "ops@hooks.example"})
        assert (303, f"/sites/{site.domain}/alerts") == (added.status_code, added.headers["location"])
        rule_id, cooldown, params = stack.sql("SELECT id, cooldown, params FROM alert_rules")[0]
        assert (3600, {"threshold": 2}) == (cooldown, params)
        listed = client.get(f"/sites/{site.domain}/alerts").text
        assert ("Current visitors ≥ 2" in listed, "1 h" in listed) == (True, True)

        for n in range(3):
            stack.sql("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
                      "VALUES (:s, now(), 'pageview', :v, :v, :d, '/')", s=site.id, v=900 + n, d=site.domain)
        assert 1 == alerts.evaluate(stack.engine, stack.settings, datetime.now(UTC))
        history = client.get(f"/sites/{site.domain}/alerts/{rule_id}")
        assert 200 == history.status_code
        assert "current visitors: 3" in history.text

        paused = client.post(f"/sites/{site.domain}/alerts/{rule_id}/pause", data={"_csrf_token": token})
        enabled = [tuple(r) for r in stack.sql("SELECT enabled FROM alert_rules")]
        assert (303, [(False,)]) == (paused.status_code, enabled)
        assert "(paused)" in client.get(f"/sites/{site.domain}/alerts").text
        stack.sql("UPDATE alert_rules SET last_fired_at = NULL")  # out of its cool-down, yet paused
        assert 0 == alerts.evaluate(stack.engine, stack.settings, datetime.now(UTC))
        client.post(f"/sites/{site.domain}/alerts/{rule_id}/resume", data={"_csrf_token": token})
        assert [(True,)] == [tuple(r) for r in stack.sql("SELECT enabled FROM alert_rules")]

        deleted = client.post(f"/sites/{site.domain}/alerts/{rule_id}/delete", data={"_csrf_token": token})
        assert 303 == deleted.status_code
        assert [] == stack.sql("SELECT id FROM alert_rules")
        assert 404 == client.get(f"/sites/{site.domain}/alerts/{rule_id}").status_code


def test_rules_of_kinds_the_page_cannot_make_are_listed(stack: Stack, site: Site) -> None:
    """A rule of another kind (the compute service's anomaly rules) is shown with its parameters."""
    stack.sql("INSERT INTO alert_rules (site_id, kind, params, recipients) VALUES (:s, 'anomaly', "
              "CAST(:p AS jsonb), ARRAY['ops@hooks.example'])", s=site.id, p='{"score": 0.99}')
    with browser(stack, site.owner) as client:
        page = client.get(f"/sites/{site.domain}/alerts")
    assert (200, True, True) == (page.status_code, "Anomaly" in page.text, "score = 0.99" in page.text)


@pytest.mark.parametrize(("who", "status"), [
    pytest.param("anonymous", 302, id="anonymous-to-sign-in"),
    pytest.param("other", 404, id="another-sites-owner"),
    pytest.param("viewer", 403, id="viewer"),
    pytest.param("admin", 200, id="admin"),
    pytest.param("owner", 200, id="owner"),
])
def test_who_may_open_and_change_the_alerts_page(stack: Stack, site: Site, who: str, status: int) -> None:
    """Owners and admins read and write; a viewer is refused both, another site's owner learns nothing."""
    user_id: int | None = site.owner if who == "owner" else None
    if who in ("other", "viewer", "admin"):
        user_id = stack.sql("INSERT INTO users (email, password_hash) VALUES (:e, 'x') RETURNING id",
                            e=f"{who}@hooks.example")[0][0]
        member_of = site.id
        if who == "other":
            member_of = stack.sql("INSERT INTO sites (domain) VALUES ('other.example') RETURNING id")[0][0]
        stack.sql("INSERT INTO memberships (site_id, user_id, role) VALUES (:s, :u, :r)", s=member_of, u=user_id,
                  r="owner" if who == "other" else who)
    rule = stack.sql("INSERT INTO alert_rules (site_id, kind, params, recipients) VALUES (:s, 'spike', "
                     "'{\"threshold\": 5}', ARRAY['ops@hooks.example']) RETURNING id", s=site.id)[0][0]
    with browser(stack, user_id) as client:
        assert status == client.get(f"/sites/{site.domain}/alerts", follow_redirects=False).status_code
        assert status == client.get(f"/sites/{site.domain}/alerts/{rule}", follow_redirects=False).status_code
        if who in ("viewer", "admin"):  # the settings link the alerts page only to those who may open it
            linked = f'href="/sites/{site.domain}/alerts"' in client.get(f"/sites/{site.domain}/settings").text
            assert (who == "admin") == linked
        if user_id is None:
            return
        # A form token of a page every signed-in user may open.
        token = csrf(client.get("/account"))
        added = client.post(f"/sites/{site.domain}/alerts", data={
            "kind": "spike", "threshold": "1", "cooldown": "60", "recipients": "x@hooks.example",
            "_csrf_token": token}, follow_redirects=False)
        paused = client.post(f"/sites/{site.domain}/alerts/{rule}/pause", data={"_csrf_token": token},
                             follow_redirects=False)
        deleted = client.post(f"/sites/{site.domain}/alerts/{rule}/delete", data={"_csrf_token": token},
                              follow_redirects=False)
    expected = (303, 303, 303, 2 - 1) if status == 200 else (status, status, status, 1)
    assert expected == (added.status_code, paused.status_code, deleted.status_code,
                        len(stack.sql("SELECT id FROM alert_rules")))


def test_alert_forms_need_the_form_token(stack: Stack, site: Site) -> None:
    """A cross-site POST (no CSRF token) is refused and stores nothing."""
    with browser(stack, site.owner) as client:
        refused = client.post(f"/sites/{site.domain}/alerts", data={
            "kind": "spike", "threshold": "1", "cooldown": "60", "recipients": "x@hooks.example"})
    assert (403, []) == (refused.status_code, stack.sql("SELECT id FROM alert_rules"))


def test_an_endpoint_without_events_is_refused_next_to_the_field(stack: Stack, site: Site, receiver: Receiver) -> None:
    """No event type ticked: a 400 with the message under the events, not a server error; nothing stored."""
    with browser(stack, site.owner) as client:
        page = client.get(f"/sites/{site.domain}/webhooks")
        refused = client.post(f"/sites/{site.domain}/webhooks", data={"url": receiver.url("/none"),
                                                                       "_csrf_token": csrf(page)})
    assert (400, True) == (refused.status_code, bool(field_error(refused, "event_types")))
    assert [] == stack.sql("SELECT id FROM webhook_endpoints")
