"""Dated notes on a site's timeline."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ClientError, NotFound
from app.core.inputs import existing_id
from app.core.models import Annotation

BODY_MAX = 2000


def parse_day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ClientError("date: expected a date such as 2026-11-26") from None


async def create_annotation(session: AsyncSession, site_id: int, day: str, body: str, user_id: int) -> Annotation:
    text = body.strip()
    if not text:
        raise ClientError("body: write the note")
    if len(text) > BODY_MAX:
        raise ClientError(f"body: at most {BODY_MAX} characters")
    note = Annotation(site_id=site_id, date=parse_day(day), body=text, created_by=user_id)
    session.add(note)
    await session.flush()
    return note


async def list_annotations(session: AsyncSession, site_id: int) -> list[Annotation]:
    return list((await session.execute(select(Annotation).where(Annotation.site_id == site_id)
                                       .order_by(Annotation.date.desc(), Annotation.id.desc()))).scalars())


async def delete_annotation(session: AsyncSession, site_id: int, annotation_id: int) -> None:
    annotation_id = existing_id(annotation_id, "annotation")
    result = await session.execute(delete(Annotation).where(Annotation.site_id == site_id,
                                                            Annotation.id == annotation_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound("annotation: no such annotation on this site")
