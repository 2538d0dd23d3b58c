"""The ``beacon`` command: operations on an installation (migrate, users, sites, checks, processes).

Every process Circus runs starts here (``beacon serve NAME``, ``beacon worker``), so each command imports the
code it runs inside its own function: a worker must not load the api's domains, nor the api the compute
service's numpy and statsmodels, and ``beacon --help`` or a short command does not load Granian, Redis or
the service client. Only the errors and the settings are imported at the top.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from app.core.errors import AppError, ConfigError, Conflict
from app.core.settings import DEFAULT_PORTS, Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


class CliError(Exception):
    """Reported as one line on stderr with exit status 1."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


def in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one database transaction of this process's own resources, opened and closed here.

    The transaction commits when ``work`` returns and rolls back when it raises.
    """
    from app.core.resources import Resources  # noqa: PLC0415 - per command

    async def run() -> T:
        resources = Resources.open(settings, "cli")
        try:
            async with resources.sessions.begin() as session:
                return await work(session)
        finally:
            await resources.close()

    return asyncio.run(run())


@contextlib.contextmanager
def sync_engine(settings: Settings) -> Iterator[Engine]:
    """A synchronous engine for a command's work, disposed of when the command ends."""
    from app.core.db import make_engine  # noqa: PLC0415 - per command

    engine = make_engine(settings.database)
    try:
        yield engine
    finally:
        engine.dispose()


# --- commands --------------------------------------------------------------------------------------


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from app.migrate import migrate  # noqa: PLC0415 - per command

    result = migrate(settings)
    if result.seeded:
        print(f"seeded the new database from {len(result.seeded)} file(s): {', '.join(result.seeded)}")
    if result.revision_before == result.revision_after:
        print(f"database schema is up to date (revision {result.revision_after})")
    else:
        print(f"database schema migrated from {result.revision_before or 'empty'} to {result.revision_after}")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            raise CliError("passwords do not match")
    else:
        raise CliError("no password given: use --password-stdin or run interactively")
    return password


def cmd_createuser(settings: Settings, args: argparse.Namespace) -> int:
    from app.domain.accounts.services import create_user, get_user_by_email, normalize_email  # noqa: PLC0415 - per command

    email = normalize_email(args.email)
    password = _read_password(args)

    async def work(session: AsyncSession) -> str:
        if args.exists_ok and await get_user_by_email(session, email) is not None:
            return f"user {email} already exists"
        user = await create_user(session, email, password, is_admin=args.admin)
        return f"created {'admin ' if user.is_admin else ''}user {user.email} (id {user.id})"

    print(in_transaction(settings, work))
    return 0


def cmd_user_password(settings: Settings, args: argparse.Namespace) -> int:
    """Set a user's password (sign-up's rules) and end every session of theirs: for an operator on the host."""
    from app.core.errors import NotFound  # noqa: PLC0415 - per command
    from app.domain.accounts.reset import set_password  # noqa: PLC0415 - per command
    from app.domain.accounts.services import check_password, get_user_by_email, normalize_email  # noqa: PLC0415 - per command

    email = normalize_email(args.email)
    if args.stdin:
        password = again = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("New password: ")
        check_password(password)
        again = getpass.getpass("New password (again): ")
    else:
        raise CliError("no password given: use --stdin or run interactively")

    async def work(session: AsyncSession) -> str:
        user = await get_user_by_email(session, email)
        if user is None:
            raise NotFound(f"email: no user has the e-mail address {email}")
        await set_password(user, password, again)
        return f"password of {user.email} changed; every session of theirs has ended"

    print(in_transaction(settings, work))
    return 0


def cmd_site_add(settings: Settings, args: argparse.Namespace) -> int:
    from app.domain.accounts.services import get_user_by_email  # noqa: PLC0415 - per command
    from app.domain.sites.services import create_site, get_site_by_domain, normalize_domain  # noqa: PLC0415 - per command

    domain = normalize_domain(args.domain)

    async def work(session: AsyncSession) -> str:
        if args.exists_ok and await get_site_by_domain(session, domain) is not None:
            return f"site {domain} already exists"
        owner_id = None
        if args.owner:
            owner = await get_user_by_email(session, args.owner)
            if owner is None:
                raise CliError(f"--owner: no user {args.owner}")
            owner_id = owner.id
        site = await create_site(session, domain, args.timezone, owner_id=owner_id)
        return f"created site {site.domain} (id {site.id}, time zone {site.timezone})"

    print(in_transaction(settings, work))
    return 0


