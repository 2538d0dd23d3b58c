"""The browser pages in Debian's Chromium through Nginx: registration, sign-in, sites, setup, settings, API keys,
admin, search and error pages; forms failing in the browser and on the server; accessibility and phone width.

Every page is watched for console errors, page errors and failed requests (``watch()``), and screenshots of
the main pages are kept under tests/artifacts/screenshots (desktop, and ``-375`` for a phone's width).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support.browser import DESKTOP, PHONE, Visit, axe_violations, screenshot, send_pageview, unexpected
from tests.support.stack import SITE, Stack


def test_register_sign_in_add_a_site_and_see_its_first_event(visit: Visit) -> None:
    """Open registration, sign out and in, add a site: the setup page flips to "arrived" when an event comes."""
    page = visit.page
    visit.go("/register")
    screenshot(page, "register")
    page.fill("#email", "owner@pages.test")
    page.fill("#password", "a long enough password")
    page.fill("#password_again", "a long enough password")
    with page.expect_navigation():
        page.click("main button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("Welcome")
    with page.expect_navigation():
        page.click(".signout button")
    assert page.url.endswith("/login")
    expect(page.locator(".flash")).to_contain_text("signed out")
    screenshot(page, "login")
    visit.sign_in("owner@pages.test", "a long enough password")
    expect(page.locator("h2", has_text="No sites yet")).to_be_visible()

    page.click("text=Add your first site")
    page.fill("#domain", "https://www.Pages.example/")
    page.fill("#timezone", "Europe/Berlin")
    screenshot(page, "site-new")
    with page.expect_navigation():
        page.click("main button[type=submit]")
    assert page.url.endswith("/sites/pages.example/setup")
    expect(page.locator("#tracker-snippet")).to_contain_text('data-domain="pages.example"')
    expect(page.locator("#first-event-text")).to_contain_text("Waiting")
    expect(page.locator("#check-again")).to_be_visible()
    screenshot(page, "site-setup-waiting")

    send_pageview(visit.stack, "pages.example")
    expect(page.locator("#first-event-text")).to_contain_text("has arrived", timeout=20_000)
    expect(page.locator("#to-dashboard")).to_be_visible()
    screenshot(page, "site-setup-arrived")

    visit.go("/")
    card = page.locator(".site-card", has_text="pages.example")
    expect(card.locator("svg.sparkline")).to_be_visible()
    expect(card.locator("[data-today]")).to_have_attribute("data-today", "1")
    screenshot(page, "sites")

    # The danger zone: deleting needs the domain typed; the site and its events are gone afterwards.
    visit.go("/sites/pages.example/settings#danger")
    page.click("text=Delete this site…")
    screenshot(page, "site-delete")
    page.fill("#confirm", "pages.example")
    with page.expect_navigation():
        page.click("text=Delete site and data")
    expect(page.locator(".flash")).to_contain_text("pages.example and its data are deleted")
    expect(page.locator(".site-card")).to_have_count(0)
    assert [] == unexpected(visit.problems)


def test_first_event_status_without_javascript(running: Stack, chromium: Any, admin_state: dict[str, Any]) -> None:
    """With JavaScript off, "Check again" reloads the page, which then says the event arrived."""
    context = chromium.new_context(ignore_https_errors=True, java_script_enabled=False, storage_state=admin_state)
    page = context.new_page()
    try:
        page.goto(running.base_url + "/sites/new")
        page.fill("#domain", "nojs.example")
        with page.expect_navigation():
            page.click("main button[type=submit]")
        assert "Waiting" in page.inner_text("#first-event-text")
        send_pageview(running, "nojs.example")
        with page.expect_navigation():
            page.click("#check-again")
        assert "has arrived" in page.inner_text("#first-event-text")
        page.goto(running.base_url + "/sites/nojs.example/delete")
        page.fill("#confirm", "nojs.example")
        with page.expect_navigation():
            page.click("main button[type=submit]")
        assert "nojs.example and its data are deleted" in page.inner_text(".flash")
    finally:
        context.close()


def test_invitation_link_registers_and_joins(running: Stack, chromium: Any, admin: Visit) -> None:
    """An admin invites by e-mail; the invitee opens the link signed out, registers through it and joins."""
    admin.go(f"/sites/{SITE}/settings#members")
    admin.page.fill("#invite-email", "invitee@pages.test")
    with admin.page.expect_navigation():
        admin.page.click("text=Create invitation link")
    link = admin.page.inner_text("#invitation-url").strip()
    assert link.startswith(running.base_url + "/invitations/")

    invitee = Visit(running, chromium)
    try:
        page = invitee.page
        page.goto(link)
        assert "/login?next=" in page.url
        page.click("text=Create one with the invitation")
        page.fill("#email", "invitee@pages.test")
        page.fill("#password", "a long enough password")
        page.fill("#password_again", "a long enough password")
        with page.expect_navigation():
            page.click("main button[type=submit]")
        expect(page.locator("h1")).to_have_text(f"Join {SITE}")
        with page.expect_navigation():
            page.click("text=Accept invitation")
        assert page.url.endswith(f"/sites/{SITE}")
        expect(page.locator(".flash")).to_contain_text(f"You are now a member of {SITE}")
        invitee.go("/")
        expect(page.locator(".site-card", has_text=SITE).locator(".badge")).to_have_text("viewer")
        assert [] == unexpected(invitee.problems)
    finally:
        invitee.close()
    admin.go(f"/sites/{SITE}/settings#members")
    expect(admin.page.get_by_role("table", name="Members")).to_contain_text("invitee@pages.test")


def test_api_key_is_shown_once_works_and_is_revoked(admin: Visit) -> None:
    """A key created with a scope is shown once, works against the Sites API, and stops working once revoked."""
    page = admin.page
    admin.go("/account")
    page.fill("#key-name", "report script")
    page.check("input[name=scopes][value='sites:write']")
    with page.expect_navigation():
        page.click("text=Create key")
    key = page.inner_text("#new-api-key").strip()
    assert key.startswith("bk_")
    expect(page.locator("button.copy[data-copy=new-api-key]")).to_be_visible()
    screenshot(page, "account-new-key")
    with admin.stack.client(headers={"Authorization": f"Bearer {key}"}) as api:
        assert 200 == api.get("/api/v1/sites").status_code
        admin.go("/account")
        assert key not in page.content()
        row = page.locator("tr", has_text="report script")
        expect(row).to_contain_text("stats:read")
        expect(row).to_contain_text("sites:write")
        expect(row.locator("td").nth(4)).not_to_have_text("never")  # last used: just now
        with page.expect_navigation():
            row.locator("button", has_text="Revoke").click()
        expect(page.locator(".flash")).to_contain_text("revoked")
        expect(page.locator("tr", has_text="report script")).to_contain_text("revoked")
        assert 401 == api.get("/api/v1/sites").status_code
    screenshot(page, "account")
    assert [] == unexpected(admin.problems)


def test_a_form_fails_in_the_browser_and_on_the_server(admin: Visit) -> None:
    """A malformed domain is stopped by the browser with a message; a duplicate one by the server, next to
    the field, with the value kept."""
    page = admin.page
    admin.go("/sites/new")
    page.fill("#domain", "not a domain")
    page.click("main button[type=submit]")
    assert page.url.endswith("/sites/new")  # not sent
    message = page.eval_on_selector("#domain", "el => el.validationMessage")
    assert message
    expect(page.locator("#domain-error")).to_have_text(message)
    expect(page.locator("#domain")).to_have_attribute("aria-invalid", "true")

    page.fill("#domain", SITE)
    with page.expect_navigation() as navigation:
        page.click("main button[type=submit]")
    assert 409 == navigation.value.status
    expect(page.locator("#domain-error")).to_contain_text("already exists")
    expect(page.locator("#domain")).to_have_attribute("aria-invalid", "true")
    assert "domain-error" in (page.get_attribute("#domain", "aria-describedby") or "")
    expect(page.locator("#domain")).to_have_value(SITE)
    expect(page.locator(".error-summary")).to_be_focused()
    screenshot(page, "site-new-error")
    assert [] == unexpected(admin.problems, 409)


def test_site_settings_sections_work(admin: Visit) -> None:
    """Goals, exclusions, annotations and the share link from the settings page, each with a message."""
    page = admin.page
    admin.go(f"/sites/{SITE}/settings")
    page.fill("#event_name", "Signup")
    with page.expect_navigation():
        page.click("text=Add goal")
    expect(page.locator(".flash")).to_have_text("Goal added.")
    expect(page.get_by_role("table", name="Goals")).to_contain_text("Signup")
    page.fill("#exclusion-pattern", "203.0.113.7")
    with page.expect_navigation():
        page.click("text=Add exclusion")
    expect(page.get_by_role("table", name="Exclusions")).to_contain_text("203.0.113.7/32")
    page.check("input[name=kind][value=path]")
    page.fill("#exclusion-pattern", "no-slash")
    page.eval_on_selector("section:has(#exclusions) form.stack", "form => form.noValidate = true")
    with page.expect_navigation() as navigation:
        page.click("text=Add exclusion")
    assert 400 == navigation.value.status
    expect(page.locator("#exclusion-pattern-error")).to_contain_text("path starting with /")
    page.fill("#note-date", "2026-11-20")
    page.fill("#note-body", "Launched the pages")
    with page.expect_navigation():
        page.click("text=Add annotation")
    with page.expect_navigation():
        page.click("section:has(#share) button:has-text('Create link')")
    expect(page.locator("#share-url")).to_contain_text("/share/")
    screenshot(page, "site-settings")
    assert [] == unexpected(admin.problems, 400)


def test_admin_page_shows_health_and_realtime(admin: Visit) -> None:
    """The admin page lists every component's health and the realtime statistics."""
    page = admin.page
    admin.go("/admin")
    for component in ("database", "redis", "ingest", "analytics", "worker", "scheduler"):
        expect(page.locator(f"[data-component={component}]")).to_contain_text("OK")
    expect(page.locator("#rt-connections")).to_have_text(re.compile(r"^\d+$"))
    expect(page.locator(".stat", has_text="active API keys").locator(".number")).to_have_text(re.compile(r"^\d+$"))
    screenshot(page, "admin")
    assert [] == unexpected(admin.problems)


