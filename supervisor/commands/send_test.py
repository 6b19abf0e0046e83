"""``email-service mail send-test --db NAME --to ADDRESS [--wait SECONDS]``.

Queues one test message in the practice's outbox the way the practice software queues
mail (``supervisor.test_message``), so the running service sends it exactly as it sends
the practice's own; waits for the outcome and prints what the mail server answered.

Exit status: 0 sent; ``SEND_FAILED`` (1) the service failed it (the server refused it:
its words are printed); ``STILL_QUEUED`` (75, sysexits' EX_TEMPFAIL: try later) when it
was not sent within the wait (a deferral, a server that does not answer, or no service
running); the usual codes for bad input (2), a missing database (66) or one that cannot
be reached (69).
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from config import Settings
from supervisor import exit_codes
from supervisor.commands.common import CliError, print_json, printable
from supervisor.commands.databases import add_timeout, practice_database
from supervisor.discovery import error_line
from supervisor.setup.answers import AnswerError, check_address
from supervisor.setup.store import read_row
from supervisor.test_message import (
    TestOutcome,
    describe,
    queue_test_message,
    wait_for_outcome,
)

SEND_FAILED = 1  # the service failed the message: the server refused it
STILL_QUEUED = 75  # not sent within the wait (EX_TEMPFAIL)
DEFAULT_WAIT = 60.0

OUTCOME_CODES = {"sent": exit_codes.OK, "failed": SEND_FAILED, "queued": STILL_QUEUED}


def _address(text: str) -> str:
    try:
        return check_address(text)
    except AnswerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _wait(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 to 3600)")
    return value


def register(sub: Any) -> None:
    """Add ``mail send-test`` to the ``mail`` subcommands ``sub``."""
    parser = sub.add_parser(
        "send-test",
        help="send one test message through the practice's outbox and show the answer",
        description="Queue one test email to ADDRESS in the practice database's outbox, "
        "exactly as the practice software queues its mail, so the running service sends "
        "it with the practice's own settings; wait for the outcome (--wait, "
        f"{DEFAULT_WAIT:g} s) and print what the mail server answered. Exit status 0 "
        f"sent, {SEND_FAILED} failed (refused), {STILL_QUEUED} still queued after the wait "
        "(it stays in the outbox and goes out later). See docs/mail.md.",
    )
    parser.add_argument("--db", metavar="NAME", required=True, help="the practice database")
    parser.add_argument(
        "--to", metavar="ADDRESS", required=True, type=_address, help="who gets the test"
    )
    parser.add_argument(
        "--wait",
        metavar="SECONDS",
        type=_wait,
        default=DEFAULT_WAIT,
        help=f"how long to wait for the outcome ({DEFAULT_WAIT:g}; 0: queue and return)",
    )
    add_timeout(parser)
    parser.add_argument("--json", action="store_true", help="print JSON for programs")
    parser.set_defaults(handler=run_send_test)


def run_send_test(args: argparse.Namespace, settings: Settings) -> int:
    info = practice_database(settings, args.db, timeout=args.timeout)
    if not info.eligibility.eligible:
        raise CliError(
            f"the email service does not serve {args.db!r} ({info.eligibility.reason}), so a "
            "test message would never be sent"
        )
    try:
        row = read_row(info.url) or {}
        from_address = str(row.get("from_address") or "")
        host = str(row.get("smtp_host") or "")
        if not from_address or not host:
            raise CliError(
                f"{args.db!r} has no sender address or SMTP server yet: set it up first "
                f"(email-service setup --db {args.db!r})"
            )
        row_id = queue_test_message(info.url, args.to, info.practice_name or args.db, from_address)
        outcome = wait_for_outcome(info.url, row_id, args.to, args.wait)
    except SQLAlchemyError as exc:
        raise CliError(
            f"cannot send a test message in {args.db!r}: {error_line(exc, info.url)}",
            exit_codes.UNAVAILABLE,
        ) from None
    if args.json:
        print_json([_json(outcome)])
    else:
        for line in describe(outcome, f"{host}:{row.get('smtp_port')}", args.db):
            print(printable(line))  # the server's words and the address, escaped
    return OUTCOME_CODES.get(outcome.state, SEND_FAILED)


def _json(outcome: TestOutcome) -> dict[str, Any]:
    def utc(value: Any) -> str | None:
        return None if value is None else value.isoformat() + "Z"

    return {
        "id": outcome.row_id,
        "status": outcome.state,
        "to_addrs": outcome.to,
        "message_id": outcome.message_id,
        "attempts": outcome.attempts,
        "last_error": outcome.last_error,
        "sent_at": utc(outcome.sent_at),
        "next_attempt_at": utc(outcome.next_attempt_at),
    }
