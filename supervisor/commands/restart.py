"""``email-service restart [--db NAME]``: ask the service to restart a database's mailbox.

It does what a workstation's Restart button does: insert a ``restart`` row into the
practice database's ``email_service_commands``. The running service handles each row
once, fills ``handled_at`` and ``outcome``, and restarts that database's mailbox.
"""

from __future__ import annotations

import argparse
import getpass
import socket
import time
from datetime import datetime
from typing import Any

from config import Settings
from supervisor import discovery, exit_codes
from supervisor.commands.common import CliError, print_json, print_table
from supervisor.human_time import local_text


def register(subparsers: Any) -> None:
    """Add the ``restart`` command."""
    parser = subparsers.add_parser(
        "restart",
        help="send a restart command (all eligible databases without --db)",
        description="Insert a restart command for one database (--db) or every eligible one; "
        "the running service restarts that database's mailbox and records the outcome.",
    )
    parser.add_argument("--db", metavar="NAME", help="only this practice database")
    parser.add_argument(
        "--wait",
        metavar="SECONDS",
        type=float,
        default=0.0,
        help="wait up to this long for the service to handle it, and show the outcome",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for programs")
    parser.set_defaults(handler=run_restart)


def _requested_by() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment: say so rather than fail
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def run_restart(args: argparse.Namespace, settings: Settings) -> int:
    from actors import commands_table, practice_db

    try:
        infos = discovery.discover(
            settings.databases.server_url,
            server_id=settings.service.server_id,
            genuine_server_check=settings.service.genuine_server_check,
            only=(lambda n: n == args.db) if args.db else None,
        )
    except discovery.DiscoveryError as exc:
        raise CliError(str(exc), exit_codes.UNAVAILABLE) from None
    if args.db:
        if not infos:
            raise CliError(f"no database named {args.db!r} on the server", exit_codes.NO_INPUT)
        if not infos[0].is_practice:
            raise CliError(f"{args.db!r} is not a practice database (no practice table)")
        targets = infos
    else:
        targets = [i for i in infos if i.eligibility.eligible and i.error is None]
        if not targets:
            raise CliError("no eligible practice database on the server", exit_codes.NO_INPUT)
    who = _requested_by()
    sent: list[tuple[str, Any, int]] = []
    for info in targets:
        engine = practice_db.make_engine(info.url, timeout=10.0)
        try:
            sent.append((info.name, engine, commands_table.request_restart(engine, who)))
        except Exception:
            engine.dispose()
            raise
    deadline = time.monotonic() + args.wait
    rows: list[dict[str, Any]] = []
    try:
        for name, engine, command_id in sent:
            handled_at, outcome = commands_table.outcome_of(engine, command_id)
            while handled_at is None and time.monotonic() < deadline:
                time.sleep(0.25)  # polling a table another process fills; a person waits
                handled_at, outcome = commands_table.outcome_of(engine, command_id)
            rows.append(
                {
                    "name": name,
                    "command_id": command_id,
                    "handled_at": handled_at.isoformat() if handled_at else None,
                    "outcome": outcome or ("waiting for the service" if not handled_at else ""),
                }
            )
    finally:
        for _, engine, _ in sent:
            engine.dispose()
    if args.json:
        print_json(rows)
    else:
        print_table(
            ["Database", "Command", "Handled at", "Outcome"],
            [[r["name"], r["command_id"], _local(r["handled_at"]), r["outcome"]] for r in rows],
        )
    if args.wait and any(r["handled_at"] is None for r in rows):
        return exit_codes.NOT_ALL_RUNNING
    return exit_codes.OK


def _local(handled_at: str | None) -> str:
    return local_text(datetime.fromisoformat(handled_at)) if handled_at else "-"
