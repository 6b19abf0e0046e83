"""When the whole process should give up and let the service manager restart it (pure).

Most mailboxes failing at once points at the process (its threads, memory, shared
connections), not at the databases: the supervisor then exits non-zero and the service
manager starts a fresh process. Only **first failures** count toward such a burst: a
failure that the restart policy answers with a restart (not a give-up) while the
database's log shows no restart *for a failure* within the policy's window (a restart
people asked for does not count: it says nothing about the database). A database
already in a crash loop is that database's problem and stays one-for-one (backoff,
give-up, slow retry).

This is what ends a burst that a new process cannot cure: every failure, including the
ones that made up the burst, gets its ``RestartScheduled`` in the log before the process
exits, and the restart counters come from the log. So when the same databases fail again
right after the new process starts, each already has a restart within the window: their
failures are no longer first failures, no burst is seen, and they back off and give up
on their own while the process goes on serving the healthy ones. A crash loop that a
new process does not cure restarts the process once, never for ever (a give-up, too, is
learned from the log: ``restart_policy.give_up_in_force``).

Pure: no clock, no I/O; times are arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from events.recorded import Recorded
from events.types import RestartScheduled
from supervisor.restart_policy import REQUESTED, Decision, Restart

BURST_WINDOW_SECONDS = 10.0
"""How close together first failures must be to make a burst."""

BURST_MIN_DATABASES = 3
"""The fewest databases whose first failures make a burst (one or two never do)."""


def counts_toward_burst(
    decision: Decision, history: Sequence[Recorded], now: datetime, window_seconds: float
) -> bool:
    """Return whether a failure decided as ``decision`` at ``now`` is a first failure.

    ``history`` is the database's stream (oldest first) as the decision saw it, and
    ``window_seconds`` the restart policy's ``within_seconds``. True for a ``Restart``
    when no ``RestartScheduled`` for a failure (any cause but ``requested``) was
    recorded within ``(now - window_seconds, now]``; a give-up is never one.
    """
    if not isinstance(decision, Restart):
        return False
    if decision.attempt == 1:
        return True  # no restart at all within the window: nothing to look through
    since = now - timedelta(seconds=window_seconds)
    return not any(
        isinstance(r.event, RestartScheduled)
        and r.event.cause != REQUESTED
        and since < r.recorded_at <= now
        for r in history
    )


def recent_failures(failures: Mapping[str, datetime], now: datetime) -> dict[str, datetime]:
    """Return the first failures (database -> when) within the last ``BURST_WINDOW_SECONDS``.

    Older ones, and any recorded after ``now``, are left out: the caller keeps the
    result, so its map never grows beyond the databases that failed recently.
    """
    start = now - timedelta(seconds=BURST_WINDOW_SECONDS)
    return {db: t for db, t in failures.items() if start < t <= now}


def crash_burst(failures: Mapping[str, datetime], served: int, now: datetime) -> bool:
    """Return whether most mailboxes had a first failure at once: a fault of the process.

    ``failures`` maps each database to the time of its newest first failure
    (``counts_toward_burst``); ``served`` is how many databases are served. True when,
    within the last ``BURST_WINDOW_SECONDS``, at least ``BURST_MIN_DATABASES``
    databases and more than half of the ``served`` ones had one. A single practice's
    broken set-up never takes the others down.
    """
    start = now - timedelta(seconds=BURST_WINDOW_SECONDS)
    recent = sum(1 for t in failures.values() if start < t <= now)
    return recent >= BURST_MIN_DATABASES and recent * 2 > served
