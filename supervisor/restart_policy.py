"""One-for-one restart decisions, as a pure function of one database's events and the time.

The supervisor calls ``decide`` when a database's mailbox has just failed (it crashed,
the watchdog saw a missed check-in, ...) and appends what it returns to that database's
stream as ``RestartScheduled`` or ``MailboxGaveUp``. Because the counters are read back
from those events, a crash loop is still seen after the whole process restarts, and
``events replay`` can explain every restart (``DESIGN.md``, decisions 2 and 9).

A mailbox that gave up is tried again after ``retry_in``; if that retry fails soon
(``give_up_again``) the give-up goes on with the same count, and a new process learns a
give-up still in force from the log (``give_up_in_force``).

Pure: no clock, no randomness, no I/O. ``now`` and the ``jitter`` draw are arguments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from events.recorded import Recorded
from events.types import (
    CheckInMissed,
    DatabaseDiscovered,
    DatabaseIgnored,
    DatabaseLost,
    Event,
    MailboxCrashed,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    RestartRequested,
    RestartScheduled,
)

REQUESTED = "requested"
"""The cause of a restart a person asked for."""


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Restart intensity and backoff for every mailbox (``supervision.*`` settings).

    At most ``max_restarts`` restarts within ``within_seconds``; delays between
    ``backoff_min_seconds`` and ``backoff_max_seconds``. Raises ValueError on
    construction when a value is out of range.
    """

    max_restarts: int
    within_seconds: float
    backoff_min_seconds: float
    backoff_max_seconds: float

    def __post_init__(self) -> None:
        # Written as "not (x > y)" so that NaN is refused too.
        if not self.max_restarts >= 1:
            raise ValueError(f"max_restarts must be at least 1, not {self.max_restarts}")
        if not self.within_seconds > 0:
            raise ValueError(f"within_seconds must be above 0, not {self.within_seconds}")
        if not self.backoff_min_seconds > 0:
            raise ValueError(f"backoff_min_seconds must be above 0, not {self.backoff_min_seconds}")
        # An infinite maximum would make a given-up mailbox never be retried.
        if not (
            math.isfinite(self.backoff_max_seconds)
            and self.backoff_max_seconds >= self.backoff_min_seconds
        ):
            raise ValueError(
                "backoff_max_seconds must be finite and at least backoff_min_seconds "
                f"({self.backoff_min_seconds}), not {self.backoff_max_seconds}"
            )


