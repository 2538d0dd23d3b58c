"""Export jobs asked for directly (no worker runs here, so a job stays pending while the test looks at it)."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil

import pytest

from app.core.db import make_async_engine, sessionmaker_for
from app.core.errors import Conflict
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


def test_a_site_builds_at_most_three_exports_at_once(imports: Imports, site: Site) -> None:
    """Distinct custom ranges cannot pile up jobs either: the fourth unfinished one is refused (409) until one ends."""
    async def ask(date_range: str) -> int:
        engine = make_async_engine(imports.settings.database)
        try:
            async with sessionmaker_for(engine).begin() as session:
                return (await exports.create_export(session, site.id, date_range, site.owner)).id
        finally:
            await engine.dispose()

    made = [asyncio.run(ask(f"2024-0{month}-01,2024-0{month}-28")) for month in (1, 2, 3)]
    with pytest.raises(Conflict, match="3 exports of this site are being built already") as refused:
        asyncio.run(ask("2024-04-01,2024-04-28"))
    assert 409 == refused.value.status_code
    imports.sql("UPDATE site_exports SET status = 'ready' WHERE id = :id", id=made[0])
    assert asyncio.run(ask("2024-04-01,2024-04-28")) not in made


def test_an_export_that_would_fill_the_disk_fails_and_leaves_no_file(imports: Imports, site: Site) -> None:
    """BEACON_IMPORT_MIN_FREE_DISK stays free for exports too: the export fails saying so, nothing is written."""
    async def ask() -> int:
        engine = make_async_engine(imports.settings.database)
        try:
            async with sessionmaker_for(engine).begin() as session:
                return (await exports.create_export(session, site.id, "all", site.owner)).id
        finally:
            await engine.dispose()

    export_id = asyncio.run(ask())
    directory = exports.exports_dir(imports.settings.paths.state_dir)
    reserve = shutil.disk_usage(directory).free + (1 << 30)
    settings = dataclasses.replace(imports.settings,
                                   imports=dataclasses.replace(imports.settings.imports, min_free_disk=reserve))
    assert "failed" == exports.build(imports.engine, settings, export_id)
    assert [("failed", exports.SHORT_OF_DISK, None)] == imports.sql(
        "SELECT status, error, file_path FROM site_exports WHERE id = :id", id=export_id)
    assert [] == list(directory.glob(f"export-{export_id}-*"))

