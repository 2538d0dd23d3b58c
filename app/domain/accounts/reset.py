"""Password reset ("forgot password"): signed one-time links, their rate limits, and setting the new password.

A link carries a token signed with the instance's secret key (:func:`app.core.tokens.sign_token`, purpose
``password-reset``) holding the user's id and a fingerprint of the user's current password hash. It needs no
storage and dies in three ways: its expiry (``BEACON_PASSWORD_RESET_TTL``, one hour by default), its use (the
new password changes the hash, so the fingerprint no longer matches), or any other password change. As in
Plausible's ``password_reset_request``, asking for a link gives the same answer whether or not an account has
that address.
"""

from __future__ import annotations

import hashlib
import hmac

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ClientError
from app.core.models import User
from app.core.ratelimit import Verdict, count_in_window
from app.core.redis import Keys
from app.core.settings import AccountSettings
from app.core.tokens import sign_token, verify_token
from app.domain.accounts.services import check_password, hash_password
from app.domain.accounts.throttle import address_block

PURPOSE = "password-reset"
INVALID_LINK = "This password reset link is invalid, expired or already used. Ask for a new one."


def _fingerprint(password_hash: str) -> str:
    # The token is signed, not encrypted: it carries a digest of the hash, never the hash itself.
    return hashlib.sha256(f"{PURPOSE}|{password_hash}".encode()).hexdigest()[:32]


def reset_token(secret: str, user: User, ttl: int) -> str:
    """A token that lets whoever holds it set ``user``'s password once within ``ttl`` seconds."""
    return sign_token(secret, PURPOSE, {"u": user.id, "f": _fingerprint(user.password_hash)}, ttl)


async def user_for_token(session: AsyncSession, secret: str, token: str, *, lock: bool = False) -> User | None:
    """The user a genuine, unexpired and unused token names; ``None`` for any other token.

    ``lock`` holds the user's row until the transaction ends, so of two uses of one link at once the second
    sees the new password hash and is refused.
    """
    if not token or len(token) > 500:
        return None
    payload = verify_token(secret, PURPOSE, token)
    if payload is None or not isinstance(payload.get("u"), int) or not isinstance(payload.get("f"), str):
        return None
    user = await session.get(User, payload["u"], with_for_update=lock)
    if user is None or not hmac.compare_digest(_fingerprint(user.password_hash), payload["f"]):
        return None
    return user


async def set_password(user: User, new: str, new_again: str) -> None:
    """Give ``user`` the password ``new`` (sign-up's rules) and end every session they have.

    Raises:
        ClientError: the password breaks a rule, or the two entries differ; the message names the field.
    """
    check_password(new)
    if new != new_again:
        raise ClientError("password_again: the two passwords differ")
    user.password_hash = await hash_password(new)
    user.session_epoch += 1


class PasswordResetThrottle:
    """Reset requests per e-mail address and per client address, each a fixed window in Redis."""

    def __init__(self, client: aioredis.Redis, keys: Keys, settings: AccountSettings) -> None:
        self._client = client
        self._prefix = keys.prefix
        self._settings = settings

    async def attempt(self, email: str, address: str) -> Verdict:
        """Count one request; not allowed once either the address or the e-mail address used its quota."""
        window = self._settings.password_reset_window
        by_address = await count_in_window(
            self._client, f"{self._prefix}pwreset:address:{address_block(address)}",
            self._settings.password_resets_per_ip, window)
        if not by_address.allowed:
            return by_address
        # Hashed so the key space does not spell out who asked.
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return await count_in_window(self._client, f"{self._prefix}pwreset:email:{digest}",
                                     self._settings.password_resets_per_email, window)
