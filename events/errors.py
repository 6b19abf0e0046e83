"""The exceptions of the event log."""

from __future__ import annotations


class EventLogError(Exception):
    """Base of every error raised by the event log."""


class ConcurrencyError(EventLogError):
    """Raised when an append's expected stream version is not the stream's version."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream!r} is at version {actual}, the append expected {expected}"
        )
        self.stream = stream
        self.expected = expected
        self.actual = actual


class CorruptEventError(EventLogError):
    """Raised when a stored record cannot be decoded; names its sequence number."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"event seq {seq}: {reason}")
        self.seq = seq
        self.reason = reason


class UnknownEventTypeError(CorruptEventError):
    """Raised when a stored record names an event type or version this code lacks."""


class StoreClosedError(EventLogError):
    """Raised when appending to a store that has been closed."""