def test_monitoring_page_renders_every_section_accessibly(admin: Visit, axe_source: str) -> None:
    """The monitoring page shows every section with circusd's processes, PostgreSQL and Redis figures, and
    passes the same audits as the other pages at desktop and phone width."""
    page = admin.page
    admin.go("/admin")
    with page.expect_navigation():
        page.click("text=Monitoring")
    sections = page.locator("[data-section]").evaluate_all("nodes => nodes.map(n => n.dataset.section)")
    assert ["charts", "processes", "postgres", "redis", "queues", "realtime", "ingest", "rollups"] == sections
    for watcher in ("api", "ingest", "worker", "scheduler"):
        expect(page.locator(f"tr[data-watcher={watcher}]").first).to_be_visible()
    expect(page.locator("#pg-connections")).to_have_text(re.compile(r"^\d+$"))
    expect(page.locator("#redis-memory")).to_contain_text("iB")
    expect(page.locator("[data-chart]")).to_have_count(10)
    screenshot(page, "admin-monitoring")
    problems = {}
    for width in (DESKTOP, PHONE):
        page.set_viewport_size(width)
        admin.go("/admin/monitoring")
        problems[width["width"]] = admin.audit() + axe_violations(page, axe_source)
    page.set_viewport_size(DESKTOP)
    assert {DESKTOP["width"]: [], PHONE["width"]: []} == problems
    assert [] == unexpected(admin.problems)


