"""Create, list, revoke and verify API keys."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ClientError, NotFound
from app.core.inputs import existing_id
from app.core.models import API_SCOPES, ApiKey, User
from app.core.tokens import token_hash

KEY_PREFIX = "bk_"
LAST_USED_RESOLUTION = 60
"""Seconds: ``last_used_at`` is written at most this often per key, not on every request."""


async def create_api_key(session: AsyncSession, user_id: int, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """A new key for the user; the plain key is returned here once and never stored."""
    name = name.strip()
    if not name:
        raise ClientError("name: give the key a name")
    if len(name) > 100:
        raise ClientError("name: at most 100 characters")
    unknown = sorted(set(scopes) - set(API_SCOPES))
    if unknown:
        raise ClientError(f"scopes: unknown scope {unknown[0]!r} (known: {', '.join(API_SCOPES)})")
    if not scopes:
        raise ClientError("scopes: choose at least one scope")
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(user_id=user_id, name=name, prefix=plain[:10], key_hash=token_hash(plain),
                 scopes=sorted(set(scopes)))
    session.add(key)
    await session.flush()
    return key, plain


async def list_api_keys(session: AsyncSession, user_id: int) -> list[ApiKey]:
    return list((await session.execute(
        select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id.desc()))).scalars())


async def revoke_api_key(session: AsyncSession, user_id: int, key_id: int) -> None:
    key_id = existing_id(key_id, "key")
    result = await session.execute(update(ApiKey).where(
        ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)
    ).values(revoked_at=datetime.now(UTC)))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound("key: no such active key")


async def verify_api_key(session: AsyncSession, plain: str) -> tuple[ApiKey, User] | None:
    """The active key and its user, or ``None``; records the time of use."""
    if not plain.startswith(KEY_PREFIX) or len(plain) > 200:
        return None
    row = (await session.execute(select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(
        ApiKey.key_hash == token_hash(plain), ApiKey.revoked_at.is_(None)))).first()
    if row is None:
        return None
    key, user = row
    now = datetime.now(UTC)
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > LAST_USED_RESOLUTION:
        key.last_used_at = now
    return key, user
