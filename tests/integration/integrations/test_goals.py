"""goal.completed: conversions coalesced into one delivery per endpoint per interval; site.first_event."""

from __future__ import annotations

import msgspec
from standardwebhooks import Webhook

from app.domain.webhooks.schemas import GoalCompletedEvent
from tests.support.integrations import Receiver, Site, Stack, body
from tests.support.polling import wait_until


def convert(stack: Stack, site: Site, *conversions: tuple[str, int]) -> None:
    """``count`` events named ``name`` for each pair (visitors 1000, 1001, ...) in one statement: the webhook job
    sees all of them or none, never a part (a job run between two inserts delivers the first alone)."""
    selects = " UNION ALL ".join(f"SELECT :s, now(), :name{i}, 1000 + n, 1000 + n, :d, '/signup' "
                                 f"FROM generate_series(0, :count{i} - 1) n" for i in range(len(conversions)))
    params = {f"{key}{i}": value for i, (name, count) in enumerate(conversions)
              for key, value in (("name", name), ("count", count))}
    stack.sql("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) " + selects,
              s=site.id, d=site.domain, **params)


def test_conversions_are_coalesced_into_one_delivery(stack: Stack, site: Site, receiver: Receiver) -> None:
    """Three conversions of one goal, one of another: one goal.completed listing both, then nothing more."""
    with stack.client() as client:
        webhook = client.post(f"/api/v1/sites/{site.domain}/webhooks", json={
            "url": receiver.url("/goals"), "event_types": ["goal.completed", "site.first_event"]}).json()
    stack.sql("INSERT INTO goals (site_id, event_name, display_name) VALUES (:s, 'Signup', 'Signup'), "
              "(:s, 'Purchase', 'Purchase')", s=site.id)
    # The site's cursor starts when the first job sees its endpoint: convert after that.
    wait_until(lambda: stack.sql("SELECT 1 FROM webhook_site_cursors WHERE site_id = :s", s=site.id), 30, "cursor")
    convert(stack, site, ("Signup", 3), ("Purchase", 1))
    goals = wait_until(lambda: [r for r in receiver.on("/goals") if body(r)["type"] == "goal.completed"], 30,
                       "goal.completed")
    verified = Webhook(webhook["secret"]).verify(goals[0].body, goals[0].headers)
    assert [{"goal": "Signup", "count": 3}, {"goal": "Purchase", "count": 1}] == verified["data"]["conversions"]
    msgspec.json.decode(goals[0].body, type=GoalCompletedEvent, strict=True)  # the published schema
    wait_until(lambda: [r for r in receiver.on("/goals") if body(r)["type"] == "site.first_event"], 30,
               "site.first_event")
    # Three more coalescing runs (each moves the site's cursor on): no conversion is sent twice.
    cursors: set[object] = set()

    def three_more_runs() -> bool:
        cursors.add(stack.sql("SELECT goals_until FROM webhook_site_cursors WHERE site_id = :s", s=site.id)[0][0])
        return len(cursors) > 3

    wait_until(three_more_runs, 30, "three more coalescing runs")
    types = sorted(body(r)["type"] for r in receiver.on("/goals"))
    assert ["goal.completed", "site.first_event"] == types
