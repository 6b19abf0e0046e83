"""The service's log line: ISO 8601 time with the local offset, level, logger, message.

Under systemd the journal stamps every line itself, but a Windows service wrapper
(WinSW, NSSM) writes standard error to a file as it comes: without a time in the line
such a log cannot say when anything happened. The offset is the local one at that
moment (``+01:00`` in summer in London), so lines either side of a clock change still
sort and compare. Pure formatting; the handler is ``supervisor.commands.serve``'s.
"""

from __future__ import annotations

import logging
from datetime import datetime

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LocalIsoFormatter(logging.Formatter):
    """``logging.Formatter`` whose ``asctime`` is ISO 8601 to the millisecond with the
    local UTC offset: ``2026-03-29T01:59:59.123+00:00``."""

    def __init__(self) -> None:
        super().__init__(LINE_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return (
            datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")
        )