def cmd_apikey_create(settings: Settings, args: argparse.Namespace) -> int:
    from app.domain.accounts.services import get_user_by_email, normalize_email  # noqa: PLC0415 - per command
    from app.domain.apikeys.services import create_api_key  # noqa: PLC0415 - per command

    email = normalize_email(args.email)

    async def work(session: AsyncSession) -> str:
        user = await get_user_by_email(session, email)
        if user is None:
            raise CliError(f"--email: no user {email}")
        _, plain = await create_api_key(session, user.id, args.name, args.scope or ["stats:read"])
        return plain

    # The key alone on stdout, so scripts can capture it; it is not stored and cannot be shown again.
    print(in_transaction(settings, work))
    return 0


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from app.checks import check_installation_and_cluster, check_metrics  # noqa: PLC0415 - per command

    cluster: list[str] = []
    if args.metrics:
        rows = asyncio.run(check_metrics(settings))
    else:
        rows, cluster = asyncio.run(check_installation_and_cluster(settings))
    width = max(len(name) for name, _ in rows)
    for name, result in rows:
        mark = "ok  " if result == "ok" else "FAIL"
        print(f"{mark}  {name.ljust(width)}  {'' if result == 'ok' else result}".rstrip())
    if cluster:
        print("\ncluster:")
        for line in cluster:
            print(f"  {line}")
    failed = [name for name, result in rows if result != "ok"]
    if failed:
        print(f"\n{len(failed)} of {len(rows)} checks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"\nall {len(rows)} checks passed")
    return 0


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    from app.ops.backup import backup  # noqa: PLC0415 - per command

    path = backup(settings, output_dir=args.output_dir, keep=args.keep)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    from app.ops.backup import restore  # noqa: PLC0415 - per command

    result = restore(settings, args.file, progress=not args.no_progress)
    print(f"restored {result.path}: {result.items} archive items")
    return 0


def cmd_analytics_refresh(settings: Settings, args: argparse.Namespace) -> int:
    """Roll up every site's (or one site's) final days now, as the worker does; ``--rebuild`` starts over. After
    more than a week of days, the rollup tables are vacuumed (``rollups.vacuum``) and the visits' indexes read
    back into PostgreSQL's buffers (``rollups.warm``)."""
    from rich.progress import (  # noqa: PLC0415 - per command
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from services.analytics import rollups  # noqa: PLC0415 - per command

    now = datetime.now(UTC)
    visit_timeout = timedelta(seconds=settings.ingest.session_timeout)
    with sync_engine(settings) as engine:
        with engine.connect() as conn:
            sites = [(int(row[0]), str(row[1])) for row in conn.execute(
                text("SELECT id, domain FROM sites WHERE CAST(:domain AS text) IS NULL OR domain = :domain "
                     "ORDER BY domain"), {"domain": args.site})]
        if args.site is not None and not sites:
            raise CliError(f"--site: no site {args.site!r}")
        rolled = 0
        # A bar on a terminal; plain lines in logs and pipes.
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("days"),
                      TimeElapsedColumn(), disable=not sys.stderr.isatty(), transient=False) as progress:
            for site_id, domain in sites:
                with engine.begin() as conn:
                    if args.rebuild:
                        rollups.forget(conn, site_id)
                    total = rollups.days_to_roll(conn, site_id, now)
                task = progress.add_task(domain, total=total)
                days, result = 0, None
                while True:
                    with engine.begin() as conn:
                        result = rollups.refresh(conn, site_id, now, visit_timeout)
                    if not result.days:
                        break
                    days += result.days
                    progress.update(task, completed=min(days, total))
                progress.update(task, total=days, completed=days)
                until = (f"final days rolled up through {result.rolled_until.isoformat()}"
                         if result and result.rolled_until else "no final day with events yet")
                print(f"{domain}: {days} day(s) rolled up now; {until}")
                rolled += days
        if rolled > rollups.WARM_AFTER_DAYS:
            print("vacuuming the rollup tables (index-only scans of the new days)")
            with engine.connect() as conn:
                rollups.vacuum(conn.execution_options(isolation_level="AUTOCOMMIT"))
            with engine.begin() as conn:
                warmed = rollups.warm(conn)
            if warmed is None:
                print("the visits' indexes were not warmed: the pg_prewarm extension is not installed "
                      "(docs/operations.md)")
            else:
                print("warmed the visits' indexes: " + ", ".join(
                    f"{index} {blocks * 8192 / 2**20:.1f} MB" if blocks else f"{index} skipped (over half of "
                    "shared_buffers)" for index, blocks in warmed.items()))
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """Store an export, create its import and (unless ``--no-wait``) follow the worker's progress with a bar."""
    from app.core.db import make_engine  # noqa: PLC0415 - per command
    from services.integrations.imports import store  # noqa: PLC0415 - per command
    from services.integrations.imports.files import imports_dir, store_file, store_stream  # noqa: PLC0415 - per command

    engine = make_engine(settings.database, application_name="beacon-cli")
    limits = settings.imports
    try:
        site_id = _import_site(engine, args.site)
        directory, name = imports_dir(settings.paths.state_dir), store.upload_name()
        if str(args.file) == "-":
            stored, display = store_stream(sys.stdin.buffer, directory, name, limits.max_upload,
                                           limits.min_free_disk), "stdin"
        else:
            stored = store_file(args.file, directory, name, limits.max_upload, limits.min_free_disk)
            display = args.file.name
        import_id = store.create_import(engine, site_id, args.source, stored, display, limits,
                                        label=args.label or "")
        print(f"import {import_id} of {display} into {args.site} created; a worker runs it")
        if args.no_wait:
            return 0
        return _follow_import(engine, import_id, f"{args.source} → {args.site}")
    finally:
        engine.dispose()


def cmd_import_ga4(settings: Settings, args: argparse.Namespace) -> int:
    """Create a GA4 import (credentials read from a file) and follow the worker's progress."""
    import datetime as dt  # noqa: PLC0415 - per command

    from app.core.db import make_engine  # noqa: PLC0415 - per command
    from services.integrations.ga4 import Credentials, GA4Error  # noqa: PLC0415 - per command
    from services.integrations.imports import ga4  # noqa: PLC0415 - per command
    from services.integrations.imports.files import ImportRefused  # noqa: PLC0415 - per command

    dates = []
    for option, value in (("--from", args.first), ("--to", args.last)):
        try:
            dates.append(dt.date.fromisoformat(value))
        except ValueError:
            raise CliError(f"{option}: {value!r} is not a date (YYYY-MM-DD)") from None
    where = "standard input" if str(args.credentials) == "-" else str(args.credentials)
    try:
        raw = sys.stdin.read() if where == "standard input" else args.credentials.read_text(encoding="utf-8")
        credentials = Credentials.from_json(raw, f"--credentials {where}")
    except OSError as exc:
        raise CliError(f"--credentials: cannot read {where}: {exc.strerror}") from None
    except (GA4Error, UnicodeDecodeError) as exc:
        raise CliError(str(exc)) from None
    engine = make_engine(settings.database, application_name="beacon-cli")
    try:
        site_id = _import_site(engine, args.site)
        try:
            import_id = ga4.create(engine, site_id, args.property, dates[0], dates[1], credentials,
                                   label=args.label or "", data_api=args.data_api_url, token_url=args.token_url)
        except ImportRefused as exc:
            raise CliError(f"--{exc.column or 'property'}: {exc.message}") from None
        print(f"import {import_id} of GA4 property {args.property} into {args.site} created; a worker runs it")
        if args.no_wait:
            return 0
        return _follow_import(engine, import_id, f"ga4 → {args.site}")
    finally:
        engine.dispose()


def _import_site(engine: Engine, domain: str) -> int:
    """The id of the site ``--site`` names; :class:`CliError` when there is none."""
    with engine.connect() as conn:
        site_id = conn.execute(text("SELECT id FROM sites WHERE domain = :d"), {"d": domain.lower()}).scalar()
    if site_id is None:
        raise CliError(f"--site: no site {domain!r}")
    return int(site_id)


def _follow_import(engine: Engine, import_id: int, description: str) -> int:
    """Show an import's progress (percent, rows, days) until the worker completes or fails it; 0 when it
    completed, :class:`CliError` with the worker's reason when it failed."""
    import time  # noqa: PLC0415 - per command

    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn  # noqa: PLC0415 - per command

    from services.integrations.imports import store  # noqa: PLC0415 - per command

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rows]} rows · {task.fields[days]} days"), TimeElapsedColumn())
    with Progress(*columns, disable=not sys.stderr.isatty(), transient=False) as progress:
        task = progress.add_task(description, total=100, rows=0, days=0)
        waiting_since = time.monotonic()
        while True:
            state = store.read_import(engine, import_id)
            progress.update(task, completed=state.percent, rows=state.rows, days=state.days)
            if state.status in ("completed", "failed"):
                break
            if state.status == "pending" and time.monotonic() - waiting_since > 30:
                progress.console.print("still waiting for a worker: are the worker and scheduler running?")
                waiting_since = time.monotonic()
            time.sleep(0.5)
    if state.status == "failed":
        raise CliError(f"import {import_id} failed: {state.error}")
    print(f"import {import_id} completed: {state.rows} rows, {state.days} days "
          f"({state.start_date} to {state.end_date})")
    return 0


