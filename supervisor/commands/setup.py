"""``email-service setup --db NAME``: the Email Setup Wizard.

In a terminal it asks (``supervisor.setup.wizard``): the current values are the defaults,
passwords are typed without being shown. Without a terminal on standard input, or with
``--no-input``, it is driven by flags named after the ``email_settings`` columns; a
password comes only from the environment variable named by ``--smtp-password-env``,
``--imap-password-env`` or ``--sms-password-env`` (never from a flag's value: a
``--smtp-password`` flag is refused without repeating what followed it). Sign-in with
Microsoft 365 or Google has flags named after its columns (``--smtp-auth``,
``--imap-auth``, ``--oauth-provider``, ``--oauth-flow``, ``--oauth-tenant``,
``--oauth-client-id``, ``--oauth-account``, ``--oauth-expires-at``); its secrets come from
``--oauth-client-secret-env`` and ``--oauth-refresh-token-env``. The connection test signs
in first, as the service does. Either way every
enabled connection is tested with the self-test's probes before anything is saved;
``--save`` saves when every test passed, ``--save --force`` even when one failed.

Exit status: 0 when the settings were saved, or every test passed; ``TESTS_FAILED`` (1)
when a test failed and nothing was saved; the usual codes for bad input (2), a database
that is not there (66) or cannot be reached (69). ``docs/setup.md`` is the guide.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from actors.mail.oauth import OAuthEndpoints
from actors.mail.settings import (
    IMAP_AUTH_CHOICES,
    OAUTH_FLOWS,
    OAUTH_PROVIDERS,
    SECURITY_CHOICES,
    SMTP_AUTH_CHOICES,
)
from config import Settings
from config.secret_box import SecretError
from supervisor import exit_codes
from supervisor.commands.common import CliError, print_json
from supervisor.commands.databases import add_timeout, discover_or_fail, practice_database
from supervisor.commands.key import writing_secrets
from supervisor.discovery import DatabaseInfo, error_line
from supervisor.setup.answers import AnswerError, parse_expiry
from supervisor.setup.checks import CheckResult, ProbeChecker
from supervisor.setup.draft import build_draft, lenient_settings
from supervisor.setup.overview import first_screen
from supervisor.setup.prompt import TerminalPrompt, WizardAborted
from supervisor.setup.providers import provider_keys
from supervisor.setup.sign_in_flow import ProviderSignIns
from supervisor.setup.store import read_row, read_saved, save_settings
from supervisor.setup.wizard import Outcome, Wizard, result_lines, run_unattended
from supervisor.test_message import (
    describe,
    queue_test_message,
    wait_for_outcome,
    wait_for_restart,
)

TESTS_FAILED = 1  # a connection test failed and nothing was saved
TEST_WAIT_SECONDS = 60.0  # how long the wizard waits for its test message's outcome

# flag dest -> email_settings column, for the flags that carry a value as written
_TEXT_FLAGS = (
    "from_address",
    "from_name",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_username",
    "imap_host",
    "imap_port",
    "imap_security",
    "imap_username",
    "imap_folder",
    "imap_after_import",
    "sms_gateway",
    "sms_username",
    "sms_from",
    "sms_region",
    "smtp_auth",
    "imap_auth",
    "oauth_provider",
    "oauth_flow",
    "oauth_tenant",
    "oauth_client_id",
    "oauth_account",
    "oauth_expires_at",
)
# flag dest -> (the column it fills, the flag's spelling)
_PASSWORD_ENV_FLAGS = {
    "smtp_password_env": ("smtp_password", "--smtp-password-env"),
    "imap_password_env": ("imap_password", "--imap-password-env"),
    "sms_password_env": ("sms_password", "--sms-password-env"),
    "oauth_client_secret_env": ("oauth_client_secret", "--oauth-client-secret-env"),
    "oauth_refresh_token_env": ("oauth_refresh_token", "--oauth-refresh-token-env"),
}


class _RefusePassword(argparse.Action):
    """A ``--*-password`` flag: refused, and what followed it is never repeated."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        env_flag = f"{option_string}-env"
        parser.error(
            f"{option_string} is not accepted: a secret on the command line is visible "
            f"to other users of this computer; put it in an environment variable and name "
            f"that with {env_flag} VARIABLE, or run the wizard in a terminal to type it"
        )


