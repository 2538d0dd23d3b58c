"""The integrations pages in Debian's Chromium through Nginx: alert rules (a form refused in the browser and on
the server, a rule that fires from live traffic, its history, the alert email at the SMTP server), webhooks and
email reports; each axe-clean at desktop and phone width, with screenshots under tests/artifacts/screenshots."""

from __future__ import annotations

import email
import email.policy

from playwright.sync_api import expect

from tests.support.browser import DESKTOP, PHONE, Visit, axe_violations, screenshot, send_pageview, unexpected
from tests.support.polling import wait_until
from tests.support.stack import SITE, Stack


def check_page(visit: Visit, axe_source: str, path: str, name: str) -> list[str]:
    """axe-core and our audit at desktop and phone width, no sideways scrolling at 375 px; screenshots of both."""
    problems = []
    for width in (DESKTOP, PHONE):
        visit.page.set_viewport_size(width)
        visit.go(path)
        problems += [f"{width['width']}: {item}" for item in visit.audit() + axe_violations(visit.page, axe_source)]
        if width is PHONE:
            scroll = visit.page.evaluate("document.documentElement.scrollWidth")
            if scroll != PHONE["width"]:
                problems.append(f"375: the page is {scroll} px wide")
        screenshot(visit.page, name if width is DESKTOP else f"{name}-375")
    visit.page.set_viewport_size(DESKTOP)
    return problems


def test_alert_rule_from_the_page_fires_and_shows_in_its_history(running: Stack, admin: Visit,
                                                                  axe_source: str) -> None:
    """A threshold of 0 is stopped by the browser, a rule without recipients by the server (next to the field);
    a valid spike rule fires from a pageview sent through Nginx within the scheduler's minute, its history page
    shows it and the alert email reaches the SMTP server."""
    page = admin.page
    assert [] == check_page(admin, axe_source, f"/sites/{SITE}/alerts", "site-alerts")
    admin.go(f"/sites/{SITE}/alerts")
    page.fill("#spike-threshold", "0")
    page.click("#form-spike button[type=submit]")
    assert page.url.endswith(f"/sites/{SITE}/alerts")  # not sent
    message = page.eval_on_selector("#spike-threshold", "el => el.validationMessage")
    assert message
    expect(page.locator("#spike-threshold-error")).to_have_text(message)
    expect(page.locator("#spike-threshold")).to_have_attribute("aria-invalid", "true")

    page.fill("#spike-threshold", "1")
    page.fill("#spike-cooldown", "1")
    with page.expect_navigation() as navigation:
        page.click("#form-spike button[type=submit]")
    assert 400 == navigation.value.status
    expect(page.locator("#spike-recipients-error")).to_contain_text("at least one recipient")
    expect(page.locator("#spike-recipients")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#spike-threshold")).to_have_value("1")
    expect(page.locator(".error-summary")).to_be_focused()
    screenshot(page, "site-alerts-error")

    page.fill("#spike-recipients", "ops@e2e.test")
    with page.expect_navigation():
        page.click("#form-spike button[type=submit]")
    expect(page.locator(".flash")).to_have_text("Traffic spike alert added.")
    rules = page.get_by_role("region", name="Alert rules")
    expect(rules).to_contain_text("Current visitors ≥ 1")
    expect(rules).to_contain_text("ops@e2e.test")

    send_pageview(running, SITE)
    history = page.locator("a", has_text="History").last.get_attribute("href")
    assert history is not None

    def fired() -> bool:
        admin.go(history)
        return page.locator("table").count() > 0

    wait_until(fired, 150, "the rule to fire (the scheduler evaluates every minute)")
    expect(page.get_by_role("region", name="Firings of this rule")).to_contain_text("current visitors:")

    def alert_mail() -> bool:
        return any("ops@e2e.test" == email.message_from_bytes(path.read_bytes(), policy=email.policy.default)["To"]
                   for path in running.mail.messages())

    wait_until(alert_mail, 60, "the alert email at the SMTP server")
    assert [] == check_page(admin, axe_source, history, "site-alert-history")

    # The rule would fire every minute for the rest of the session: delete it from the page.
    admin.go(f"/sites/{SITE}/alerts")
    with page.expect_navigation():
        page.click("main .actions button:has-text('Delete')")
    expect(page.locator(".flash")).to_have_text("Alert deleted with its history.")
    expect(page.locator("main")).to_contain_text("No alert rules yet.")
    assert [] == unexpected(admin.problems, 400)


def test_webhooks_and_reports_pages_are_accessible(running: Stack, admin: Visit, axe_source: str) -> None:
    """The webhooks page (with an endpoint's secret shown once) and the email reports page pass the audits."""
    page = admin.page
    admin.go(f"/sites/{SITE}/webhooks")
    page.fill("#url", "http://127.0.0.1:9/hook")
    page.check("input[name=event_types][value='traffic.spike']")
    with page.expect_navigation() as navigation:
        page.click("main form.stack button[type=submit]")
    assert 201 == navigation.value.status
    assert page.locator("#signing-secret").inner_text().startswith("whsec_")
    problems = [f"secret shown: {item}" for item in admin.audit() + axe_violations(page, axe_source)]
    screenshot(page, "site-webhooks-secret")
    problems += check_page(admin, axe_source, f"/sites/{SITE}/webhooks", "site-webhooks")
    assert 0 == page.locator("#signing-secret").count()
    problems += check_page(admin, axe_source, f"/sites/{SITE}/reports", "site-reports")
    assert [] == problems
    assert [] == unexpected(admin.problems)
