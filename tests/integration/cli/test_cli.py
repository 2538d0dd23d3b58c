"""The ``beacon`` command against the test database: clear one-line errors, never a traceback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from app.core.settings import Settings
from app.devstack import free_port
from services.analytics import rollups
from tests.support.beacon import run_beacon


def test_migrate_is_idempotent(environment: dict[str, str], settings: object) -> None:
    """A second migrate reports the schema up to date."""
    result = run_beacon(environment, "migrate")
    assert 0 == result.returncode, result.stderr
    assert "up to date" in result.stdout


def test_createuser_and_duplicate(environment: dict[str, str], settings: object, db: None) -> None:
    """Creating a user works once; again is a one-line conflict unless --exists-ok."""
    args = ("createuser", "--email", "Owner@Example.com", "--password-stdin", "--admin")
    created = run_beacon(environment, *args, stdin="correct horse battery\n")
    assert 0 == created.returncode, created.stderr
    assert "created admin user owner@example.com" in created.stdout
    again = run_beacon(environment, *args, stdin="correct horse battery\n")
    assert 3 == again.returncode
    assert "beacon: error: email: a user with e-mail owner@example.com already exists\n" == again.stderr
    ok = run_beacon(environment, *args, "--exists-ok", stdin="correct horse battery\n")
    assert 0 == ok.returncode


def test_site_add(environment: dict[str, str], settings: object, db: None) -> None:
    """A URL-ish domain is normalised; the time zone is checked."""
    result = run_beacon(environment, "site", "add", "https://www.Shop.Example.com/", "--timezone", "Europe/Berlin")
    assert 0 == result.returncode, result.stderr
    assert "created site shop.example.com" in result.stdout


@pytest.mark.parametrize(("args", "stdin", "status", "message"), [
    pytest.param(("frobnicate",), None, 2, "invalid choice", id="unknown-command"),
    pytest.param(("site", "add"), None, 2, "the following arguments are required: domain", id="missing-arg"),
    pytest.param(("site", "add", "not a domain!"), None, 1, "is not a valid domain name", id="bad-domain"),
    pytest.param(("site", "add", "ok.com", "--timezone", "Mars/Olympus"), None, 1, "unknown time zone",
                 id="bad-timezone"),
    pytest.param(("createuser", "--email", "nope", "--password-stdin"), "long enough pw\n", 1,
                 "not a valid e-mail", id="bad-email"),
    pytest.param(("createuser", "--email", "a@b.co", "--password-stdin"), "short\n", 1, "at least 10",
                 id="short-password"),
    pytest.param(("createuser", "--email", "a@b.co"), "", 1, "no password given", id="no-password"),
])
def test_bad_arguments_give_one_line_errors(environment: dict[str, str], settings: object, db: None,
                                            args: tuple[str, ...], stdin: str | None, status: int,
                                            message: str) -> None:
    """Bad arguments: non-zero exit, a short message, no traceback."""
    result = run_beacon(environment, *args, stdin=stdin)
    assert status == result.returncode
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3


def test_missing_configuration_is_named(environment: dict[str, str]) -> None:
    """Without BEACON_DATABASE_URL the command says which variable is missing."""
    env = {k: v for k, v in environment.items() if k != "BEACON_DATABASE_URL"}
    result = run_beacon({**env, "BEACON_DATABASE_URL": ""}, "migrate")
    assert 1 == result.returncode
    assert "beacon: error: missing required setting BEACON_DATABASE_URL\n" == result.stderr


def test_unreachable_database_is_one_line(environment: dict[str, str]) -> None:
    """A database that does not answer gives one line, not a traceback."""
    result = run_beacon({**environment, "BEACON_DATABASE_URL": "postgresql://x:y@127.0.0.1:1/none"}, "migrate")
    assert 1 == result.returncode
    assert result.stderr.startswith("beacon: error: database unavailable")
    assert 1 == len(result.stderr.strip().splitlines())


def test_check_fails_and_names_what_is_down(environment: dict[str, str], settings: object) -> None:
    """With no Beacon processes running, check exits non-zero and its table names them."""
    unused = {"BEACON_API_PORT": str(free_port()), "BEACON_INGEST_PORT": str(free_port())}
    result = run_beacon({**environment, **unused}, "check")
    assert 1 == result.returncode
    table = {line.split()[1]: line.split()[0] for line in result.stdout.splitlines() if line[:4] in ("ok  ", "FAIL")}
    assert "ok" == table["database"]
    assert "ok" == table["redis"]
    assert "ok" == table["schema"]
    assert "FAIL" == table["api"]
    assert "FAIL" == table["ingest"]
    assert "checks failed" in result.stderr


def test_analytics_refresh(environment: dict[str, str], settings: Settings, db: None) -> None:
    """`beacon analytics refresh` rolls up a site's final days now and, after more than a week of them, warms the
    visits' indexes; --rebuild starts over; an unknown site is a one-line error."""
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        site = conn.execute("INSERT INTO sites (domain, timezone) VALUES ('cli.example', 'UTC') RETURNING id"
                            ).fetchone()
        assert site is not None
        conn.execute("INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname) "
                     "VALUES (%s, now() - interval '20 days', 'pageview', 1, 1, 'cli.example', '/')", (site[0],))
        started = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    first = run_beacon(environment, "analytics", "refresh", "--site", "cli.example")
    assert 0 == first.returncode, first.stderr
    assert "cli.example: " in first.stdout and " 0 day(s)" not in first.stdout
    # More than a week of days: the rollups are vacuumed, the visits' indexes read back into the buffers.
    assert "warmed the visits' indexes: sessions_site_start " in first.stdout
    with psycopg.connect(settings.database.libpq_url, autocommit=True) as conn:
        vacuumed = conn.execute("SELECT count(*) FROM pg_stat_user_tables WHERE relname IN "
                                "('rollup_spans', 'rollup_days') AND last_vacuum >= %s", (started,)).fetchone()
        options = conn.execute("SELECT reloptions FROM pg_class WHERE relname = 'rollup_spans'").fetchone()
    assert vacuumed is not None and 2 == vacuumed[0]
    assert options is not None and "autovacuum_vacuum_insert_threshold=10000" in options[0]  # migration 0020
    again = run_beacon(environment, "analytics", "refresh")
    final = (datetime.now(UTC).date() - timedelta(days=rollups.FINAL_AFTER_DAYS)).isoformat()
    assert f"cli.example: 0 day(s) rolled up now; final days rolled up through {final}\n" in again.stdout
    rebuilt = run_beacon(environment, "analytics", "refresh", "--site", "cli.example", "--rebuild")
    assert first.stdout == rebuilt.stdout
    unknown = run_beacon(environment, "analytics", "refresh", "--site", "nope.example")
    assert (1, "beacon: error: --site: no site 'nope.example'\n") == (unknown.returncode, unknown.stderr)
    empty = run_beacon(environment, "analytics", "refresh", "--site", "")
    assert (1, "beacon: error: --site: no site ''\n") == (empty.returncode, empty.stderr)
