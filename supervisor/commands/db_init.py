"""``email-service db init URL``: make one database a practice database (for a new practice,
a demo or a test), by creating the contract's tables in it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from actors.practice_db import has_practice_table, make_engine, read_practice
from actors.practice_schema import init_practice_database
from config import Settings, mask_url
from supervisor import exit_codes
from supervisor.commands.common import CliError, print_json
from supervisor.discovery import DEFAULT_TIMEOUT, error_line


def register(subparsers: Any) -> None:
    """Add the ``db`` command and its ``init`` subcommand."""
    parser = subparsers.add_parser(
        "db",
        help="practice database set-up: db init",
        description="Set up practice databases.",
    )
    sub = parser.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    init = sub.add_parser(
        "init",
        help="create the practice tables in one database",
        description="Create the practice tables (practice, email_settings, email_messages, "
        "patients, email_service_checkins, email_service_diagnostics, "
        "email_service_commands and the service's email_service_mailbox) in the database "
        "at URL, with the practice row and default email settings. Tables and rows that "
        "exist already are left as they are, so running it twice is harmless. URL is a "
        "SQLAlchemy URL that names the database, e.g. "
        "'postgresql+psycopg://user@host/Smile Dental' (the database must exist) or "
        "'sqlite:///var/practices/Smile Dental.sqlite3' (the file is created; its folder "
        "must exist). Only the database in URL is touched.",
    )
    init.add_argument("url", metavar="URL", help="SQLAlchemy URL of the one database")
    init.add_argument(
        "--name",
        metavar="N",
        help="the practice's name (default: the database's name, for SQLite the file's stem)",
    )
    init.add_argument(
        "--registered-server",
        metavar="S",
        help="practice.registered_server: the server_id of the service that may serve it "
        "when the Genuine Server Check is on (default: none)",
    )
    init.add_argument("--json", action="store_true", help="print JSON for programs")
    init.set_defaults(handler=run_init)


def _parse(text: str) -> URL:
    try:
        url = make_url(text)
        url.get_dialect()  # loads SQLAlchemy's dialect module only, never the driver
    except (ArgumentError, ValueError, NoSuchModuleError):
        # SQLAlchemy's own message quotes the whole URL, password and all.
        raise CliError(
            f"not a database URL SQLAlchemy can use: {mask_url(text)!r} "
            "(e.g. 'sqlite:///var/practices/Smile Dental.sqlite3')"
        ) from None
    return url


def _database_name(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        if path in ("", ":memory:") or path.startswith("file:"):
            raise CliError("a SQLite URL for db init names a file: sqlite:///FOLDER/NAME.sqlite3")
        folder = Path(path).parent
        if not folder.is_dir():
            raise CliError(
                f"the folder {str(folder)!r} does not exist; create it first",
                exit_codes.NO_INPUT,
            )
        return Path(path).stem
    if not url.database:
        raise CliError(
            f"the URL {mask_url(url.render_as_string(hide_password=True))!r} names no "
            "database: add /NAME (the database must exist on the server)"
        )
    return url.database


def run_init(args: argparse.Namespace, _settings: Settings) -> int:
    url = _parse(args.url)
    database = _database_name(url)
    practice_name: str = database if args.name is None else args.name
    if not practice_name.strip():
        raise CliError("--name must not be empty")
    shown = mask_url(url.render_as_string(hide_password=True))
    try:
        # Bounded, so an unreachable server is reported instead of waiting for TCP to
        # give up; init_practice_database then finds the server answering.
        engine = make_engine(url, timeout=DEFAULT_TIMEOUT, pooled=False)
        try:
            before = read_practice(engine) if has_practice_table(engine) else None
        finally:
            engine.dispose()
        init_practice_database(
            url.render_as_string(hide_password=False),
            practice_name=practice_name,
            registered_server=args.registered_server,
        )
    except CliError:
        raise
    except Exception as exc:  # a driver or server problem: one line, never a password
        raise CliError(
            f"cannot create the practice tables in {shown}: {error_line(exc, url)}",
            exit_codes.UNAVAILABLE,
        ) from None
    created = before is None
    kept = before.practice_name if before is not None else practice_name
    if args.json:
        print_json([{"database": database, "url": shown, "practice": kept, "created": created}])
    elif created:
        print(f"Created the practice tables in {shown} for practice {practice_name!r}.")
    else:
        print(
            f"{shown} is already a practice database (practice {kept!r}); "
            "missing tables, if any, were created and existing rows were left as they were."
        )
    return exit_codes.OK
