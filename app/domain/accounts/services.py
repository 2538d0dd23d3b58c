"""Users and passwords (argon2)."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ClientError, Conflict
from app.core.models import User

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


async def create_user(session: AsyncSession, email: str, password: str, *, is_admin: bool = False) -> User:
    email = normalize_email(email)
    check_password(password)
    user = User(email=email, password_hash=_hasher.hash(password), is_admin=is_admin)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"email: a user with e-mail {email} already exists") from None
    return user


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email.strip().lower()))).scalar_one_or_none()


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    """The user whose e-mail and password these are, or ``None``."""
    user = await get_user_by_email(session, email)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user
