"""Restart decisions for the supervisor's children that are not mailboxes. Pure.

The watchdog, the command reader, the check-in projector, the log keeper, the scheduler's
thread and the status page's HTTP server are restarted by the mailboxes' restart policy
(``supervisor.restart_policy.decide``: the first restart at once, then exponential
backoff with jitter, at most ``max_restarts`` within ``within_seconds``), counted per
child. The counts live in the process, not the log: a child that cannot be kept up
is the process's fault, and giving up on one means the process exits for the service
manager to start a fresh one, with fresh counts.

The HTTP server is the exception: without it only ``/healthz`` and the status page are
missing, while mail goes on, so it never gives up: past the limit it is retried every
``backoff_max_seconds``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from events.recorded import Recorded
from events.types import RestartScheduled
from supervisor.restart_policy import Decision, GiveUp, Restart, RestartPolicy, decide

NEVER_GIVES_UP = frozenset({"http"})
"""Children whose failures never take the process down (only their own page is missing)."""

AT_ONCE = frozenset({"scheduler"})
"""Children restarted without delay: the scheduler's thread runs every timer, the
supervisor's own included, so a restart after a delay would never come. Its timers wait
in its queue meanwhile and none is lost; the restart still counts toward the limit."""


def decide_child(
    policy: RestartPolicy,
    child: str,
    restarts: Sequence[datetime],
    now: datetime,
    jitter: float,
) -> Decision:
    """Decide what to do about ``child``, which has just failed.

    ``restarts`` are the times of its earlier restarts in this process (oldest first);
    ``now`` and ``jitter`` as for ``decide``. A child in ``NEVER_GIVES_UP`` gets
    ``Restart(delay=backoff_max)`` where another would give up; one in ``AT_ONCE`` gets
    its restarts without delay (but gives up all the same).
    """
    history = [
        Recorded(i, f"child:{child}", i, at, RestartScheduled(0.0, "crashed", i))
        for i, at in enumerate(restarts, 1)
    ]
    decision = decide(policy, history, now, jitter, "crashed")
    if isinstance(decision, GiveUp) and child in NEVER_GIVES_UP:
        return Restart(policy.backoff_max_seconds, decision.restarts + 1, "crashed")
    if isinstance(decision, Restart) and child in AT_ONCE:
        return Restart(0.0, decision.attempt, decision.cause)
    return decision
