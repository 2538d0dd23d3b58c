"""The ``beacon`` command: operations on an installation (migrate, users, sites, checks, processes)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from app.core.errors import AppError, ConfigError, Conflict
from app.core.settings import Settings, get_settings


class CliError(Exception):
    """Reported as one line on stderr with exit status 1."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


def _run_async(coro: Any) -> Any:
    return asyncio.run(coro)


# --- commands --------------------------------------------------------------------------------------


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from app.migrate import migrate

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
    from app.domain.accounts.services import create_user, get_user_by_email, normalize_email

    email = normalize_email(args.email)
    password = _read_password(args)

    async def run() -> str:
        from app.core.resources import Resources

        resources = Resources.open(settings, "cli")
        try:
            async with resources.sessions.begin() as session:
                if args.exists_ok and await get_user_by_email(session, email) is not None:
                    return f"user {email} already exists"
                user = await create_user(session, email, password, is_admin=args.admin)
                return f"created {'admin ' if user.is_admin else ''}user {user.email} (id {user.id})"
        finally:
            await resources.close()

    print(_run_async(run()))
    return 0


def cmd_site_add(settings: Settings, args: argparse.Namespace) -> int:
    from app.domain.accounts.services import get_user_by_email
    from app.domain.sites.services import create_site, get_site_by_domain, normalize_domain

    domain = normalize_domain(args.domain)

    async def run() -> str:
        from app.core.resources import Resources

        resources = Resources.open(settings, "cli")
        try:
            async with resources.sessions.begin() as session:
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
        finally:
            await resources.close()

    print(_run_async(run()))
    return 0


def cmd_apikey_create(settings: Settings, args: argparse.Namespace) -> int:
    from app.domain.accounts.services import get_user_by_email, normalize_email
    from app.domain.apikeys.services import create_api_key

    email = normalize_email(args.email)

    async def run() -> str:
        from app.core.resources import Resources

        resources = Resources.open(settings, "cli")
        try:
            async with resources.sessions.begin() as session:
                user = await get_user_by_email(session, email)
                if user is None:
                    raise CliError(f"--email: no user {email}")
                _, plain = await create_api_key(session, user.id, args.name, args.scope or ["stats:read"])
                return plain
        finally:
            await resources.close()

    # The key alone on stdout, so scripts can capture it; it is not stored and cannot be shown again.
    print(_run_async(run()))
    return 0


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from app.checks import check_installation_and_cluster

    rows, cluster = _run_async(check_installation_and_cluster(settings))
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
    from app.ops.backup import backup

    path = backup(settings, output_dir=args.output_dir, keep=args.keep)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    from app.ops.backup import restore

    result = restore(settings, args.file, progress=not args.no_progress)
    print(f"restored {result.path}: {result.items} archive items")
    return 0


def cmd_analytics_refresh(settings: Settings, args: argparse.Namespace) -> int:
    """Roll up every site's (or one site's) final days now, as the worker does; ``--rebuild`` starts over."""
    from datetime import UTC, datetime, timedelta

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy import text

    from app.core.db import make_engine
    from services.analytics import rollups

    engine = make_engine(settings.database)
    now = datetime.now(UTC)
    visit_timeout = timedelta(seconds=settings.ingest.session_timeout)
    try:
        with engine.connect() as conn:
            sites = [(int(row[0]), str(row[1])) for row in conn.execute(
                text("SELECT id, domain FROM sites WHERE CAST(:domain AS text) IS NULL OR domain = :domain "
                     "ORDER BY domain"), {"domain": args.site})]
        if args.site and not sites:
            raise CliError(f"--site: no site {args.site!r}")
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
                until = result.rolled_until.isoformat() if result and result.rolled_until else "nothing to roll up"
                print(f"{domain}: {days} day(s) rolled up; final days until {until}")
    finally:
        engine.dispose()
    return 0


def _merge_stderr() -> None:
    """Long-running processes: send stderr where stdout goes, so a crash lands in the watcher's one log."""
    if not os.isatty(1):
        os.dup2(1, 2)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from app.core.serve import serve

    _merge_stderr()
    serve(args.process, settings)
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from workers.worker import run

    _merge_stderr()
    run()
    return 0


def cmd_scheduler(settings: Settings, args: argparse.Namespace) -> int:
    from workers.scheduler import run

    _merge_stderr()
    run()
    return 0


def cmd_reports_send(settings: Settings, args: argparse.Namespace) -> int:
    """Queue the reports due at ``--at`` (default now), as the hourly job does; idempotent per member and period."""
    from datetime import UTC, datetime

    from app.core.db import make_engine
    from services.integrations.reports import send_reports

    moment = datetime.now(UTC)
    if args.at:
        try:
            moment = datetime.fromisoformat(args.at)
        except ValueError:
            raise CliError(f"--at: {args.at!r} is not an ISO 8601 date and time (2026-11-30T09:30:00+00:00)") from None
        if moment.tzinfo is None:
            raise CliError(f"--at: {args.at!r} needs a UTC offset (…Z or …+01:00)")
    engine = make_engine(settings.database)
    try:
        made = send_reports(engine, settings, moment)
    finally:
        engine.dispose()
    print(f"queued {made} report emails and webhook messages due at {moment.isoformat()}")
    return 0


def cmd_compute(args: argparse.Namespace) -> int:
    """Batch detection/forecast on a CSV; needs no settings, as it touches no database or service."""
    from services.compute.batch import BatchInputError, detect_csv, forecast_csv

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
    from app.core.serve import PROCESS_NAMES

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

    _add_reports_parser(sub)
    p = sub.add_parser("serve", help="run one HTTP process (as Circus does)")
    p.add_argument("process", choices=PROCESS_NAMES)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run a background-job worker (as Circus does)")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("scheduler", help="run the periodic-job scheduler (as Circus does)")
    p.set_defaults(func=cmd_scheduler)

    return parser


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
    for name, text in (("detect", "print timestamp,value,anomaly_score for timestamp,value rows"),
                       ("forecast", "print date,yhat,yhat_lower,yhat_upper (80 %%) for date,value rows")):
        p = compute.add_parser(name, help=text)
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
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            print(f"beacon: error: database unavailable: {str(exc.orig).strip().splitlines()[0]}",
                  file=sys.stderr)
        else:
            print(f"beacon: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
