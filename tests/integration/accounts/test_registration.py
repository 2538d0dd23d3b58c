"""Registration modes (open, invite, closed) against the real database."""

from __future__ import annotations

import pytest

from app.core.errors import Forbidden
from app.core.resources import Resources
from app.domain.accounts.services import register_user

PW = "long enough password"


@pytest.mark.parametrize("mode", ["open", "invite", "closed"])
async def test_first_account_may_always_register(resources: Resources, db: None, mode: str) -> None:
    """Whatever the mode, an instance without accounts accepts the first one, as admin."""
    async with resources.sessions.begin() as session:
        user = await register_user(session, "first@example.com", PW, PW, registration=mode, invited=False)
    assert user.is_admin


@pytest.mark.parametrize(("mode", "invited", "allowed"), [
    pytest.param("open", False, True, id="open"),
    pytest.param("invite", True, True, id="invite-with-invitation"),
    pytest.param("invite", False, False, id="invite-without"),
    pytest.param("closed", True, False, id="closed-even-invited"),
])
async def test_later_accounts_follow_the_mode(resources: Resources, db: None, mode: str, invited: bool,
                                              allowed: bool) -> None:
    """After the first account, the mode decides; new accounts are never admins."""
    async with resources.sessions.begin() as session:
        await register_user(session, "first@example.com", PW, PW, registration="open", invited=False)
    try:
        async with resources.sessions.begin() as session:
            user = await register_user(session, "next@example.com", PW, PW, registration=mode, invited=invited)
        assert allowed and not user.is_admin
    except Forbidden as exc:
        assert not allowed, exc.detail
