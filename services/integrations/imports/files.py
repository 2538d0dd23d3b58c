"""Uploads on disk and the streaming readers every importer uses.

A CSV is read line by line from a byte offset (the cursor), decoded strictly as UTF-8, never held whole in
memory; a zip is read entry by entry after its directory has been checked against the limits on entries,
sizes and compression ratio (a zip bomb is refused before a byte is inflated).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import lzma
import os
import shutil
import zipfile
import zlib
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from app.core.errors import AppError, ClientError, PayloadTooLarge
from app.core.settings import ImportSettings


class ImportRefused(ClientError):
    """The upload cannot be imported; ``file``, ``line`` (1-based, the header is line 1) and ``column`` (a
    column name, or a character position for an encoding error) say where, when known."""

    status_code = 422
    title = "Unprocessable import"

    def __init__(self, message: str, *, file: str = "", line: int | None = None, column: str | None = None) -> None:
        where = ", ".join(part for part in (file, f"line {line}" if line else "",
                                            f"column {column}" if column else "") if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.message, self.file, self.line, self.column = message, file, line, column

    def location(self) -> dict[str, str | int | None]:
        return {"file": self.file, "line": self.line, "column": self.column}


class DiskFull(AppError):
    """Storing the upload would leave less than ``BEACON_IMPORT_MIN_FREE_DISK`` free (507: try again later)."""

    status_code = 507
    title = "Insufficient storage"


def check_room(directory: Path, reserve: int) -> None:
    """Raise :class:`DiskFull` when ``directory``'s file system has fewer than ``reserve`` bytes free."""
    if reserve and shutil.disk_usage(directory).free < reserve:
        raise DiskFull("the server is short of disk space for uploads; try again later "
                       "(BEACON_IMPORT_MIN_FREE_DISK)")


@dataclass(frozen=True)
class Stored:
    path: Path
    size: int
    checksum: str
    """SHA-256, hex."""


def imports_dir(state_dir: Path) -> Path:
    path = state_dir / "imports"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


async def store_upload(chunks: AsyncIterable[bytes], directory: Path, name: str, limit: int,
                       reserve: int = 0) -> Stored:
    """Write an upload's chunks to ``directory/name`` as they arrive, hashing them.

    Raises:
        PayloadTooLarge: past ``limit`` bytes (the partial file is removed).
        DiskFull: fewer than ``reserve`` bytes would stay free on the disk (the partial file is removed).
    """
    path, digest, size = directory / name, hashlib.sha256(), 0
    try:
        with path.open("wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the file is larger than the maximum of {limit} bytes "
                                          "(BEACON_IMPORT_MAX_UPLOAD)")
                check_room(directory, reserve + len(chunk))
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise ImportRefused("the file is empty")
    return Stored(path, size, digest.hexdigest())


def store_file(source: Path, directory: Path, name: str, limit: int, reserve: int = 0) -> Stored:
    """Copy a local file (the CLI's argument) into the imports directory, hashing it, in 1 MiB chunks."""
    if not source.is_file():
        raise ImportRefused("no such file", file=str(source))
    if source.stat().st_size > limit:
        raise PayloadTooLarge(f"{source}: the file is larger than the maximum of {limit} bytes "
                              "(BEACON_IMPORT_MAX_UPLOAD)")
    with source.open("rb") as src:
        return _copy(src, directory / name, limit, "the file", source.name, reserve)


def store_stream(source: IO[bytes], directory: Path, name: str, limit: int, reserve: int = 0) -> Stored:
    """Copy a byte stream (the CLI's standard input) into the imports directory, hashing it."""
    return _copy(source, directory / name, limit, "the input", "", reserve)


def _copy(source: IO[bytes], path: Path, limit: int, what: str, file: str, reserve: int) -> Stored:
    """Write ``source`` to ``path`` in 1 MiB chunks with its SHA-256; nothing is left behind when it is over
    ``limit`` bytes (:class:`PayloadTooLarge`), would leave less than ``reserve`` bytes free on the disk
    (:class:`DiskFull`), is empty (:class:`ImportRefused`) or fails."""
    digest, size = hashlib.sha256(), 0
    try:
        with path.open("wb") as out:
            while chunk := source.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"{what} is larger than the maximum of {limit} bytes "
                                          "(BEACON_IMPORT_MAX_UPLOAD)")
                check_room(path.parent, reserve + len(chunk))
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise ImportRefused(f"{what} is empty", file=file)
    return Stored(path, size, digest.hexdigest())


