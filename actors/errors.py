"""Errors as the supervisor reports them: one line, type and message, no traceback."""

from __future__ import annotations


def one_line_error(exc: BaseException | None) -> str:
    """Return ``Type: first line of the message``, for an event or a log line."""
    if exc is None:
        return "unknown error"
    text = str(exc).strip()
    message = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
