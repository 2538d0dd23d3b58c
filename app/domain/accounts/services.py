"""Users and passwords (argon2)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ClientError, Conflict, Forbidden, Unauthorized
from app.core.models import Invitation, Site, User
from app.core.tokens import token_hash

_hasher = PasswordHasher()
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 10
# Verifying against this keeps the time of a login for an unknown e-mail close to that of a known one.
_DUMMY_HASH = _hasher.hash("not a real password")


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise ClientError("email: not a valid e-mail address")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ClientError(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise ClientError("password: at most 1024 characters")


async def hash_password(password: str) -> str:
    """The argon2 hash of ``password``, computed in a thread (tens of milliseconds of CPU)."""
    return await asyncio.to_thread(_hasher.hash, password)


async def create_user(session: AsyncSession, email: str, password: str, *, is_admin: bool = False) -> User:
    email = normalize_email(email)
    check_password(password)
    # argon2 takes tens of milliseconds of CPU: in a thread, so the event loop keeps serving others meanwhile.
    user = User(email=email, password_hash=await asyncio.to_thread(_hasher.hash, password), is_admin=is_admin)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"email: a user with e-mail {email} already exists") from None
    return user


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email.strip().lower()))).scalar_one_or_none()


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    """The user whose e-mail and password these are, or ``None``.

    argon2 takes tens of milliseconds of CPU: it runs in a thread so the event loop keeps serving others.
    """
    user = await get_user_by_email(session, email)

    def verify() -> bool:
        try:
            return bool(_hasher.verify(user.password_hash if user else _DUMMY_HASH, password))
        except (VerificationError, InvalidHashError):
            return False

    if not await asyncio.to_thread(verify) or user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


REGISTRATION_LOCK = 0x6265_6163  # pg_advisory_xact_lock key: "beac"


async def register_user(session: AsyncSession, email: str, password: str, password_again: str, *,
                        registration: str, invited: bool) -> User:
    """Create an account from the registration form; the first account becomes the instance admin.

    Args:
        registration: ``open``, ``invite`` or ``closed`` (settings).
        invited: the form carries a valid invitation for this e-mail address.
    """
    email = normalize_email(email)
    check_password(password)
    if password != password_again:
        raise ClientError("password_again: the two passwords differ")
    # Serialise registrations so two concurrent first sign-ups cannot both become admin.
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REGISTRATION_LOCK})
    first = (await session.execute(select(func.count()).select_from(User))).scalar_one() == 0
    if not first:
        if registration == "closed":
            raise Forbidden("registration is closed on this instance; ask an administrator for an account")
        if registration == "invite" and not invited:
            raise Forbidden("registration needs an invitation link on this instance")
    return await create_user(session, email, password, is_admin=first)


async def change_password(session: AsyncSession, user_id: int, current: str, new: str, new_again: str) -> User:
    """Set a new password; every browser session of the user ends (the caller starts a new one for itself).

    Raises:
        ClientError: the current password is wrong, or the new one is too short or not repeated exactly.
    """
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        raise Unauthorized("sign in first")
    try:
        _hasher.verify(user.password_hash, current)
    except (VerificationError, InvalidHashError):
        raise ClientError("current_password: wrong password") from None
    check_password(new)
    if new != new_again:
        raise ClientError("new_password_again: the two passwords differ")
    user.password_hash = _hasher.hash(new)
    user.session_epoch += 1
    return user


async def end_sessions(session: AsyncSession, user_id: int) -> None:
    """Sign the user out of every browser session (it takes effect on each session's next request)."""
    await session.execute(update(User).where(User.id == user_id).values(session_epoch=User.session_epoch + 1))


async def pending_invitation(session: AsyncSession, token: str) -> tuple[Invitation, Site] | None:
    """The invitation ``token`` names and its site, while it is unused and unexpired; else ``None``."""
    if not token or len(token) > 200:
        return None
    row = (await session.execute(
        select(Invitation, Site).join(Site, Site.id == Invitation.site_id)
        .where(Invitation.token_hash == token_hash(token), Invitation.accepted_at.is_(None),
               Invitation.expires_at > datetime.now(UTC)))).first()
    return (row[0], row[1]) if row else None
