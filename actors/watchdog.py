"""The watchdog actor: notices mailboxes that make no progress.

It follows the event log (it does not ask the mailboxes: a hung mailbox cannot
answer), folds each database's liveness (``events.projections.liveness``), reads the
live incarnations' beat counts (``progress``, from ``actors.fence``) and, every tick,
judges them by ``supervisor.hang_rule``: it appends ``CheckInMissed`` for a mailbox
that showed no progress for longer than ``hang_after_seconds`` and tells the
supervisor, which replaces that incarnation. A tick that came late because the whole
process was paused gives every mailbox a fresh deadline instead (logged at WARNING).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pykka

from actors.messages import MailboxFailed
from actors.periodic import PeriodicActor
from actors.scheduler import Scheduler
from events.clock import Clock
from events.projections.liveness import LIVENESS_TYPES, Liveness, apply_liveness
from events.store import ANY, EventStore
from events.types import CheckInMissed, db_of, stream_for
from supervisor.hang_rule import Progress, judge

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchdogDeps:
    """What the watchdog is given."""

    store: EventStore
    clock: Clock
    scheduler: Scheduler
    tick_seconds: float
    hang_after_seconds: float
    supervisor: pykka.ActorRef[Any]
    progress: Callable[[], Progress] = field(default=dict)
    """The live incarnations' beat counts (``IncarnationRegistry.progress``)."""


class WatchdogActor(PeriodicActor):
    """Follows the log; reports hung mailboxes."""

    def __init__(self, deps: WatchdogDeps, after_seq: int = 0) -> None:
        super().__init__(deps.scheduler)
        self._deps = deps
        self._after = after_seq
        self._live: dict[str, Liveness] = {}
        self._last_tick: datetime | None = None

    def tick(self) -> float:
        self._check()
        return self._deps.tick_seconds

    def _follow(self) -> None:
        store = self._deps.store
        for chunk in store.read_chunks(self._after):
            wanted = [row for row in chunk if row[3] in LIVENESS_TYPES]
            for r in store.codec.decode_chunks([wanted]):
                db = db_of(r.stream)
                if db is None:
                    continue
                state = apply_liveness(self._live.get(db), r)
                if state is None:
                    self._live.pop(db, None)
                else:
                    self._live[db] = state
            self._after = chunk[-1][0]

    def _check(self) -> None:
        """Read what is new in the log and the beats, then report each hung mailbox once."""
        d = self._deps
        self._follow()
        now = d.clock.now()
        previous, self._last_tick = self._last_tick, now
        verdict = judge(
            self._live, d.progress(), now, previous, d.tick_seconds, d.hang_after_seconds
        )
        self._live = verdict.states
        if verdict.paused and previous is not None:
            late = (now - previous).total_seconds() - d.tick_seconds
            log.warning(
                "the watchdog's tick came %.0f s late: the process was paused (or the clock "
                "jumped); every mailbox gets a fresh deadline",
                late,
            )
        for db, incarnation, silent in verdict.hung:
            log.warning(
                "%s incarnation %d made no progress for %.0f s: hung", db, incarnation, silent
            )
            d.store.append(stream_for(db), ANY, [CheckInMissed(incarnation, silent)])
            self._live[db] = self._live[db]._replace(reported=True)
            d.supervisor.tell(
                MailboxFailed(db, incarnation, "hung", f"no progress for {silent:.0f} s")
            )
