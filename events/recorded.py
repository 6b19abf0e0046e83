"""The envelope of an event once it is in the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from events.types import Event


class Recorded(NamedTuple):
    """An event as stored: its global position, stream position and time.

    ``seq`` is the global order of the whole log (1, 2, …, no gaps in one store);
    ``version`` is the position within ``stream`` (1, 2, …); ``recorded_at`` is a
    timezone-aware UTC time from the store's clock.
    """

    seq: int
    stream: str
    version: int
    recorded_at: datetime
    event: Event


class RawRecord(NamedTuple):
    """A stored row before decoding, as the store holds it.

    ``recorded_at_us`` is integer microseconds since the Unix epoch, UTC.
    """

    seq: int
    stream: str
    version: int
    type: str
    recorded_at_us: int
    data: bytes


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(t: datetime) -> int:
    """Return a timezone-aware time as integer microseconds since the epoch."""
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    """Return the UTC time of integer microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=us)