def test_admin_page_is_forbidden_to_others(running: Stack, chromium: Any) -> None:
    """A signed-in user who is not an instance admin gets the Beacon 403 page."""
    other = Visit(running, chromium)
    try:
        other.go("/register")
        other.page.fill("#email", "plain@pages.test")
        other.page.fill("#password", "a long enough password")
        other.page.fill("#password_again", "a long enough password")
        with other.page.expect_navigation():
            other.page.click("main button[type=submit]")
        answer = other.go("/admin")
        assert 403 == answer.status
        assert "You cannot open this" in other.page.inner_text("h1")
    finally:
        other.close()


def test_search_results(admin: Visit) -> None:
    """The header's search box leads to the results page."""
    page = admin.page
    admin.go("/")
    page.fill("#q", "e2e")
    with page.expect_navigation():
        page.press("#q", "Enter")
    assert [SITE] == [text.strip() for text in page.locator(".results li[data-kind=site] a").all_inner_texts()]
    screenshot(page, "search")
    assert [] == unexpected(admin.problems)


@pytest.mark.parametrize(("path", "status", "heading"), [
    pytest.param("/sites/missing.example/settings", 404, "Page not found", id="missing-site"),
    pytest.param("/no/such/page", 404, "Page not found", id="unknown-url"),
    pytest.param("/logout", 405, "Not allowed here", id="wrong-method"),
])
def test_error_pages_are_beacon_pages(admin: Visit, path: str, status: int, heading: str) -> None:
    """Errors are pages in the layout with a way back, not tracebacks or JSON."""
    answer = admin.go(path)
    assert status == answer.status
    assert heading == admin.page.inner_text("h1")
    assert admin.page.locator("main a[href='/']").is_visible()
    assert admin.page.locator("nav[aria-label=Main]").is_visible()
    if path.startswith("/sites/missing"):
        screenshot(admin.page, "error-404")
    assert [] == unexpected(admin.problems, status)


