"""``email-service login-check --db NAME``: the practice software's warning at log-in.

The same rule as the service's (``supervisor.eligibility``): a practice database the
service does not serve gets "This may not be your real database", one it serves gets
nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

from config import Settings
from supervisor import exit_codes
from supervisor.commands.common import print_json
from supervisor.commands.databases import add_timeout, practice_database
from supervisor.eligibility import LOGIN_WARNING, login_warning


def register(subparsers: Any) -> None:
    """Add the ``login-check`` command."""
    parser = subparsers.add_parser(
        "login-check",
        help=f'print "{LOGIN_WARNING}" for a database that is not eligible',
        description=f'Print "{LOGIN_WARNING}" when the practice database NAME is not '
        "eligible (the service does not send or receive its mail), and nothing when it is. "
        "Both are answers: the exit status is 0. A database that does not exist, has no "
        "practice table or cannot be read is an error (non-zero exit). --json prints "
        "[{name, eligible, warning, reason}] with warning null for an eligible database.",
    )
    parser.add_argument("--db", metavar="NAME", required=True, help="the database's name")
    add_timeout(parser)
    parser.add_argument("--json", action="store_true", help="print JSON for programs")
    parser.set_defaults(handler=run_login_check)


def run_login_check(args: argparse.Namespace, settings: Settings) -> int:
    name: str = args.db
    info = practice_database(settings, name, timeout=args.timeout)
    warning = login_warning(info.eligibility)
    if args.json:
        print_json(
            [
                {
                    "name": info.name,
                    "eligible": info.eligibility.eligible,
                    "warning": warning,
                    "reason": info.eligibility.reason,
                }
            ]
        )
    elif warning is not None:
        print(warning)
    return exit_codes.OK
