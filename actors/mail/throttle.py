"""``max_per_minute`` as a sliding window of 60 seconds. Pure: times are passed in.

A ``SendLog`` holds the moments (monotonic seconds) messages went out within the last
minute. ``allowance`` says how many may go now, ``next_allowed`` when the next one may;
``record`` returns the log with one more send. ``max_per_minute`` 0 means unlimited.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_SECONDS = 60.0
UNLIMITED = 2**31 - 1
"""What ``allowance`` returns for ``max_per_minute`` 0."""


@dataclass(frozen=True, slots=True)
class SendLog:
    """The send times (monotonic seconds, ascending) still inside the window."""

    times: tuple[float, ...] = ()

    def record(self, now: float, count: int = 1) -> SendLog:
        """Return the log with ``count`` sends at ``now``, older entries pruned."""
        return SendLog(self.recent(now).times + (now,) * count)

    def recent(self, now: float) -> SendLog:
        """Return the log without the sends that left the window by ``now``."""
        cutoff = now - WINDOW_SECONDS
        return SendLog(tuple(t for t in self.times if t > cutoff))


def allowance(max_per_minute: int, log: SendLog, now: float) -> int:
    """Return how many messages may go at ``now`` (``UNLIMITED`` when the limit is 0)."""
    if max_per_minute <= 0:
        return UNLIMITED
    return max(0, max_per_minute - len(log.recent(now).times))


def next_allowed(max_per_minute: int, log: SendLog, now: float) -> float:
    """Return the earliest moment (same scale as ``now``) one more message may go."""
    if allowance(max_per_minute, log, now) > 0:
        return now
    recent = log.recent(now).times
    # The oldest send that must leave the window before one more fits.
    return recent[len(recent) - max_per_minute] + WINDOW_SECONDS