def test_json_clients_keep_problem_json_and_anonymous_browsers_go_to_sign_in(running: Stack) -> None:
    """The same errors for a JSON client are problem+json; a signed-out page visit redirects to sign-in."""
    with running.client() as client:
        missing = client.get("/sites/missing.example/status", headers={"Accept": "application/json"})
        page = client.get("/account?tab=keys", headers={"Accept": "text/html"})
    assert (401, "application/problem+json") == (missing.status_code, missing.headers["content-type"])
    assert (302, "/login?next=%2Faccount%3Ftab%3Dkeys") == (page.status_code, page.headers["location"])


def test_pages_are_accessible(admin: Visit, axe_source: str) -> None:
    """No serious axe-core violation (WCAG 2.x A/AA), and labels, alt text, landmarks, unique ids and AA
    contrast by our own audit, on every main page at desktop and phone width; the skip link comes first."""
    problems = {}
    for path in ("/", "/sites/new", f"/sites/{SITE}/settings", f"/sites/{SITE}/setup", "/account", "/admin",
                 "/search?q=e2e", "/sites/missing.example/settings"):
        for width in (DESKTOP, PHONE):
            admin.page.set_viewport_size(width)
            admin.go(path)
            problems[f"{path} {width['width']}"] = admin.audit() + axe_violations(admin.page, axe_source)
    admin.page.set_viewport_size(DESKTOP)
    admin.go("/")
    admin.page.keyboard.press("Tab")
    first = admin.page.evaluate("document.activeElement.textContent")
    admin.page.keyboard.press("Enter")
    focused = admin.page.evaluate("document.activeElement.id")
    assert {path: [] for path in problems} == problems
    assert ("Skip to content", "main") == (first, focused)


def test_sign_in_and_register_are_accessible(visit: Visit, axe_source: str) -> None:
    """The pages a signed-out visitor sees pass the same audits."""
    problems = {}
    for path in ("/login", "/register"):
        visit.go(path)
        problems[path] = visit.audit() + axe_violations(visit.page, axe_source)
    assert {"/login": [], "/register": []} == problems


def test_phone_width(running: Stack, chromium: Any, admin_state: dict[str, Any]) -> None:
    """At 375 px nothing scrolls sideways, the menu folds behind a button that opens it, tables scroll."""
    phone = Visit(running, chromium, PHONE, storage_state=admin_state)
    try:
        page = phone.page
        widths = {}
        for name, path in (("sites", "/"), ("site-settings", f"/sites/{SITE}/settings"), ("account", "/account"),
                           ("admin", "/admin"), ("site-new", "/sites/new")):
            phone.go(path)
            widths[name] = page.evaluate("document.documentElement.scrollWidth")
            screenshot(page, f"{name}-375")
        assert {name: 375 for name in widths} == widths
        expect(page.locator("nav[aria-label=Main]")).to_be_hidden()
        page.click(".menu-toggle")
        expect(page.locator("nav[aria-label=Main]")).to_be_visible()
        expect(page.locator(".menu-toggle")).to_have_attribute("aria-expanded", "true")
        screenshot(page, "menu-open-375")
        phone.go("/login")
        assert [] == unexpected(phone.problems)
    finally:
        phone.close()


def test_no_console_errors_on_the_main_pages(admin: Visit) -> None:
    """Every main page loads without console errors, page errors or failed requests."""
    for path in ("/", "/sites/new", f"/sites/{SITE}/settings", f"/sites/{SITE}/setup", f"/sites/{SITE}/delete",
                 "/account", "/admin", "/search?q=goal"):
        answer = admin.go(path)
        assert 200 == answer.status, path
        assert re.search(r"\S", admin.page.inner_text("h1")), path
    assert [] == unexpected(admin.problems)
