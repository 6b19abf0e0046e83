"""The watchdog actor: notices mailboxes whose self-test is overdue.

It follows the event log (it does not ask the mailboxes: a hung mailbox cannot
answer), folds each database's liveness (``events.projections.liveness``) and,
every tick, appends ``CheckInMissed`` for a mailbox silent for longer than
``hang_after_seconds`` and tells the supervisor, which replaces that incarnation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from actors.messages import MailboxFailed
from actors.periodic import PeriodicActor
from actors.scheduler import Scheduler
from events.clock import Clock
from events.projections.liveness import LIVENESS_TYPES, Liveness, apply_liveness, overdue
from events.store import ANY, EventStore
from events.types import CheckInMissed, db_of, stream_for

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
    on_failed: Callable[[str], None] = lambda _error: None  # it died (ChildCrashed)


class WatchdogActor(PeriodicActor):
    """Follows the log; reports hung mailboxes."""

    def __init__(self, deps: WatchdogDeps, after_seq: int = 0) -> None:
        super().__init__(deps.scheduler)
        self._deps = deps
        self._after = after_seq
        self._live: dict[str, Liveness] = {}

    def failed(self, error: str) -> None:
        self._deps.on_failed(error)

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
        """Read what is new in the log, then report each silent mailbox once."""
        self._follow()
        now = self._deps.clock.now()
        for db, incarnation, silent in overdue(self._live, now, self._deps.hang_after_seconds):
            log.warning("%s incarnation %d silent for %.0f s: hung", db, incarnation, silent)
            self._deps.store.append(stream_for(db), ANY, [CheckInMissed(incarnation, silent)])
            self._live[db] = self._live[db]._replace(reported=True)
            self._deps.supervisor.tell(
                MailboxFailed(db, incarnation, "hung", f"no self-test for {silent:.0f} s")
            )
