"""What the commands share: their error type, output helpers, opening the event log."""

from __future__ import annotations

import argparse
import json
import re
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
    """Print ``value`` as JSON on standard output: as written where the output is UTF-8,
    with JSON's own ``\\u`` escapes elsewhere (a Windows console's code page would
    otherwise turn a character it lacks into an escape that is not JSON)."""
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    utf8 = encoding in ("utf8", "utf8sig")
    json.dump(value, sys.stdout, indent=2, default=str, ensure_ascii=not utf8)
    sys.stdout.write("\n")


# C0 and C1 control characters, DEL, and the invisible marks that reorder text
# (bidirectional overrides and isolates): what a sender could use to retitle, clear or
# disguise an operator's terminal. Tab and line feed are kept where lines are wanted.
_UNSAFE_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object, *, lines: bool = False) -> str:
    """Return ``value`` as text safe to print on a terminal: every control character
    (ESC, BEL, CR, ...) and text-reordering mark is shown as ``\\xNN``/``\\uNNNN``
    instead of being sent. With ``lines``, tab and line feed are kept. The one helper
    for every human-readable output (tables, ``mail show``, error lines); JSON output
    stays faithful and does not use it."""
    text = str(value)
    return (_UNSAFE_LINES if lines else _UNSAFE_ONE_LINE).sub(_escaped, text)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a plain aligned table for people (no colour, so it pipes cleanly); each cell
    through ``printable``."""
    cells = [[printable(h) for h in headers]] + [
        ["" if c is None else printable(c) for c in r] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def masked(url: str) -> str:
    """Return ``url`` fit to show a person."""
    return mask_url(url)