@dataclass(frozen=True)
class Entry:
    """A CSV to read: a zip entry or the upload itself."""

    name: str
    size: int
    """Uncompressed bytes."""


def entries(path: Path, display: str, limits: ImportSettings) -> list[Entry]:
    """The CSV files of an upload, in name order; a zip's directory is checked against the limits first.

    Raises:
        ImportRefused: not a zip or a CSV, too many entries, an entry too large or compressed too well.
    """
    with path.open("rb") as head:
        magic = head.read(4)
    if magic != b"PK\x03\x04":
        if magic.startswith(b"PK"):
            raise ImportRefused("the zip archive is damaged or empty", file=display)
        return [Entry("", path.stat().st_size)]
    try:
        with zipfile.ZipFile(path) as archive:
            # Archivers' own entries (macOS's __MACOSX/ resource forks, dot files) are not the user's data.
            infos = [info for info in archive.infolist() if not info.is_dir() and not any(
                part.startswith(".") or part == "__MACOSX" for part in info.filename.split("/"))]
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportRefused(f"the zip archive is damaged ({exc})", file=display) from None
    if len(infos) > limits.max_entries:
        raise ImportRefused(f"the zip has {len(infos)} entries, more than the maximum of {limits.max_entries}",
                            file=display)
    found: list[Entry] = []
    for info in infos:
        if info.file_size > limits.max_entry_size:
            raise ImportRefused(f"the entry is {info.file_size} bytes uncompressed, more than the maximum of "
                                f"{limits.max_entry_size}", file=info.filename)
        if info.file_size > 1 << 20 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise ImportRefused(f"the entry expands {info.file_size // max(info.compress_size, 1)} times, more "
                                f"than the maximum ratio of {limits.max_ratio} (a zip bomb?)", file=info.filename)
        if info.flag_bits & 0x1:
            raise ImportRefused("the entry is encrypted", file=info.filename)
        if info.compress_type not in READABLE_METHODS:
            raise ImportRefused(f"the entry is compressed with zip method {info.compress_type}, which cannot be read "
                                "(use deflate, as zip tools do by default)", file=info.filename)
        found.append(Entry(info.filename, info.file_size))
    if not found:
        raise ImportRefused("the zip archive has no files", file=display)
    return sorted(found, key=lambda entry: entry.name)


READABLE_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
"""Zip compression methods Python's zipfile reads; others (deflate64, zstd, ...) raise NotImplementedError."""
DAMAGED_ENTRY = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError)
"""What reading a damaged zip entry raises: a bad CRC, a corrupt deflate, LZMA or bzip2 stream (OSError), a cut-off
stream. Refusals, not transient failures: a job retrying them would fail the same way every time."""

MAX_LINE = 1 << 20
"""Longest line (bytes) of an imported CSV. Plausible's and Umami's rows are a few hundred bytes; without a
bound, a file of one endless line would be read whole into memory before the CSV reader could refuse it."""


class _Bounded:
    """Reads at most ``limit`` bytes from a stream, then refuses: a zip entry may lie about its size. A line
    is read at most :data:`MAX_LINE` + 1 bytes at a time, so an over-long one is seen without being held."""

    def __init__(self, raw: IO[bytes], limit: int, name: str, *, zipped: bool = False) -> None:
        self.raw, self.left, self.name, self.zipped = raw, limit, name, zipped

    def readline(self) -> bytes:
        if not self.zipped:
            line = self.raw.readline(min(self.left, MAX_LINE) + 1)
        else:
            try:
                line = self.raw.readline(min(self.left, MAX_LINE) + 1)
            except DAMAGED_ENTRY as exc:
                raise ImportRefused(f"the zip entry is damaged ({exc})", file=self.name) from None
        self.left -= len(line)
        if self.left < 0:
            raise ImportRefused("the entry is larger than its zip directory says (a zip bomb?)", file=self.name)
        return line


