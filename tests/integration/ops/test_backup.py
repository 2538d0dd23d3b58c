"""`beacon backup` / `beacon restore` internals against a real PostgreSQL (pg_dump and pg_restore)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.core.db import make_engine
from app.core.settings import Settings, load_settings
from app.migrate import migrate
from app.ops.backup import BackupError, backup, list_backups, prune, restore
from tests.support.servers import make_environment


@pytest.fixture(scope="module")
def backup_settings(postgres: object, redis_server: object, state_dir: Path) -> Settings:
    """Settings of a database of its own (``beacon_backup``), migrated."""
    environment = make_environment(postgres, redis_server, state_dir / "backup", "beacon_backup")  # type: ignore[arg-type]
    settings = load_settings(environment)
    migrate(settings)
    return settings


@pytest.fixture
def probe(backup_settings: Settings) -> Iterator[None]:
    """A table with known rows next to Beacon's schema; dropped afterwards."""
    engine = make_engine(backup_settings.database)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE backup_probe (id int PRIMARY KEY, note text NOT NULL)"))
        conn.execute(text("INSERT INTO backup_probe SELECT g, 'row ' || g FROM generate_series(1, 250) g"))
    yield
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS backup_probe"))
    engine.dispose()


def counts(settings: Settings) -> dict[str, int]:
    engine = make_engine(settings.database)
    try:
        with engine.connect() as conn:
            tables = [row[0] for row in conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"))]
            return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}
    finally:
        engine.dispose()


def empty_database(settings: Settings) -> None:
    engine = make_engine(settings.database)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def test_backup_writes_a_custom_format_dump_named_by_utc_time(backup_settings: Settings, tmp_path: Path) -> None:
    """A backup is a pg_dump custom-format archive called beacon-<UTC timestamp>.dump."""
    path = backup(backup_settings, output_dir=tmp_path)
    assert tmp_path == path.parent
    assert path.name.startswith("beacon-") and path.name.endswith("Z.dump")
    assert b"PGDMP" == path.read_bytes()[:5]
    assert [path] == list(tmp_path.iterdir())


def test_backup_defaults_to_the_configured_backup_directory(backup_settings: Settings, tmp_path: Path) -> None:
    """Without output_dir the dump goes to BEACON_BACKUP_DIR (created if missing)."""
    configured = dataclasses.replace(backup_settings,
                                     paths=dataclasses.replace(backup_settings.paths, backup_dir=tmp_path / "b"))
    path = backup(configured)
    assert tmp_path / "b" == path.parent


def test_retention_keeps_the_newest_dumps_and_nothing_else(backup_settings: Settings, tmp_path: Path) -> None:
    """keep=N leaves the N newest dumps and never touches files it did not write."""
    (tmp_path / "notes.txt").write_text("mine")
    made = []
    for _ in range(4):
        made.append(backup(backup_settings, output_dir=tmp_path, keep=2))
        time.sleep(0.01)
    assert made[-2:] == list_backups(tmp_path)
    assert (tmp_path / "notes.txt").exists()


def test_prune_refuses_to_keep_nothing(tmp_path: Path) -> None:
    """keep=0 would delete every backup: it is refused."""
    with pytest.raises(BackupError, match="at least 1"):
        prune(tmp_path, 0)


@pytest.mark.usefixtures("probe")
def test_restore_into_an_emptied_database_gives_identical_counts(backup_settings: Settings, tmp_path: Path) -> None:
    """Dump, drop everything, restore: every table has the same number of rows."""
    before = counts(backup_settings)
    assert 250 == before["backup_probe"]
    path = backup(backup_settings, output_dir=tmp_path)
    empty_database(backup_settings)
    assert {} == counts(backup_settings)

    result = restore(backup_settings, path, progress=False)

    assert before == counts(backup_settings)
    assert result.items > 0


@pytest.mark.usefixtures("probe")
def test_restore_replaces_changed_rows(backup_settings: Settings, tmp_path: Path) -> None:
    """Restoring over a live database brings back the dumped rows (--clean)."""
    path = backup(backup_settings, output_dir=tmp_path)
    engine = make_engine(backup_settings.database)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM backup_probe WHERE id > 10"))
    engine.dispose()
    restore(backup_settings, path, progress=False)
    assert 250 == counts(backup_settings)["backup_probe"]


@pytest.mark.usefixtures("probe")
def test_restore_reports_progress_on_stderr(backup_settings: Settings, tmp_path: Path,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    """Without a terminal, progress is printed as item counts up to 100 %."""
    path = backup(backup_settings, output_dir=tmp_path)
    restore(backup_settings, path, progress=True)
    err = capfd.readouterr().err
    assert "restore: " in err
    assert err.rstrip().endswith("(100%)"), err


def test_restore_of_a_file_that_is_not_a_dump_fails_in_one_line(backup_settings: Settings, tmp_path: Path) -> None:
    """A wrong file is refused with a one-line reason, before anything is touched."""
    bogus = tmp_path / "beacon-20260101T000000000000Z.dump"
    bogus.write_text("not a dump")
    before = counts(backup_settings)
    with pytest.raises(BackupError, match="not a pg_dump custom-format archive") as info:
        restore(backup_settings, bogus, progress=False)
    assert "\n" not in str(info.value)
    assert before == counts(backup_settings)


def test_restore_of_a_missing_file_names_it(backup_settings: Settings, tmp_path: Path) -> None:
    """A missing file is named in the error."""
    with pytest.raises(BackupError, match="no such backup file"):
        restore(backup_settings, tmp_path / "nope.dump", progress=False)


def test_backup_with_a_wrong_password_fails_cleanly(backup_settings: Settings, tmp_path: Path) -> None:
    """pg_dump's authentication failure becomes one line, and no partial file is left behind."""
    url = make_url(backup_settings.database.url).set(password="wrong-password")
    wrong = dataclasses.replace(
        backup_settings,
        database=dataclasses.replace(backup_settings.database, url=url.render_as_string(hide_password=False)),
    )
    with pytest.raises(BackupError, match=r"pg_dump failed: .*password authentication failed") as info:
        backup(wrong, output_dir=tmp_path)
    assert "\n" not in str(info.value)
    assert [] == list(tmp_path.iterdir())


def test_the_password_is_not_on_the_command_line(backup_settings: Settings, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """pg_dump gets the password through PGPASSWORD, so `ps` never shows it."""
    seen: list[list[str]] = []
    real_run = subprocess.run

    def spy(argv: list[str], *args: object, **kwargs: object) -> object:
        seen.append(list(argv))
        return real_run(argv, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", spy)
    backup(backup_settings, output_dir=tmp_path)
    password = make_url(backup_settings.database.url).password
    assert password
    assert not any(str(password) in arg for argv in seen for arg in argv)
    assert os.environ.get("PGPASSWORD") is None