def _merge_stderr() -> None:
    """Long-running processes: send stderr where stdout goes, so a crash lands in the watcher's one log."""
    if not os.isatty(1):
        os.dup2(1, 2)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    _merge_stderr()
    from app.serve import serve  # noqa: PLC0415 - per command

    serve(args.process, settings)
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from workers.worker import run  # noqa: PLC0415 - per command

    _merge_stderr()
    run()
    return 0


def cmd_scheduler(settings: Settings, args: argparse.Namespace) -> int:
    from workers.scheduler import run  # noqa: PLC0415 - per command

    _merge_stderr()
    run()
    return 0


def cmd_reports_send(settings: Settings, args: argparse.Namespace) -> int:
    """Queue the reports due at ``--at`` (default now), as the hourly job does; idempotent per member and period."""
    from services.integrations.reports import send_reports  # noqa: PLC0415 - per command

    moment = datetime.now(UTC)
    if args.at:
        try:
            moment = datetime.fromisoformat(args.at)
        except ValueError:
            raise CliError(f"--at: {args.at!r} is not an ISO 8601 date and time (2026-11-30T09:30:00+00:00)") from None
        if moment.tzinfo is None:
            raise CliError(f"--at: {args.at!r} needs a UTC offset (…Z or …+01:00)")
    with sync_engine(settings) as engine:
        made = send_reports(engine, settings, moment)
    print(f"queued {made} report emails and webhook messages due at {moment.isoformat()}")
    return 0


