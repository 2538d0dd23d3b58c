"""Forgot password in real Chromium through Nginx: the link on the sign-in page, the email the worker hands to the
SMTP server, the new password, and the other browser signed out."""

from __future__ import annotations

import email
import email.policy
import re
from typing import Any

from tests.support.browser import PHONE, Visit, axe_violations, screenshot, unexpected
from tests.support.polling import wait_until
from tests.support.stack import Stack

USER = "forgetful@e2e.test"
OLD, NEW = "the old passphrase", "the new passphrase"


def _reset_link(running: Stack, recipient: str = USER) -> str | None:
    for path in running.mail.messages():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == recipient:
            body = message.get_body(("plain",))
            found = re.search(r"https://\S+/password/reset\?token=\S+", body.get_content() if body else "")
            if found:
                return found.group(0)
    return None


def test_a_forgotten_password_is_reset_from_the_emailed_link(running: Stack, chromium: Any) -> None:
    """Sign-in page → "Forgot password?" → email → new password → signed out elsewhere → sign in with it."""
    created = running.beacon("createuser", "--email", USER, "--password-stdin", stdin=OLD + "\n")
    assert 0 == created.returncode, created.stderr
    elsewhere, visit = Visit(running, chromium), Visit(running, chromium)
    try:
        elsewhere.sign_in(USER, OLD)
        assert elsewhere.page.url.endswith("/")
        visit.go("/login")
        with visit.page.expect_navigation():
            visit.page.click("text=Forgot password?")
        visit.page.fill("#email", USER)
        with visit.page.expect_navigation():
            visit.page.click("main button[type=submit]")
        assert USER in visit.page.inner_text("#reset-sent")
        link = wait_until(lambda: _reset_link(running), 60, "the reset email at the SMTP server")
        assert link.startswith(running.base_url)
        visit.page.goto(link)
        visit.page.fill("#password", NEW)
        visit.page.fill("#password_again", NEW)
        with visit.page.expect_navigation():
            visit.page.click("main button[type=submit]")
        assert visit.page.url.endswith("/login")
        assert "Sign in with the new one" in visit.page.inner_text("main")
        elsewhere.go("/account")
        assert "/login" in elsewhere.page.url
        visit.sign_in(USER, NEW)
        assert not visit.page.url.endswith("/login")
        visit.page.goto(link)
        assert "already used" in visit.page.inner_text("main")
        assert [] == unexpected(visit.problems, 400)
    finally:
        visit.close()
        elsewhere.close()


def test_the_reset_pages_are_accessible(running: Stack, visit: Visit, axe_source: str) -> None:
    """The request form, its answer and the new-password form pass axe and our audit at desktop and phone width."""
    created = running.beacon("createuser", "--email", "audit@e2e.test", "--password-stdin", stdin=OLD + "\n")
    assert 0 == created.returncode, created.stderr
    problems: dict[str, list[str]] = {}
    for width in ("desktop", "phone"):
        if width == "phone":
            visit.page.set_viewport_size(PHONE)
        visit.go("/password/forgot")
        problems[f"{width} form"] = visit.audit() + axe_violations(visit.page, axe_source)
        visit.page.fill("#email", "audit@e2e.test")
        with visit.page.expect_navigation():
            visit.page.click("main button[type=submit]")
        problems[f"{width} answer"] = visit.audit() + axe_violations(visit.page, axe_source)
        screenshot(visit.page, f"password-forgot-{width}")
        visit.go("/password/reset?token=bad")
        problems[f"{width} bad link"] = visit.audit() + axe_violations(visit.page, axe_source)
    link = wait_until(lambda: _reset_link(running, "audit@e2e.test"), 60, "the reset email at the SMTP server")
    visit.page.goto(link)
    problems["phone new password"] = visit.audit() + axe_violations(visit.page, axe_source)
    screenshot(visit.page, "password-reset-375")
    assert {name: [] for name in problems} == problems