@dataclass(frozen=True, slots=True)
class Restart:
    """Start the next incarnation after ``delay`` seconds; becomes ``RestartScheduled``."""

    delay: float
    attempt: int
    cause: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Too many restarts within the window; becomes ``MailboxGaveUp``.

    The mailbox stays down and is tried again after ``retry_in`` seconds (see
    ``gave_up_retry_due``), so the database is never left silent.
    """

    restarts: int
    within_seconds: float
    retry_in: float


Decision = Restart | GiveUp

# The events that change what the supervisor does with a mailbox. Others that a
# given-up database's stream still receives (failed check-ins written for it, ...)
# must not hide a give-up, or the slow retry would never come.
_LIFECYCLE: tuple[type[Event], ...] = (
    DatabaseDiscovered,
    DatabaseIgnored,
    DatabaseLost,
    MailboxStarted,
    MailboxStopped,
    MailboxCrashed,
    CheckInMissed,
    RestartRequested,
    RestartScheduled,
    MailboxGaveUp,
)


# What ends a give-up: a new decision about the mailbox, or the database leaving service.
_ENDS_A_GIVE_UP: tuple[type[Event], ...] = (
    RestartScheduled,
    RestartRequested,
    DatabaseLost,
    DatabaseIgnored,
)


def recent_restarts(policy: RestartPolicy, history: Sequence[Recorded], now: datetime) -> int:
    """Count the ``RestartScheduled`` events recorded within ``(now - within_seconds, now]``.

    Events recorded after ``now`` are not counted. Raises ValueError if ``now`` is naive.
    """
    _require_aware(now)
    since = now - timedelta(seconds=policy.within_seconds)
    return sum(
        1 for r in history if isinstance(r.event, RestartScheduled) and since < r.recorded_at <= now
    )


def decide(
    policy: RestartPolicy,
    history: Sequence[Recorded],
    now: datetime,
    jitter: float,
    cause: str,
) -> Decision:
    """Decide what to do about a database's mailbox that has just failed.

    ``history`` is that database's stream, oldest first; ``now`` a timezone-aware time
    from the same clock as ``recorded_at``; ``jitter`` a random draw in [0, 1);
    ``cause`` says why the mailbox failed and is copied into the ``Restart``.

    With ``n`` = ``recent_restarts(policy, history, now)``:

    - ``n >= max_restarts``: ``GiveUp(restarts=n, within_seconds, retry_in=backoff_max)``.
    - ``n == 0``: ``Restart(delay=0.0, attempt=1)``: the first failure restarts at once
      (let it crash).
    - otherwise ``Restart(attempt=n + 1)`` after an exponential backoff that never goes
      below ``backoff_min_seconds`` nor above ``backoff_max_seconds`` (``backoff_delay``):
      with ``base = min(backoff_max, backoff_min * 2 ** (n - 1))``, a draw between
      ``base`` and ``2 * base``; once that would pass the cap, between half the cap
      (but at least ``backoff_min``) and the cap, so mailboxes at the cap still spread.

    The same arguments always give the same decision. Raises ValueError if ``now`` is
    naive or ``jitter`` is outside [0, 1).
    """
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be a draw in [0, 1), not {jitter}")
    count = recent_restarts(policy, history, now)
    if count >= policy.max_restarts:
        return GiveUp(
            restarts=count,
            within_seconds=policy.within_seconds,
            retry_in=policy.backoff_max_seconds,
        )
    if count == 0:
        return Restart(delay=0.0, attempt=1, cause=cause)
    return Restart(delay=backoff_delay(policy, count, jitter), attempt=count + 1, cause=cause)


def backoff_delay(policy: RestartPolicy, count: int, jitter: float) -> float:
    """Return the wait before a restart with ``count >= 1`` restarts already in the window.

    ``base = min(backoff_max, backoff_min * 2 ** (count - 1))``; the wait is drawn
    (``jitter`` in [0, 1)) between ``low = max(backoff_min, min(base, backoff_max / 2))``
    and ``high = min(2 * base, backoff_max)``: the second restart waits between
    ``backoff_min`` and twice that, each later one twice as long, and at the cap between
    half the cap and the cap. Always within [backoff_min, backoff_max]: the names mean
    what they say (the first restart, ``count == 0``, is not a backoff and waits 0 s).
    """
    base = _backoff(policy, count)
    low = max(policy.backoff_min_seconds, min(base, policy.backoff_max_seconds / 2))
    high = min(2 * base, policy.backoff_max_seconds)
    # min()/max() guard the float rounding of low + (high - low) * jitter at the ends.
    return max(low, min(low + (high - low) * jitter, policy.backoff_max_seconds))


def decide_requested(policy: RestartPolicy, history: Sequence[Recorded], now: datetime) -> Restart:
    """Decide a restart a person asked for (``RestartRequested``).

    A human restart always happens at once, even when the intensity limit has been
    reached or the mailbox gave up: ``Restart(delay=0.0, attempt=n + 1,
    cause="requested")``. Its ``RestartScheduled`` still counts toward the window, so
    a crash right after it is judged with it included. Raises ValueError if ``now``
    is naive.
    """
    count = recent_restarts(policy, history, now)
    return Restart(delay=0.0, attempt=count + 1, cause=REQUESTED)


def give_up_again(
    policy: RestartPolicy, gave_up: MailboxGaveUp, retry_started_at: datetime, now: datetime
) -> GiveUp | None:
    """Decide about a mailbox that gave up (``gave_up``), was tried again, and failed at ``now``.

    ``retry_started_at`` is when the retry's incarnation started. If it failed within
    ``within_seconds`` of that, the give-up goes on: ``GiveUp`` with the restarts and
    window the give-up counted (the retry itself is no restart) and ``retry_in`` from
    the current policy. Otherwise it ran long enough to have recovered, and None says
    so: judge the failure with ``decide``. Raises ValueError if ``now`` is naive.
    """
    _require_aware(now)
    if now - retry_started_at >= timedelta(seconds=policy.within_seconds):
        return None
    return GiveUp(
        restarts=gave_up.restarts,
        within_seconds=gave_up.within_seconds,
        retry_in=policy.backoff_max_seconds,
    )


def give_up_in_force(
    policy: RestartPolicy, history: Sequence[Recorded], now: datetime
) -> MailboxGaveUp | None:
    """Return the give-up a database is still under, from its stream (oldest first); or None.

    For a new process, which learns it from the log: the newest decision about the
    mailbox is a ``MailboxGaveUp`` (no restart scheduled or requested since, and the
    database neither lost nor ignored since), and no mailbox started since it would have
    been running for ``within_seconds`` by ``now`` (a retry that long-lived had
    recovered). Stops, crashes and missed check-ins since (a process that shut down or
    died before deciding) change nothing. Raises ValueError if ``now`` is naive.
    """
    _require_aware(now)
    since = now - timedelta(seconds=policy.within_seconds)
    for r in reversed(history):
        e = r.event
        if isinstance(e, MailboxGaveUp):
            return e
        if isinstance(e, MailboxStarted):
            if r.recorded_at <= since:
                return None
        elif isinstance(e, _ENDS_A_GIVE_UP):
            return None
    return None


def gave_up_retry_due(policy: RestartPolicy, history: Sequence[Recorded], now: datetime) -> bool:
    """Say whether a mailbox that gave up should be tried again now.

    True when the newest lifecycle event in ``history`` (oldest first) is a
    ``MailboxGaveUp`` recorded at least ``retry_in`` seconds before ``now``, where
    ``retry_in`` is the smaller of the event's and the policy's ``backoff_max_seconds``
    (a shortened setting takes effect without waiting out the old cadence).

    Lifecycle events are those about the mailbox's life: discovery, started, stopped,
    crashed, check-in missed, restart requested or scheduled, gave up. Events written
    for a given-up database meanwhile (check-ins, self-test results) do not postpone
    the retry, so the database never goes silent. Raises ValueError if ``now`` is naive.
    """
    _require_aware(now)
    newest = next((r for r in reversed(history) if isinstance(r.event, _LIFECYCLE)), None)
    if newest is None or not isinstance(newest.event, MailboxGaveUp):
        return False
    retry_in = min(newest.event.retry_in, policy.backoff_max_seconds)
    return now - newest.recorded_at >= timedelta(seconds=retry_in)


def _backoff(policy: RestartPolicy, count: int) -> float:
    """Return ``min(backoff_max, backoff_min * 2 ** (count - 1))`` for ``count >= 1``."""
    base = policy.backoff_min_seconds
    # Doubling step by step stops at the cap, so a huge count neither loops long nor
    # overflows as 2 ** count would.
    for _ in range(count - 1):
        if base >= policy.backoff_max_seconds:
            break
        base *= 2
    return min(base, policy.backoff_max_seconds)


def _require_aware(now: datetime) -> None:
    # Comparing a naive time with the log's aware times would raise a TypeError far
    # from the mistake; say what is wrong here instead.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, not {now.isoformat()}")
