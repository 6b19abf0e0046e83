"""``email-service databases``: every database on the server, and why it is served or not."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable
from typing import Any

from actors.server_budget import ServerBudgets
from config import Settings
from supervisor import exit_codes
from supervisor.commands.budget_report import budget_lines
from supervisor.commands.common import CliError, masked, print_json, print_table
from supervisor.discovery import (
    DEFAULT_TIMEOUT,
    DatabaseInfo,
    DiscoveryError,
    discover,
    list_databases,
)


def register(subparsers: Any) -> None:
    """Add the ``databases`` command."""
    parser = subparsers.add_parser(
        "databases",
        help="list every database on the server: practice or not, eligible or not, and why",
        description="List every database on the server of databases.server_url, open each "
        "one read-only, and say whether it is a practice database (it has the practice "
        "table) and whether the service serves it (eligible), with the reason. Nothing is "
        "written. --json prints an array of objects with the keys name, practice (the "
        "practice name, or null for a database that is not a practice database), eligible "
        "(true/false) and reason. Under the table: the connection budget on the server "
        "(databases.max_connections, within a quarter of what the server accepts) and how "
        "many connections the running service holds there (asked of its /metrics).",
    )
    add_timeout(parser)
    parser.add_argument("--json", action="store_true", help="print JSON for programs")
    parser.set_defaults(handler=run_databases)


def add_timeout(parser: argparse.ArgumentParser) -> None:
    """Add ``--timeout SECONDS``: how long connecting to one database may take."""
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"seconds allowed for connecting to each database ({DEFAULT_TIMEOUT:g})",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def discover_or_fail(
    settings: Settings,
    *,
    timeout: float,
    only: Callable[[str], bool] | None = None,
    budgets: ServerBudgets | None = None,
) -> list[DatabaseInfo]:
    """Run ``discover`` with the settings; a server that cannot be listed is a ``CliError``
    (exit ``UNAVAILABLE``) whose one line names the server, password masked."""
    try:
        return discover(
            settings.databases.server_url,
            server_id=settings.service.server_id,
            genuine_server_check=settings.service.genuine_server_check,
            timeout=timeout,
            only=only,
            budgets=budgets,
        )
    except DiscoveryError as exc:
        raise CliError(str(exc), exit_codes.UNAVAILABLE) from None


def practice_database(
    settings: Settings,
    name: str,
    *,
    timeout: float,
    infos: list[DatabaseInfo] | None = None,
    hint: str = "",
) -> DatabaseInfo:
    """Return the practice database ``name``, from ``infos`` or found on the server.

    Raises ``CliError``: ``NO_INPUT`` for a database that does not exist (with a close
    name when there is one) or has no practice table (``hint`` is added to that
    reason), ``UNAVAILABLE`` for one that cannot be read.
    """
    if infos is None:
        found = discover_or_fail(settings, timeout=timeout, only=lambda n: n == name)
    else:
        found = [info for info in infos if info.name == name]
    if not found:
        raise CliError(
            f"no database {name!r} on the server{suggest_database(settings, name)}",
            exit_codes.NO_INPUT,
        )
    info = found[0]
    if info.error is not None:
        raise CliError(f"cannot read database {name!r}: {info.error}", exit_codes.UNAVAILABLE)
    if not info.is_practice:
        raise CliError(
            f"database {name!r} is not a practice database (it has no practice table{hint})",
            exit_codes.NO_INPUT,
        )
    return info


def suggest_database(settings: Settings, name: str) -> str:
    """Return "; did you mean 'X'?" for a close name on the server, or ""."""
    try:
        names = list_databases(settings.databases.server_url, timeout=DEFAULT_TIMEOUT)
    except DiscoveryError:
        return ""
    folded = {n.casefold(): n for n in names}
    close = difflib.get_close_matches(name.casefold(), list(folded), n=1)
    return f"; did you mean {folded[close[0]]!r}?" if close else ""


def run_databases(args: argparse.Namespace, settings: Settings) -> int:
    budgets = ServerBudgets(settings.databases.max_connections)  # reads the server's limit
    infos = discover_or_fail(settings, timeout=args.timeout, budgets=budgets)
    if args.json:
        print_json(
            [
                {
                    "name": info.name,
                    "practice": info.practice_name or "" if info.is_practice else None,
                    "eligible": info.eligibility.eligible,
                    "reason": info.eligibility.reason,
                }
                for info in infos
            ]
        )
        return exit_codes.OK
    server = masked(settings.databases.server_url)
    if not infos:
        print(f"No databases on {server}.")
        return exit_codes.OK
    print_table(
        ["Name", "Practice", "Eligible", "Reason"],
        [
            [
                info.name,
                info.practice_name or "",
                "yes" if info.eligibility.eligible else "no",
                info.eligibility.reason,
            ]
            for info in infos
        ],
    )
    practices = sum(info.is_practice for info in infos)
    eligible = sum(info.eligibility.eligible for info in infos)
    check = "on" if settings.service.genuine_server_check else "off"
    print(
        f"\n{len(infos)} database(s) on {server}: {practices} practice database(s), "
        f"{eligible} eligible (Genuine Server Check is {check}, server_id "
        f"{settings.service.server_id!r})."
    )
    for line in budget_lines(settings, budgets.views()):
        print(line)
    return exit_codes.OK