def cmd_compute(args: argparse.Namespace) -> int:
    """Batch detection/forecast on a CSV; needs no settings, as it touches no database or service."""
    from services.compute.batch import BatchInputError, detect_csv, forecast_csv  # noqa: PLC0415 - per command

    try:
        if args.compute_command == "detect":
            detect_csv(args.csv, sys.stdout, max_rows=args.max_rows)
        else:
            forecast_csv(args.csv, args.horizon, sys.stdout, max_rows=args.max_rows)
    except BatchInputError as exc:
        raise CliError(str(exc)) from None
    return 0


# --- parser ----------------------------------------------------------------------------------------

Command = Callable[[Settings, argparse.Namespace], int]


def _add_reports_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    reports = sub.add_parser("reports", help="email reports").add_subparsers(
        dest="reports_command", metavar="ACTION", parser_class=Parser, required=True)
    p = reports.add_parser("send", help="queue the weekly/monthly reports due at a moment (e.g. ones missed "
                                        "while Beacon was down); each is sent once per member and period")
    p.add_argument("--at", metavar="DATETIME", help="ISO 8601 with a UTC offset (default now); a report is due "
                                                    "on Monday (weekly) or the 1st (monthly) from 09:00 site time")
    p.set_defaults(func=cmd_reports_send)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="beacon", description="Operate a Beacon installation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser, required=True)

    p = sub.add_parser("migrate", help="seed a new database (once) and apply schema migrations")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("createuser", help="create a user account")
    p.add_argument("--email", required=True)
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--admin", action="store_true", help="make the user an instance admin")
    p.add_argument("--exists-ok", action="store_true", help="succeed without change if the user exists")
    p.set_defaults(func=cmd_createuser)

    user = sub.add_parser("user", help="manage user accounts").add_subparsers(
        dest="user_command", metavar="ACTION", parser_class=Parser, required=True)
    p = user.add_parser("password", help="set a user's password and sign them out everywhere")
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--stdin", action="store_true", help="read the new password from the first line of standard input")
    p.set_defaults(func=cmd_user_password)

    site = sub.add_parser("site", help="manage sites").add_subparsers(
        dest="site_command", metavar="ACTION", parser_class=Parser, required=True)
    p = site.add_parser("add", help="add a site")
    p.add_argument("domain")
    p.add_argument("--timezone", default="UTC", help="IANA time zone of the site's reports (default UTC)")
    p.add_argument("--exists-ok", action="store_true", help="succeed without change if the site exists")
    p.add_argument("--owner", metavar="EMAIL", help="the site's owner (default: every instance admin)")
    p.set_defaults(func=cmd_site_add)

    apikey = sub.add_parser("apikey", help="manage API keys").add_subparsers(
        dest="apikey_command", metavar="ACTION", parser_class=Parser, required=True)
    p = apikey.add_parser("create", help="create an API key for a user and print it (once)")
    p.add_argument("--email", required=True, help="the user the key acts for")
    p.add_argument("--name", required=True, help="a name to tell the key apart")
    p.add_argument("--scope", action="append", choices=["stats:read", "sites:write"],
                   help="repeat for several scopes (default stats:read)")
    p.set_defaults(func=cmd_apikey_create)

    p = sub.add_parser("check", help="check every component and print a table; non-zero exit on failure")
    p.add_argument("--metrics", action="store_true",
                   help="instead: every process's Prometheus endpoint (loopback) and whether it answers")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("backup", help="dump the database (pg_dump custom format) into the backup directory")
    p.add_argument("--output-dir", type=Path, default=None, help="directory to write to (default BEACON_BACKUP_DIR)")
    p.add_argument("--keep", type=int, default=None, metavar="N", help="then delete all but the newest N backups")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="replace the database's contents with a backup (stop Beacon first)")
    p.add_argument("file", type=Path, help="a dump written by `beacon backup`")
    p.add_argument("--no-progress", action="store_true", help="do not draw a progress counter")
    p.set_defaults(func=cmd_restore)

    _add_analytics_and_compute(sub)
    _add_ga4_parser(_add_import_parser(sub))  # ga4 takes other arguments than a file

    _add_reports_parser(sub)
    p = sub.add_parser("serve", help="run one HTTP process (as Circus does)")
    p.add_argument("process", choices=tuple(DEFAULT_PORTS))
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run a background-job worker (as Circus does)")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("scheduler", help="run the periodic-job scheduler (as Circus does)")
    p.set_defaults(func=cmd_scheduler)

    return parser


