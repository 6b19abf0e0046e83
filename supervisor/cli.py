"""``email-service``: the one entry point of the Practice Email Service.

Every command: ``--help``; a one-line reason and a non-zero exit on bad input;
tables for people and ``--json`` for programs. ``--config FILE`` comes before the
command and applies to every command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from config import ConfigError, load_settings, mask_url
from events.errors import CorruptEventError, EventLogError
from supervisor import exit_codes
from supervisor.commands import (
    databases,
    db_init,
    demo,
    events_log,
    login_check,
    mail,
    restart,
    serve,
    setup,
    status,
)
from supervisor.commands.common import CliError, printable

PROG = "email-service"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says what is wrong."""

    def error(self, message: str) -> NoReturn:
        self.exit(exit_codes.USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the command line's parser, every command registered."""
    parser = _Parser(
        prog=PROG,
        description="The Practice Email Service: sends and receives email and SMS for every "
        "eligible practice database on this server, checks itself, and shows every "
        "workstation whether it is working.",
        epilog="Settings: defaults, then --config FILE (or EMAIL_SERVICE_CONFIG), then "
        "EMAIL_SERVICE_<SECTION>_<KEY> variables. See docs/configuration.md.",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML settings file")
    parser.add_argument("--debug", action="store_true", help="show a traceback for internal errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        serve,
        demo,
        databases,
        db_init,
        login_check,
        setup,
        status,
        restart,
        mail,
        events_log,
    ):
        module.register(sub)
    return parser


def _first_line(text: str) -> str:
    return mask_url(text.strip().splitlines()[0] if text.strip() else text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (``sys.exit`` is the caller's)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        code: int = args.handler(args, settings)
        return code
    except CliError as exc:
        _say(str(exc))
        return exc.code
    except ConfigError as exc:
        _say(str(exc))
        return exit_codes.CONFIG
    except CorruptEventError as exc:
        _say(f"{exc} (replay with --skip-corrupt to go on past it)")
        return exit_codes.DATA_ERROR
    except EventLogError as exc:
        _say(str(exc))
        return exit_codes.DATA_ERROR
    except DBAPIError as exc:
        _say(f"database error: {_first_line(str(exc.orig))}")
        return exit_codes.UNAVAILABLE
    except SQLAlchemyError as exc:
        _say(f"database error: {_first_line(str(exc))}")
        return exit_codes.UNAVAILABLE
    except KeyboardInterrupt:
        return exit_codes.INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        _say(f"internal error: {type(exc).__name__}: {_first_line(str(exc))} (--debug shows more)")
        return exit_codes.SOFTWARE


def _say(message: str) -> None:
    print(f"{PROG}: {printable(message)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
