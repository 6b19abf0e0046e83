"""``email-service status [--db NAME]`` and ``email-service diagnostics --db NAME``.

The workstation's view from the command line: each eligible database's status and
tooltip, read from its own check-in tables (so it tells the truth when the service
process is down); exit 0 when all are running, 1 otherwise. ``diagnostics`` prints the
diagnostic log a workstation shows when its indicator is clicked. Times are shown in this
server's time zone (``supervisor.human_time``); ``--json`` keeps UTC.

``status --db NAME`` on a folder of SQLite practices reads with Python's own ``sqlite3``
(``supervisor.sqlite_status``: the same rows, the same status function) and never
imports SQLAlchemy, which would be most of a workstation's wait; any other case, and any
case that reader does not answer, takes the regular path (discovery, SQLAlchemy).
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from config import Settings
from supervisor import exit_codes, sqlite_status
from supervisor.commands.common import CliError, print_json, print_table
from supervisor.human_time import local_sentence, local_text
from supervisor.status_rule import DatabaseStatus

if TYPE_CHECKING:
    from supervisor.discovery import DatabaseInfo


def register(subparsers: Any) -> None:
    """Add the ``status`` and ``diagnostics`` commands."""
    status = subparsers.add_parser(
        "status",
        help="each eligible database's status, as a workstation shows it",
        description="Show whether email works for each eligible practice database (or one, "
        "with --db), read from the check-ins the service writes into it. Exit status 0 when "
        "all are running, 1 otherwise.",
    )
    status.add_argument("--db", metavar="NAME", help="only this practice database")
    status.add_argument("--json", action="store_true", help="print JSON for programs")
    status.set_defaults(handler=run_status)

    diagnostics = subparsers.add_parser(
        "diagnostics",
        help="the diagnostic log of one database's newest failing check-in",
        description="Print the diagnostic lines a workstation shows when its indicator is "
        "clicked: those of the newest failing check-in of the database.",
    )
    diagnostics.add_argument("--db", metavar="NAME", required=True, help="the practice database")
    diagnostics.add_argument("--json", action="store_true", help="print JSON for programs")
    diagnostics.set_defaults(handler=run_diagnostics)


def _targets(settings: Settings, name: str | None) -> list[DatabaseInfo]:
    from supervisor import discovery

    try:
        infos = discovery.discover(
            settings.databases.server_url,
            server_id=settings.service.server_id,
            genuine_server_check=settings.service.genuine_server_check,
            only=(lambda n: n == name) if name else None,
        )
    except discovery.DiscoveryError as exc:
        raise CliError(str(exc), exit_codes.UNAVAILABLE) from None
    if name:
        if not infos:
            raise CliError(f"no database named {name!r} on the server", exit_codes.NO_INPUT)
        if not infos[0].is_practice:
            raise CliError(f"{name!r} is not a practice database (no practice table)")
        return infos
    eligible = [i for i in infos if i.eligibility.eligible]
    if not eligible:
        raise CliError("no eligible practice database on the server", exit_codes.NO_INPUT)
    return eligible


def read_statuses(settings: Settings, name: str | None) -> list[DatabaseStatus]:
    """Return the status of each eligible database, or of ``name`` alone."""
    grace = timedelta(seconds=settings.health.grace_seconds)
    folder = sqlite_status.sqlite_folder(settings.databases.server_url)
    if name is not None and folder is not None:
        view = sqlite_status.read_status(folder, name, grace)
        if view is not None:
            return [view]
    from supervisor.workstation_view import read_status

    return [read_status(i.name, i.url, grace) for i in _targets(settings, name)]


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    views = read_statuses(settings, args.db)
    if args.json:
        print_json([v.as_json() for v in views])
    else:
        print_table(
            ["Database", "Status", "Last check-in", "Tooltip"],
            [
                [
                    v.name,
                    "running" if v.status.running else "NOT AVAILABLE",
                    local_text(v.status.last_checkin_at) or "-",
                    local_sentence(v.status.tooltip),
                ]
                for v in views
            ],
        )
    return exit_codes.OK if all(v.status.running for v in views) else exit_codes.NOT_ALL_RUNNING


def run_diagnostics(args: argparse.Namespace, settings: Settings) -> int:
    from supervisor.workstation_view import read_diagnostics

    (info,) = _targets(settings, args.db)
    rows = read_diagnostics(info.url)
    if args.json:
        print_json(
            [
                {
                    "logged_at": r.logged_at.isoformat() + "Z",
                    "level": r.level,
                    "component": r.component,
                    "message": r.message,
                }
                for r in rows
            ]
        )
    elif not rows:
        print(f"{info.name}: no diagnostic lines")
    else:
        print_table(
            ["Logged at", "Level", "Component", "Message"],
            [
                [local_text(r.logged_at), r.level, r.component, local_sentence(r.message)]
                for r in rows
            ],
        )
    return exit_codes.OK