IMPORT_FILES = {
    "plausible": "a Plausible CE CSV export: the zip of imported_*.csv files (or one of them)",
    "umami": "an Umami data export: the CSV of website events, or a zip of it",
}
"""``beacon import <source>`` taking a file; sources with other arguments (GA4) add their own parser."""


def _add_import_parser(sub: argparse._SubParsersAction[Parser]) -> argparse._SubParsersAction[Parser]:
    """``beacon import plausible|umami --site DOMAIN FILE``; returns the sub-parsers for more sources."""
    imports = sub.add_parser("import", help="import a site's history from another analytics tool").add_subparsers(
        dest="source", metavar="SOURCE", parser_class=Parser, required=True)
    for source, what in IMPORT_FILES.items():
        p = imports.add_parser(source, help=f"import {what}")
        p.add_argument("--site", required=True, metavar="DOMAIN", help="the Beacon site to import into")
        p.add_argument("file", type=Path, metavar="FILE",
                       help="the export; '-' reads standard input (when the beacon user cannot read the file)")
        p.add_argument("--label", help="a note shown with the import")
        p.add_argument("--no-wait", action="store_true", help="create the import and return; do not follow it")
        p.set_defaults(func=cmd_import)
    return imports


def _add_ga4_parser(imports: argparse._SubParsersAction[Parser]) -> None:
    """``beacon import ga4 --site DOMAIN --property ID --credentials FILE --from DATE --to DATE``."""
    p = imports.add_parser("ga4", help="import a Google Analytics 4 property through the GA4 Data API")
    p.add_argument("--site", required=True, metavar="DOMAIN", help="the Beacon site to import into")
    p.add_argument("--property", required=True, metavar="ID", help="the GA4 property id (digits)")
    p.add_argument("--credentials", required=True, type=Path, metavar="FILE",
                   help="a JSON file with client_id, client_secret and refresh_token of an OAuth 2 client "
                        "(scope analytics.readonly); '-' reads standard input")
    p.add_argument("--from", dest="first", required=True, metavar="YYYY-MM-DD", help="the first day to import")
    p.add_argument("--to", dest="last", required=True, metavar="YYYY-MM-DD", help="the last day to import")
    p.add_argument("--label", help="a note shown with the import")
    p.add_argument("--no-wait", action="store_true", help="create the import and return; do not follow it")
    p.add_argument("--data-api-url", default="https://analyticsdata.googleapis.com", help=argparse.SUPPRESS)
    p.add_argument("--token-url", default="https://oauth2.googleapis.com/token", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_import_ga4)


