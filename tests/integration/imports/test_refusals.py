"""Every bad input is refused with its file, line and column, and nothing of it is imported."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import shutil
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from app.core.errors import PayloadTooLarge
from services.integrations.imports import job, store
from services.integrations.imports.files import (
    DiskFull,
    ImportRefused,
    imports_dir,
    store_file,
    store_stream,
    store_upload,
)
from services.integrations.models import IMPORTED_TABLES
from tests.support.import_files import pages_csv, umami_csv, umami_row
from tests.support.imports import Imports, Site

YESTERDAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
VISITORS = "imported_visitors_20240101_20240131.csv"
GOOD_VISITORS = "date,visitors,pageviews,bounces,visits,visit_duration\n2024-01-01,1,2,0,1,10\n"


def zipped(files: dict[str, bytes | str], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return out.getvalue()


def visitors(*rows: str, header: str = "date,visitors,pageviews,bounces,visits,visit_duration") -> bytes:
    return zipped({VISITORS: "\n".join((header, *rows)) + "\n"})


def nothing_imported(imports: Imports) -> bool:
    counts = [imports.sql(f"SELECT count(*) FROM {table}")[0][0] for table in (*IMPORTED_TABLES, "site_import_events")]
    return not any(counts)


def attempt(imports: Imports, site: Site, tmp_path: Path, body: bytes, source: str = "plausible",
            name: str = "export.zip") -> str:
    """Store and import ``body``; the refusal's message, from the upload's check or from the job."""
    limits = imports.settings.imports
    path = tmp_path / name
    path.write_bytes(body)
    directory = imports_dir(imports.settings.paths.state_dir)
    stored = store_file(path, directory, store.upload_name(), limits.max_upload)
    try:
        import_id = store.create_import(imports.engine, site.id, source, stored, name, limits, site.owner)
    except ImportRefused as exc:
        assert not stored.path.exists()
        assert 0 == imports.sql("SELECT count(*) FROM site_imports")[0][0]
        return str(exc)
    assert "failed" == job.run_import(imports.engine, limits, import_id)
    status, error, upload = imports.sql("SELECT status, error, upload_path FROM site_imports WHERE id = :id",
                                        id=import_id)[0]
    assert ("failed", None) == (status, upload)
    assert not stored.path.exists()
    return str(error)


Case = Callable[[], bytes]
TOMORROW = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)).isoformat()
CASES = [
    pytest.param(lambda: visitors("2024-01-01,1,2,0,1,10", header="date,visitors,pageviews,bounces,visit_duration"),
                 f"{VISITORS}, line 1, column visits: missing column visits", id="missing-column"),
    pytest.param(lambda: visitors("2024-01-01,1,2,0,1,10,3",
                                  header="date,visitors,pageviews,bounces,visits,visit_duration,sessions"),
                 f"{VISITORS}, line 1, column sessions: unknown column 'sessions'", id="unknown-column"),
    pytest.param(lambda: zipped({VISITORS: GOOD_VISITORS.encode() + b"2024-01-02,1,2,0,1,\xff9\n"}),
                 f"{VISITORS}, line 3, column 20 (byte 20): the file is not UTF-8 text", id="not-utf8"),
    pytest.param(lambda: visitors("2024-01-01,1,2,0,1,10", "2024-02-30,1,2,0,1,10"),
                 f"{VISITORS}, line 3, column date: '2024-02-30' is not a date", id="bad-date"),
    pytest.param(lambda: visitors("2024-01-01,1,2,0,1,10", "2024-01-02,1,-2,0,1,10"),
                 f"{VISITORS}, line 3, column pageviews: -2 is negative", id="negative-count"),
    pytest.param(lambda: visitors("2024-01-01,1,2,0,1,10", "2024-01-02,1,2.5,0,1,10"),
                 f"{VISITORS}, line 3, column pageviews: '2.5' is not a whole number", id="not-integer"),
    pytest.param(lambda: visitors("2024-01-01,1,2,0,1,10", f"{TOMORROW},1,2,0,1,10"),
                 f"{VISITORS}, line 3, column date: {TOMORROW} is in the future", id="future-date"),
    pytest.param(lambda: visitors("2024-01-01,1,2,0,1"),
                 f"{VISITORS}, line 2: 5 fields where the header has 6", id="short-row"),
    pytest.param(lambda: zipped({"data.csv": GOOD_VISITORS}),
                 "data.csv: not a file of Plausible's CSV export", id="unknown-file"),
    pytest.param(lambda: zipped({f"{n:03}_{VISITORS}": GOOD_VISITORS for n in range(65)}),
                 "export.zip: the zip has 65 entries, more than the maximum of 64", id="too-many-entries"),
    pytest.param(lambda: zipped({VISITORS: GOOD_VISITORS + "0" * (8 << 20)}),
                 f"{VISITORS}: the entry expands", id="zip-bomb"),
    pytest.param(lambda: b"PK\x05\x06" + b"\0" * 18, "export.zip: the zip archive is damaged or empty",
                 id="empty-zip"),
    pytest.param(lambda: b"", "the file is empty", id="empty-file"),
    pytest.param(lambda: zipped({VISITORS: GOOD_VISITORS + "2024-01-02," + "1" * (2 << 20) + ",2,0,1,10\n"},
                                zipfile.ZIP_STORED),
                 f"{VISITORS}, line 3: the line is longer than 1048576 bytes", id="endless-line"),
    pytest.param(lambda: b"date" + b"x" * (3 << 20), "export.zip, line 1: the line is longer than 1048576 bytes",
                 id="endless-header"),
    pytest.param(lambda: with_method(visitors("2024-01-01,1,2,0,1,10"), 9),
                 f"{VISITORS}: the entry is compressed with zip method 9, which cannot be read", id="deflate64"),
    pytest.param(lambda: damaged(visitors("2024-01-01,1,2,0,1,10"), 0),
                 f"{VISITORS}: the zip entry is damaged (Error -3 while decompressing data", id="corrupt-deflate"),
    pytest.param(lambda: damaged(zipped({VISITORS: "".join([GOOD_VISITORS, *(
                     f"{dt.date(2023, 1, 1) + dt.timedelta(days=day)},1,2,0,1,10\n" for day in range(300))])},
                                        zipfile.ZIP_STORED), -3),
                 f"{VISITORS}: the zip entry is damaged (Bad CRC-32", id="bad-crc"),
]


def with_method(archive: bytes, method: int) -> bytes:
    """``archive`` (one entry) with its compression method rewritten, as a deflate64 or zstd archiver writes it."""
    data = bytearray(archive)
    data[8:10] = method.to_bytes(2, "little")
    central = data.find(b"PK\x01\x02")
    data[central + 10:central + 12] = method.to_bytes(2, "little")
    return bytes(data)


def damaged(archive: bytes, at: int) -> bytes:
    """``archive`` (one entry) with a byte of its entry's data changed: ``at`` from the data's start, or when
    negative from its end (a digit of the last row, which the CRC alone catches, once it is read)."""
    data = bytearray(archive)
    start = 30 + int.from_bytes(data[26:28], "little") + int.from_bytes(data[28:30], "little")
    end = data.find(b"PK\x01\x02")
    index = start + at if at >= 0 else end + at
    data[index] = (data[index] ^ 0xFF) if at >= 0 else ord("9") if data[index] != ord("9") else ord("8")
    return bytes(data)


@pytest.mark.parametrize(("body", "message"), CASES)
def test_plausible_refusals(imports: Imports, site: Site, tmp_path: Path, body: Case, message: str) -> None:
    """The message names file, line and column; no row of it is stored."""
    try:
        refusal = attempt(imports, site, tmp_path, body())
    except ImportRefused as exc:  # refused while storing (an empty file)
        refusal = str(exc)
    assert message in refusal
    assert nothing_imported(imports)


UMAMI_CASES = [
    pytest.param([umami_row("s1", "v1", "/", "2024-03-15 10:00:00", event_type=7)],
                 "website_event.csv, line 2, column event_type: '7' is not an Umami event type", id="event-type"),
    pytest.param([umami_row("s1", "v1", "/", "2024-03-15 10:00:00"), umami_row("s1", "v1", "/", "15/03/2024")],
                 "website_event.csv, line 3, column created_at: '15/03/2024' is not a date and time",
                 id="bad-time"),
    pytest.param([umami_row("s1", "v1", "/", f"{TOMORROW} 10:00:00")],
                 f"website_event.csv, line 2, column created_at: {TOMORROW} 10:00:00 is in the future",
                 id="future"),
]


@pytest.mark.parametrize(("rows", "message"), UMAMI_CASES)
def test_umami_refusals(imports: Imports, site: Site, tmp_path: Path, rows: list[list[str]], message: str) -> None:
    """Umami rows that are not Umami's are refused by line and column."""
    refusal = attempt(imports, site, tmp_path, umami_csv(rows).encode(), "umami", "website_event.csv")

    assert message in refusal
    assert nothing_imported(imports)


