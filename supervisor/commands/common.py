"""What the commands share: their error type, output helpers, opening the event log."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from config import Settings, mask_url
from supervisor import exit_codes

if TYPE_CHECKING:
    from events.sql_store import SqlEventStore

Handler = Callable[[argparse.Namespace, Settings], int]


class CliError(Exception):
    """Raised when a command cannot do what it was asked; the message is shown as is."""

    def __init__(self, message: str, code: int = exit_codes.USAGE) -> None:
        super().__init__(message)
        self.code = code


def open_event_log(settings: Settings) -> SqlEventStore:
    """Open the configured event log for reading, without creating anything."""
    from events.sql_store import SqlEventStore, sqlite_file_of  # only the log's commands

    url = settings.service.event_store
    path = sqlite_file_of(url)
    if path is not None and not path.exists():
        raise CliError(
            f"no event log at {path} (has the service run here? see service.event_store)",
            exit_codes.NO_INPUT,
        )
    return SqlEventStore(url, create=False)


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time for ``--until``; a time without a zone is UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time; use ISO 8601, e.g. 2026-01-05T09:30 or 2026-01-05 09:30Z"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def print_json(value: Any) -> None:
    """Print ``value`` as JSON on standard output."""
    json.dump(value, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a plain aligned table for people (no colour, so it pipes cleanly)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def masked(url: str) -> str:
    """Return ``url`` fit to show a person."""
    return mask_url(url)
