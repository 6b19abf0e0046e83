"""``email-service serve``: run the server process until SIGTERM or SIGINT (on Windows,
a console control event: ``supervisor.stop_signals``)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from actors.sqlite_memory import disable_page_cache_preallocation
from config import Settings, mask_url
from supervisor import exit_codes
from supervisor.commands.common import CliError
from supervisor.log_lines import LocalIsoFormatter
from supervisor.open_files import raise_open_file_limit
from supervisor.process_memory import tune_allocator
from supervisor.service import serve_until_stopped


def register(subparsers: Any) -> None:
    """Add the ``serve`` command."""
    parser = subparsers.add_parser(
        "serve",
        help="run the service until SIGTERM/SIGINT",
        description="Run the server process: one mailbox per eligible practice database, a "
        "watchdog and the command reader, under one supervisor. Stops cleanly on SIGTERM or "
        "SIGINT (on Windows: Ctrl-C, which WinSW and NSSM send, Ctrl-Break, the console's "
        "close and shutdown). Speaks the systemd notify protocol when NOTIFY_SOCKET is set. "
        "Logs to standard error, each line starting with its time (ISO 8601, local offset).",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="what to log on standard error (INFO)",
    )
    parser.set_defaults(handler=run_serve)


def configure_logging(level: str) -> None:
    """Log one line per record to standard error, each starting with its time (ISO 8601,
    local offset: ``supervisor.log_lines``), for a Windows wrapper's log file as much as
    for the journal."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LocalIsoFormatter())
    logging.basicConfig(level=getattr(logging, level), handlers=[handler])
    # pykka logs every crash with its traceback at ERROR; the event log already holds it.
    logging.getLogger("pykka").setLevel(logging.CRITICAL)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-connection chatter


def prepare_process() -> None:
    """What the serving process sets before it opens a database or starts a thread."""
    log = logging.getLogger(__name__)
    not_done = disable_page_cache_preallocation()
    if not_done is not None:
        log.info("SQLite keeps its page-cache preallocation: %s", not_done)
    raised = raise_open_file_limit()
    if raised is not None:
        log.info("open-file limit raised from %d to %d", *raised)
    for left in tune_allocator():
        log.info("left as it is: %s", left)


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(args.log_level)
    prepare_process()
    logging.getLogger(__name__).info(
        "serving %s for server %r; event log %s",
        mask_url(settings.databases.server_url),
        settings.service.server_id,
        mask_url(settings.service.event_store),
    )
    outcome = serve_until_stopped(settings)
    if outcome.code != exit_codes.OK:
        raise CliError(outcome.reason or exit_codes.meaning_of(outcome.code), outcome.code)
    return outcome.code
