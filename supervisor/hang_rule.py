"""When a mailbox is hung: a pure rule of what the watchdog saw and of its own clock.

"Hung" means "makes no progress", never "was busy". A mailbox shows progress in two
ways: its self-test results in the log (``events.projections.liveness``), and a beat
count kept in memory by the incarnation registry (``actors.fence``), which the mailbox
raises at every tick, every server reply, every message sent or imported and every
slice of a wait in IDLE. A mailbox sending a long batch to a slow server, or waiting on
a server within its timeouts, beats; one stuck for good does not. Every wait has a
timeout of at most half the limit (``config.loader``: ``mail.io_timeout_seconds`` is at
most ``health.checkin_seconds``, and the limit is two check-in intervals), so silence
beyond the limit means a wait outlived its own timeout, or a loop that goes nowhere.

The watchdog also judges its own clock. It ticks every ``period`` seconds; a tick that
comes later than ``period + limit * PAUSE_FRACTION`` after the previous one means the
whole process was stopped (SIGSTOP, a paused virtual machine, a laptop lid) or the
clock jumped, and every mailbox was stopped with it: they are all equally late, none
of them is hung. Such a tick gives every mailbox a fresh deadline instead of judging
them. A pause shorter than that cannot cause a false hang either: a healthy mailbox is
silent for at most half the limit (one wait), plus at most a quarter for an unseen pause,
which leaves a quarter of the limit for the work between two beats.

Pure: no clock, no I/O; ``now`` and the previous tick's time are arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from events.projections.liveness import Liveness, overdue

PAUSE_FRACTION = 0.25
"""A watchdog tick later than its period plus this part of the limit marks a pause."""

Progress = Mapping[str, tuple[int, int]]
"""``db -> (incarnation, beats)`` of each live mailbox, as the registry counts them."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the watchdog learns from one tick."""

    states: dict[str, Liveness]
    """Each database's liveness, with progress and any fresh deadline taken in."""
    hung: list[tuple[str, int, float]]
    """``(db, incarnation, seconds without progress)`` for each newly hung mailbox."""
    paused: bool
    """Whether this tick came so late that the process itself was paused."""


def was_paused(previous_tick: datetime | None, now: datetime, period: float, limit: float) -> bool:
    """Whether a tick at ``now``, after one at ``previous_tick``, came late by a pause.

    A tick is due ``period`` seconds after the previous one; one later than that by more
    than ``limit * PAUSE_FRACTION`` seconds means the process (or its clock) stood
    still. The first tick (``previous_tick`` None) is never late.
    """
    if previous_tick is None:
        return False
    return (now - previous_tick).total_seconds() > period + limit * PAUSE_FRACTION


def judge(
    states: Mapping[str, Liveness],
    progress: Progress,
    now: datetime,
    previous_tick: datetime | None,
    period: float,
    limit: float,
) -> Verdict:
    """Judge every live mailbox at ``now``; see the module docstring.

    1. A mailbox whose beat count (``progress``, for the same incarnation as its
       liveness) changed since the last tick made progress: its last sign is ``now``.
    2. A tick that came late (``was_paused``): every mailbox's last sign is ``now``,
       and none is hung.
    3. Otherwise every mailbox silent for more than ``limit`` seconds and not reported
       yet is hung (``overdue``).
    """
    paused = was_paused(previous_tick, now, period, limit)
    judged: dict[str, Liveness] = {}
    for db, state in states.items():
        seen = progress.get(db)
        if paused:
            state = state._replace(last_sign=max(state.last_sign, now))
        if seen is not None and seen[0] == state.incarnation and seen[1] != state.beats:
            state = state._replace(last_sign=max(state.last_sign, now), beats=seen[1])
        judged[db] = state
    hung = [] if paused else overdue(judged, now, limit)
    return Verdict(judged, hung, paused)