def _port(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return int(text)


def register(subparsers: Any) -> None:
    """Add the ``setup`` command."""
    parser = subparsers.add_parser(
        "setup",
        help="the Email Setup Wizard: set up, test and save one database's mail settings",
        description="Set up how the practice database NAME sends and receives email and "
        "SMS: asks in a terminal (current values as defaults, passwords hidden), or takes "
        "the flags below without one (or with --no-input). Each enabled connection is "
        "tested before anything is saved. Without a terminal, --save saves when every "
        "test passed and --save --force even when one failed; the exit status is 1 when "
        "a test failed and nothing was saved. Passwords come from a prompt or from the "
        "environment variable named by --smtp-password-env/--imap-password-env/"
        "--sms-password-env, never from a flag's value; so do the sign-in secrets "
        "(--oauth-client-secret-env, --oauth-refresh-token-env). Microsoft 365 and Google "
        "are signed in to with OAuth 2.0: in a terminal the wizard says which way is "
        "recommended, prints what an administrator does once, and runs a person's sign-in "
        "(a device code for Microsoft, a browser for Google; both work over SSH). "
        "See docs/setup.md.",
        allow_abbrev=False,
    )
    parser.add_argument("--db", metavar="NAME", required=True, help="the practice database")
    parser.add_argument(
        "--no-input", action="store_true", help="ask nothing, even in a terminal: use the flags"
    )
    parser.add_argument(
        "--save", action="store_true", help="without a terminal: save when every test passed"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="allow saving settings that failed a test (with --save, or offered in the wizard)",
    )
    parser.add_argument(
        "--provider",
        choices=provider_keys(),
        help="fill in this provider's servers (for an address on the practice's own "
        "domain, e.g. gmail for Google Workspace, office365 for Microsoft 365)",
    )
    add_timeout(parser)
    parser.add_argument("--json", action="store_true", help="print JSON test results for programs")

    sender = parser.add_argument_group("sender")
    sender.add_argument("--from-address", metavar="ADDRESS", help="the practice's email address")
    sender.add_argument("--from-name", metavar="NAME", help="the sender name patients see")

    smtp = parser.add_argument_group("sending (SMTP)")
    smtp.add_argument("--smtp-host", metavar="HOST")
    smtp.add_argument("--smtp-port", metavar="PORT", type=_port)
    smtp.add_argument("--smtp-security", choices=SECURITY_CHOICES)
    smtp.add_argument("--smtp-username", metavar="USER", help="empty: no log-in")
    smtp.add_argument(
        "--smtp-password-env", metavar="VARIABLE", help="environment variable holding the password"
    )
    smtp.add_argument("--smtp-password", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS)

    imap = parser.add_argument_group("receiving (IMAP)")
    imap.add_argument(
        "--imap",
        dest="imap_enabled",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="import incoming email over IMAP, or not",
    )
    imap.add_argument("--imap-host", metavar="HOST")
    imap.add_argument("--imap-port", metavar="PORT", type=_port)
    imap.add_argument("--imap-security", choices=SECURITY_CHOICES)
    imap.add_argument("--imap-username", metavar="USER")
    imap.add_argument(
        "--imap-password-env", metavar="VARIABLE", help="environment variable holding the password"
    )
    imap.add_argument("--imap-password", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS)
    imap.add_argument("--imap-folder", metavar="FOLDER", help="the folder imported (INBOX)")
    imap.add_argument("--imap-after-import", metavar="ACTION", help="keep, delete or move:FOLDER")

    sms = parser.add_argument_group("text messages (SMS)")
    sms.add_argument(
        "--sms",
        dest="sms_enabled",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send SMS, or not",
    )
    sms.add_argument("--sms-gateway", metavar="GATEWAY", help="see docs/sms.md")
    sms.add_argument("--sms-username", metavar="USER", help="an HTTP gateway's account")
    sms.add_argument(
        "--sms-password-env", metavar="VARIABLE", help="environment variable holding the password"
    )
    sms.add_argument("--sms-password", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS)
    sms.add_argument("--sms-from", metavar="SENDER", help="an HTTP gateway's sender")
    sms.add_argument(
        "--sms-region", metavar="CC", help="country of numbers without a code, e.g. GB"
    )

    sign_in = parser.add_argument_group(
        "signing in with Microsoft 365 or Google (OAuth 2.0; see docs/setup.md)"
    )
    sign_in.add_argument(
        "--smtp-auth", choices=SMTP_AUTH_CHOICES, help="how sending logs in (default password)"
    )
    sign_in.add_argument(
        "--imap-auth", choices=IMAP_AUTH_CHOICES, help="how receiving logs in (default password)"
    )
    sign_in.add_argument("--oauth-provider", choices=OAUTH_PROVIDERS)
    sign_in.add_argument(
        "--oauth-flow",
        choices=OAUTH_FLOWS,
        help="app: the service signs in as itself (Microsoft client credentials, Google "
        "service account; recommended for Microsoft 365 and Google Workspace); delegated: a "
        "person signed in once and the refresh token is kept",
    )
    sign_in.add_argument(
        "--oauth-tenant", metavar="TENANT", help="Microsoft: the Directory (tenant) ID or domain"
    )
    sign_in.add_argument(
        "--oauth-client-id", metavar="ID", help="the app registration's or OAuth client's ID"
    )
    sign_in.add_argument(
        "--oauth-account",
        metavar="ADDRESS",
        help="the mailbox signed in to (default: from address)",
    )
    sign_in.add_argument(
        "--oauth-expires-at",
        metavar="DATE",
        help="when the client secret (or the sign-in) is known to expire, YYYY-MM-DD; the "
        "status page warns 14 days ahead",
    )
    sign_in.add_argument(
        "--oauth-client-secret-env",
        metavar="VARIABLE",
        help="environment variable holding the client secret (Google service account: the "
        "key file's JSON)",
    )
    sign_in.add_argument(
        "--oauth-client-secret", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS
    )
    sign_in.add_argument(
        "--oauth-refresh-token-env",
        metavar="VARIABLE",
        help="environment variable holding a delegated sign-in's refresh token",
    )
    sign_in.add_argument(
        "--oauth-refresh-token", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS
    )
    parser.set_defaults(handler=run_setup)


def flag_values(args: argparse.Namespace, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the ``email_settings`` columns the flags set (only those given), passwords
    read from the environment variables named. Raises ``CliError`` for a variable that
    is not set (naming the variable, never a value)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for dest in _TEXT_FLAGS:
        value = getattr(args, dest)
        if value is not None:
            values[dest] = value
    if "oauth_expires_at" in values:
        try:
            values["oauth_expires_at"] = parse_expiry(values["oauth_expires_at"])
        except AnswerError as exc:
            raise CliError(f"--oauth-expires-at: {exc}") from None
    for dest in ("imap_enabled", "sms_enabled"):
        if getattr(args, dest) is not None:
            values[dest] = getattr(args, dest)
    for dest, (column, flag) in _PASSWORD_ENV_FLAGS.items():
        variable = getattr(args, dest)
        if variable is None:
            continue
        if variable not in env:
            raise CliError(f"{flag} names {variable}, which is not set in the environment")
        values[column] = env[variable]
    return values


def run_setup(args: argparse.Namespace, settings: Settings) -> int:
    infos = discover_or_fail(settings, timeout=args.timeout)
    info = practice_database(
        settings,
        args.db,
        timeout=args.timeout,
        infos=infos,
        hint="; email-service db init creates it",
    )
    secrets = writing_secrets(settings)  # the key file is made here when it is missing
    row, unreadable = read_saved(info.url, secrets)
    saved, problems = lenient_settings(row or {})
    problems = unreadable + problems
    flags = flag_values(args)
    try:
        draft = build_draft(saved, flags, args.provider)
    except AnswerError as exc:
        raise CliError(f"cannot set up {info.name!r}: {exc}") from None
    checker = ProbeChecker(settings.mail, oauth=settings.oauth)

    def save(new: Any) -> None:
        try:
            save_settings(info.url, new, secrets)
        except SecretError as exc:
            raise CliError(f"{exc}; nothing was saved", exit_codes.CONFIG) from None

    screen = first_screen(settings.service, settings.databases.server_url, infos, info)
    if not args.no_input and sys.stdin.isatty():
        prompt = TerminalPrompt()
        prompt.say("\n".join(screen))
        for problem in problems:
            prompt.say(f"The saved settings have a problem: {problem}.")
        try:
            if not info.eligibility.eligible and not prompt.confirm(
                f"Set up email for {info.name!r} anyway?", False
            ):
                prompt.say("Nothing was saved.")
                return exit_codes.OK
            wizard = Wizard(
                prompt,
                checker,
                save,
                force=args.force,
                timeout_hint=settings.mail.io_timeout_seconds,
                send_test=_test_sender(info) if info.eligibility.eligible else None,
                sign_ins=ProviderSignIns(
                    OAuthEndpoints(settings.oauth, settings.mail.io_timeout_seconds)
                ),
            )
            outcome = wizard.run(draft.settings, draft.provider)
        except WizardAborted as exc:
            raise CliError(f"{exc}; nothing was saved") from None
        except KeyboardInterrupt:
            prompt.say("\nStopped; nothing was saved.")
            raise
        return exit_codes.OK if outcome.saved or outcome.all_passed else TESTS_FAILED

    outcome = run_unattended(
        draft.settings, checker, save, save_requested=args.save, force=args.force
    )
    if args.json:
        print_json([_json_row(r, outcome) for r in outcome.results])
    else:
        _print_unattended(screen, problems, outcome, args)
    return exit_codes.OK if outcome.saved or outcome.all_passed else TESTS_FAILED


def _test_sender(info: DatabaseInfo) -> Callable[[str], list[str]]:
    """The wizard's test message: queued in the outbox, its outcome in words."""

    def send(to: str) -> list[str]:
        row = read_row(info.url) or {}
        print(
            f"Queuing a test message to {to} in the outbox of {info.name!r}; the email "
            f"service sends it (waiting up to {TEST_WAIT_SECONDS:g} s for the answer)...",
            flush=True,
        )
        try:
            # The save asked the service to restart this database's mailbox: a message
            # queued before it did could go out with the old settings.
            wait_for_restart(info.url, TEST_WAIT_SECONDS / 2)
            row_id = queue_test_message(
                info.url, to, info.practice_name or info.name, str(row.get("from_address") or "")
            )
            outcome = wait_for_outcome(info.url, row_id, to, TEST_WAIT_SECONDS)
        except SQLAlchemyError as exc:
            return [f"The test message could not be queued: {error_line(exc, info.url)}"]
        return describe(outcome, f"{row.get('smtp_host')}:{row.get('smtp_port')}", info.name)

    return send


def _json_row(result: CheckResult, outcome: Outcome) -> dict[str, Any]:
    return {
        "component": result.component,
        "ok": result.ok,
        "reason": result.reason or result.note,
        "advice": result.advice,
        "saved": outcome.saved,
    }


def _print_unattended(
    screen: list[str], problems: tuple[str, ...], outcome: Outcome, args: argparse.Namespace
) -> None:
    print("\n".join(screen))
    for problem in problems:
        print(f"The saved settings have a problem: {problem}.")
    print("\nTesting the connections...")
    print("\n".join(result_lines(outcome.results)))
    failed = sum(not r.ok for r in outcome.results)
    if outcome.saved:
        note = f" although {failed} test(s) failed (--force)" if failed else ""
        print(f"\nSaved{note}.")
    elif not args.save:
        print("\nNothing was saved (add --save to save these settings).")
    else:
        print(
            f"\nNothing was saved: {failed} test(s) failed "
            "(correct the settings, or add --force to save them anyway)."
        )
