"""Liveness of each live mailbox, as the watchdog sees it from the log (pure).

A mailbox shows it is alive by its self-test results (``SelfTestPassed`` or
``SelfTestFailed``: a failing self-test is a live mailbox) and, between them, by its
beats (``supervisor.hang_rule``, which folds those in). ``overdue`` names the
mailboxes that have shown nothing for longer than the limit: stuck in a wait past its
timeout, or in a loop that goes nowhere. Each incarnation is reported once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from events.recorded import Recorded
from events.types import (
    CheckInMissed,
    DatabaseLost,
    MailboxCrashed,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    RestartScheduled,
    SelfTestFailed,
    SelfTestPassed,
)


class Liveness(NamedTuple):
    """The newest sign of life of a database's live incarnation."""

    incarnation: int
    last_sign: datetime
    reported: bool = False
    beats: int = 0
    """The incarnation's beat count when the watchdog last saw it change
    (``supervisor.hang_rule``); the registry starts each incarnation at 0."""


LIVENESS_TYPES = frozenset(
    t.__name__
    for t in (
        MailboxStarted,
        SelfTestPassed,
        SelfTestFailed,
        CheckInMissed,
        MailboxStopped,
        MailboxCrashed,
        MailboxGaveUp,
        RestartScheduled,
        DatabaseLost,
    )
)


def apply_liveness(state: Liveness | None, r: Recorded) -> Liveness | None:
    """Return the liveness after ``r``; None while no incarnation is live."""
    e = r.event
    if isinstance(e, MailboxStarted):
        return Liveness(e.incarnation, r.recorded_at)
    if state is None:
        return None
    if isinstance(e, SelfTestPassed | SelfTestFailed):
        return (
            state._replace(last_sign=r.recorded_at) if e.incarnation == state.incarnation else state
        )
    if isinstance(e, CheckInMissed):
        return state._replace(reported=True) if e.incarnation == state.incarnation else state
    if isinstance(e, MailboxStopped | MailboxCrashed):
        return None if e.incarnation == state.incarnation else state
    if isinstance(e, MailboxGaveUp | RestartScheduled | DatabaseLost):
        return None
    return state


def overdue(
    states: Mapping[str, Liveness], now: datetime, limit_seconds: float
) -> list[tuple[str, int, float]]:
    """Return ``(db, incarnation, seconds silent)`` for each unreported silent mailbox."""
    late = []
    for db, s in states.items():
        silent = (now - s.last_sign).total_seconds()
        if not s.reported and silent > limit_seconds:
            late.append((db, s.incarnation, silent))
    return sorted(late)