def test_a_plausible_file_is_not_umami(imports: Imports, site: Site, tmp_path: Path) -> None:
    """The header tells a Plausible export given as Umami's."""
    refusal = attempt(imports, site, tmp_path, GOOD_VISITORS.encode(), "umami", "website_event.csv")

    assert "website_event.csv, line 1, column date: unknown column 'date'" in refusal


def test_a_bad_row_after_committed_batches_removes_them(imports: Imports, site: Site, tmp_path: Path) -> None:
    """Line 1202 is bad: the 24 batches already written are deleted with the refusal."""
    body, _ = pages_csv(1200, YESTERDAY - dt.timedelta(days=40))
    body += f"{YESTERDAY},example.com,/x,1,1,-5,0,0\n"
    name = "imported_pages_20240101_20240131.csv"

    refusal = attempt(imports, site, tmp_path, zipped({name: body}))

    assert f"{name}, line 1202, column pageviews: -5 is negative" in refusal
    assert nothing_imported(imports)


def test_an_upload_over_the_maximum_is_refused(imports: Imports, tmp_path: Path) -> None:
    """BEACON_IMPORT_MAX_UPLOAD bounds the upload; the partial file is removed."""
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 1000

    with pytest.raises(PayloadTooLarge, match="larger than the maximum of 4096 bytes"):
        asyncio.run(store_upload(chunks(), tmp_path, "upload", 4096))
    assert not (tmp_path / "upload").exists()
    big = tmp_path / "big.zip"
    big.write_bytes(b"x" * 5000)
    with pytest.raises(PayloadTooLarge, match=r"big\.zip: the file is larger"):
        store_file(big, tmp_path, "copy", 4096)


@pytest.mark.parametrize("save", [
    pytest.param(lambda directory, reserve: asyncio.run(store_upload(_chunks(), directory, "upload", 1 << 20,
                                                                     reserve)), id="upload"),
    pytest.param(lambda directory, reserve: store_stream(io.BytesIO(b"x" * 5000), directory, "upload", 1 << 20,
                                                         reserve), id="cli-stdin"),
])
def test_an_upload_that_would_fill_the_disk_is_stopped(tmp_path: Path,
                                                       save: Callable[[Path, int], object]) -> None:
    """BEACON_IMPORT_MIN_FREE_DISK stays free: past it the upload stops with 507 and its partial file is removed;
    below it the same upload is stored."""
    directory = tmp_path / "imports"
    directory.mkdir()
    free = shutil.disk_usage(directory).free
    with pytest.raises(DiskFull, match="short of disk space") as full:
        save(directory, free + (1 << 30))
    assert 507 == full.value.status_code
    assert [] == list(directory.iterdir())
    save(directory, 1 << 20)
    assert [5000] == [path.stat().st_size for path in directory.iterdir()]


async def _chunks() -> AsyncIterator[bytes]:
    for _ in range(5):
        yield b"x" * 1000
