"""``email-service``: the one entry point of the Practice Email Service.

Every command: ``--help``; a one-line reason and a non-zero exit on bad input;
tables for people and ``--json`` for programs. ``--config FILE`` comes before the
command and applies to every command.

Only the module of the command being run is imported (``COMMANDS``): ``status`` on a
workstation must not pay for the web server, the mail libraries or the actors
(``bench/cli_latency.py`` measures it). A closed output pipe (``... | head``) ends the
command quietly with ``exit_codes.BROKEN_PIPE``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import select
import sys
from collections.abc import Sequence
from typing import NoReturn

from config import ConfigError, load_settings, mask_url
from events.errors import CorruptEventError, EventLogError
from supervisor import exit_codes
from supervisor.commands.common import CliError, printable

PROG = "email-service"

COMMANDS: dict[str, str] = {
    "serve": "serve",
    "demo": "demo",
    "databases": "databases",
    "db": "db_init",
    "login-check": "login_check",
    "setup": "setup",
    "status": "status",
    "diagnostics": "status",
    "restart": "restart",
    "mail": "mail",
    "events": "events_log",
    "key": "key",
}
"""Each command and the module of ``supervisor.commands`` that registers and runs it,
in the order ``--help`` lists them."""

_GLOBAL_WITH_VALUE = frozenset({"--config"})


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says what is wrong."""

    def error(self, message: str) -> NoReturn:
        code = exit_codes.USAGE
        self.exit(
            code,
            f"{self.prog}: error: {message} (see --help) "
            f"(exit {code} {exit_codes.name_of(code)})\n",
        )


def command_of(argv: Sequence[str]) -> str | None:
    """Return the command named in ``argv`` (skipping the global options), or None. Pure."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the command line's parser: every command, or only the command ``only``.

    With ``only`` (a name in ``COMMANDS``) just that command's module is imported.
    """
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
    wanted = [COMMANDS[only]] if only in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in wanted:
        importlib.import_module(f"supervisor.commands.{name}").register(sub)
    return parser


def _first_line(text: str) -> str:
    return mask_url(text.strip().splitlines()[0] if text.strip() else text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (``sys.exit`` is the caller's).

    Every non-zero exit says why in one line, ending with the code and its name
    (``... (exit 75 TREE_FAILED)``), on standard error; except a closed output pipe
    (``... | head``), which ends quietly, as standard tools do.
    """
    tolerant_output()
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_of(arguments))
    args = parser.parse_args(arguments)
    code, reason = _run(args)
    if code not in (exit_codes.OK, exit_codes.BROKEN_PIPE):
        _say_exit(code, reason or exit_codes.meaning_of(code))
    return code


def tolerant_output(streams: Sequence[object] | None = None) -> None:
    """Make standard output and error show a character their encoding lacks as an escape
    (``\u0142``) instead of failing the command.

    A Windows console or a redirected output is written in the code page (often cp1252),
    which lacks most of the world's letters: a practice named ``Gabinet Łódź`` would end
    a table with ``UnicodeEncodeError``. Where the encoding is UTF-8 nothing changes.
    """
    for stream in (sys.stdout, sys.stderr) if streams is None else streams:
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            # A closed or unusual stream is left as it is.
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def _run(args: argparse.Namespace) -> tuple[int, str | None]:
    """Run the command; return its exit code and, for a failure, why (None: say the code)."""
    try:
        settings = load_settings(args.config)
        code: int = args.handler(args, settings)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then seen below
        return code, None
    except CliError as exc:
        return exc.code, str(exc)
    except ConfigError as exc:
        return exit_codes.CONFIG, str(exc)
    except CorruptEventError as exc:
        return exit_codes.DATA_ERROR, f"{exc} (replay with --skip-corrupt to go on past it)"
    except EventLogError as exc:
        return exit_codes.DATA_ERROR, str(exc)
    except _database_errors() as exc:
        return exit_codes.UNAVAILABLE, f"database error: {_first_line(_database_message(exc))}"
    except KeyboardInterrupt:
        return exit_codes.INTERRUPTED, "interrupted (Ctrl-C)"
    except BrokenPipeError as exc:
        if _stdout_gone():
            return _pipe_closed(), None
        return _internal_error(args.debug, exc)
    except Exception as exc:
        return _internal_error(args.debug, exc)


def _database_errors() -> tuple[type[Exception], ...]:
    """SQLAlchemy's errors, once a command has imported SQLAlchemy (none can be raised
    before): ``status`` on a SQLite practice never imports it (``bench/cli_latency.py``)."""
    module = sys.modules.get("sqlalchemy.exc")
    return () if module is None else (module.SQLAlchemyError,)


def _database_message(exc: Exception) -> str:
    """A database error's text: the driver's own, for one that came from the driver."""
    dbapi_error = sys.modules["sqlalchemy.exc"].DBAPIError
    return str(exc.orig) if isinstance(exc, dbapi_error) else str(exc)


def _internal_error(debug: bool, exc: Exception) -> tuple[int, str]:
    if debug:
        raise exc
    return (
        exit_codes.SOFTWARE,
        f"internal error: {type(exc).__name__}: {_first_line(str(exc))} (--debug shows more)",
    )


def _say_exit(code: int, reason: str) -> None:
    # Standard error is the log of a command that logs (``serve`` under systemd: the
    # journal), so one line there is both; ``serve`` also records why in the event log
    # (``ServiceStopping``).
    _say(f"{_one_line(reason)} (exit {code} {exit_codes.name_of(code)})")


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) or text


def _stdout_gone() -> bool:
    """Return whether stdout is a pipe nobody reads any more (not some other broken pipe).

    A pipe whose reader closed polls as ``POLLERR``; where ``poll`` is missing, a flush
    that fails says the same.
    """
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, 0)
        return any(mask & select.POLLERR for _, mask in poller.poll(0))
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return True
    return False


def _pipe_closed() -> int:
    """End quietly after the reader of our output went away (``... | head``).

    Whatever is still buffered for stdout can never be written: point stdout at
    ``/dev/null`` so the interpreter's flush at exit does not fail a second time.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (a test's capture): nothing to flush
        pass
    return exit_codes.BROKEN_PIPE


def _say(message: str) -> None:
    print(f"{PROG}: {printable(message)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
