"""Export jobs asked for directly (no worker runs here, so a job stays pending while the test looks at it)."""

from __future__ import annotations

import asyncio

from app.core.db import make_async_engine, sessionmaker_for
from services.integrations import exports
from tests.support.imports import Imports, Site


def test_asking_again_for_an_export_being_built_returns_it(imports: Imports, site: Site) -> None:
    """Export clicked again (or scripted) while its job has not finished: the same job, not one more full export;
    another range, or once the first is done, is a new one."""
    async def ask(*ranges: str) -> list[int]:
        engine = make_async_engine(imports.settings.database)
        try:
            made = []
            for date_range in ranges:
                async with sessionmaker_for(engine).begin() as session:
                    made.append((await exports.create_export(session, site.id, date_range, site.owner)).id)
            return made
        finally:
            await engine.dispose()

    first, again, other = asyncio.run(ask("all", "all", "30d"))
    assert (first, first) == (again, first) != other
    imports.sql("UPDATE site_exports SET status = 'failed' WHERE id = :id", id=first)
    assert [first] != asyncio.run(ask("all"))
    assert 3 == imports.sql("SELECT count(*) FROM site_exports WHERE site_id = :s", s=site.id)[0][0]
