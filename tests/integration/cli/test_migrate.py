"""``beacon migrate``: init SQL applied once, in order, all or nothing; then Alembic."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from app.core.db import make_engine
from app.core.settings import load_settings
from app.devstack import Postgres
from app.migrate import MigrationError, head_revision, migrate


def fresh(postgres: Postgres, environment: dict[str, str], name: str, init_dir: Path) -> dict[str, str]:
    postgres.psql(f"DROP DATABASE IF EXISTS {name}")
    postgres.psql(f"CREATE DATABASE {name} OWNER beacon_it_owner")
    url = environment["BEACON_DATABASE_URL"].rsplit("/", 1)[0] + f"/{name}"
    return {**environment, "BEACON_DATABASE_URL": url, "BEACON_INIT_SQL_DIR": str(init_dir)}


def query(env: dict[str, str], sql: str) -> list[tuple[object, ...]]:
    engine = make_engine(load_settings(env).database)
    with engine.connect() as conn:
        result = [tuple(row) for row in conn.execute(text(sql))]
    engine.dispose()
    return result


def test_init_sql_applied_in_order_once(postgres: Postgres, environment: dict[str, str], tmp_path: Path,
                                        settings: object) -> None:
    """Files run alphabetically on the first initialisation only; a second run changes nothing."""
    (tmp_path / "20-data.sql").write_text("INSERT INTO seed_log (step) VALUES ('second');\n")
    (tmp_path / "10-schema.sql").write_text(
        "CREATE TABLE seed_log (id serial PRIMARY KEY, step text);\n"
        "INSERT INTO seed_log (step) VALUES ('first');\n")
    (tmp_path / "notes.txt").write_text("not SQL, ignored")
    env = fresh(postgres, environment, "beacon_seed", tmp_path)
    first = migrate(load_settings(env))
    assert ["10-schema.sql", "20-data.sql"] == first.seeded
    assert head_revision() == first.revision_after
    second = migrate(load_settings(env))
    assert [] == second.seeded
    assert [(1, "first"), (2, "second")] == query(env, "SELECT id, step FROM seed_log ORDER BY id")


def test_failing_init_sql_applies_nothing(postgres: Postgres, environment: dict[str, str], tmp_path: Path,
                                          settings: object) -> None:
    """A broken file rolls back every file; the error names the problem; a fixed retry then works."""
    (tmp_path / "1.sql").write_text("CREATE TABLE half (id int);\n")
    (tmp_path / "2.sql").write_text("INSERT INTO missing_table VALUES (1);\n")
    env = fresh(postgres, environment, "beacon_seed_fail", tmp_path)
    with pytest.raises(MigrationError, match="missing_table"):
        migrate(load_settings(env))
    assert [(None,)] == query(env, "SELECT to_regclass('public.half')")
    (tmp_path / "2.sql").write_text("INSERT INTO half VALUES (1);\n")
    assert ["1.sql", "2.sql"] == migrate(load_settings(env)).seeded


def test_existing_database_is_never_seeded(postgres: Postgres, environment: dict[str, str], tmp_path: Path,
                                           settings: object) -> None:
    """A database that already has tables is not touched by init SQL, even on its first migrate."""
    (tmp_path / "1.sql").write_text("CREATE TABLE should_not_exist (id int);\n")
    env = fresh(postgres, environment, "beacon_existing", tmp_path)
    postgres.psql("CREATE TABLE legacy (id int); ALTER TABLE legacy OWNER TO beacon_it_owner",
                  database="beacon_existing")
    assert [] == migrate(load_settings(env)).seeded
    assert [(None,)] == query(env, "SELECT to_regclass('public.should_not_exist')")