@dataclass
class Row:
    line: int
    """Line number of the record's first line (the header is line 1)."""
    end: int
    """Byte offset just after the record: where to resume."""
    values: dict[str, str]


class _Lines:
    """The lines of a byte stream decoded strictly as UTF-8, counting lines and bytes consumed."""

    def __init__(self, stream: _Bounded, name: str) -> None:
        self.stream, self.name, self.offset, self.line = stream, name, 0, 0

    def _readline(self) -> bytes:
        chunk = self.stream.readline()
        if len(chunk) > MAX_LINE:
            raise ImportRefused(f"the line is longer than {MAX_LINE} bytes (is this a CSV file?)", file=self.name,
                                line=self.line + 1)
        return chunk

    def __iter__(self) -> Iterator[str]:
        while chunk := self._readline():
            self.line += 1
            self.offset += len(chunk)
            try:
                yield chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                text = chunk[:exc.start].decode("utf-8", "replace")
                raise ImportRefused("the file is not UTF-8 text", file=self.name, line=self.line,
                                    column=f"{len(text) + 1} (byte {exc.start + 1})") from None

    def skip(self, to: int, line: int) -> None:
        """Move to byte ``to`` (a record boundary read before), which is line ``line``."""
        while self.offset < to:
            chunk = self._readline()
            if not chunk:
                raise ImportRefused("the file changed since the import began", file=self.name)
            self.offset += len(chunk)
        self.line = line


class Records:
    """The records of one CSV as :class:`Row` objects; a context manager that closes the file."""

    def __init__(self, reader: Iterator[list[str]], lines: _Lines, columns: list[str], name: str,
                 stack: contextlib.ExitStack) -> None:
        self.reader, self.lines, self.columns, self.name, self.stack = reader, lines, columns, name, stack

    def __enter__(self) -> Records:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def __iter__(self) -> Iterator[Row]:
        name, columns = self.name, self.columns
        while True:
            start = self.lines.line + 1
            try:
                fields = next(self.reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ImportRefused(f"not valid CSV ({exc})", file=name, line=start) from None
            if not fields:
                continue
            if len(fields) != len(columns):
                raise ImportRefused(f"{len(fields)} fields where the header has {len(columns)}", file=name,
                                    line=start)
            yield Row(start, self.lines.offset, dict(zip(columns, fields, strict=True)))


def read_csv(path: Path, entry: Entry, display: str, offset: int, first_line: int,
             header: list[str] | None = None) -> tuple[list[str], Records]:
    """The header and the records of ``entry`` from byte ``offset`` on (``0``: after reading the header).

    ``first_line`` is the line number at ``offset`` when resuming, ``header`` the header read then. Records
    are dicts by column name; a record with a different number of fields than the header is refused. Use the
    records as a context manager: leaving it closes the file.
    """
    name = entry.name or display
    stack = contextlib.ExitStack()
    try:
        archive = stack.enter_context(zipfile.ZipFile(path)) if entry.name else None
        raw: IO[bytes] = stack.enter_context(archive.open(entry.name) if archive else path.open("rb"))
    except (*DAMAGED_ENTRY, NotImplementedError) as exc:
        stack.close()
        if not entry.name:
            raise
        raise ImportRefused(f"the zip entry is damaged ({exc})", file=name) from None
    lines = _Lines(_Bounded(raw, entry.size, name, zipped=archive is not None), name)
    reader = csv.reader(lines, strict=True)
    try:
        if header is None or offset == 0:
            try:
                header = [column.strip().lstrip("\ufeff") for column in next(reader)]
            except StopIteration:
                raise ImportRefused("the file is empty", file=name, line=1) from None
            except csv.Error as exc:
                raise ImportRefused(f"the header is not valid CSV ({exc})", file=name, line=1) from None
        else:
            lines.skip(offset, first_line)
    except BaseException:
        stack.close()
        raise
    return header, Records(reader, lines, header, name, stack)


def remove(path: str | None) -> None:
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