def _add_analytics_and_compute(sub: argparse._SubParsersAction[Parser]) -> None:
    """``beacon analytics refresh`` and ``beacon compute detect|forecast``."""
    analytics = sub.add_parser("analytics", help="analytics maintenance").add_subparsers(
        dest="analytics_command", metavar="ACTION", parser_class=Parser, required=True)
    p = analytics.add_parser("refresh", help="roll up final days now (as the worker does), with a progress bar")
    p.add_argument("--site", metavar="DOMAIN", help="only this site (default: every site)")
    p.add_argument("--rebuild", action="store_true", help="drop the rollups first and build them from the start")
    p.set_defaults(func=cmd_analytics_refresh)

    compute = sub.add_parser("compute", help="anomaly scores or a forecast for a CSV file").add_subparsers(
        dest="compute_command", metavar="ACTION", parser_class=Parser, required=True)
    for name, summary in (("detect", "print timestamp,value,anomaly_score for timestamp,value rows"),
                          ("forecast", "print date,yhat,yhat_lower,yhat_upper (80 %%) for date,value rows")):
        p = compute.add_parser(name, help=summary)
        p.add_argument("--csv", type=Path, required=True, metavar="FILE")
        p.add_argument("--max-rows", type=int, default=2_000_000, metavar="N", help="refuse longer files")
        if name == "forecast":
            p.add_argument("--horizon", type=int, default=30, metavar="DAYS", help="days to forecast (1-366)")
        p.set_defaults(standalone=cmd_compute)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "standalone", None):
            return int(args.standalone(args))
        settings = get_settings()
        func: Command = args.func
        return func(settings, args)
    except KeyboardInterrupt:
        return 130
    except (CliError, ConfigError) as exc:
        print(f"beacon: error: {exc}", file=sys.stderr)
        return 1
    except Conflict as exc:
        print(f"beacon: error: {exc.detail}", file=sys.stderr)
        return 3
    except AppError as exc:
        print(f"beacon: error: {exc.detail}", file=sys.stderr)
        return 1
    except Exception as exc:  # the last line of defence: one line, no traceback
        if isinstance(exc, OperationalError):
            print(f"beacon: error: database unavailable: {str(exc.orig).strip().splitlines()[0]}",
                  file=sys.stderr)
        else:
            print(f"beacon: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
