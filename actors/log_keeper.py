"""The log keeper: stores the start-up memory now and then, and runs retention in small steps.

It follows the event log (``events.snapshot.follow``) from the memory the supervisor read
at start, so it never reads the log's past again. Every ``checkpoint_seconds`` it stores
that memory (the next start reads it plus only what is newer); every
``events.stream_snapshots.SNAPSHOT_EVERY`` events of a database's stream it stores that
database's state as a snapshot (where ``events replay --db --until`` starts); every
``prune_every_seconds`` (the first time ``first_prune_after`` seconds after start) it runs
retention (``events.retention``) at most ``BATCHES_PER_TICK`` batches per message, and
comes back ``STEP_SECONDS`` later for the rest: its own thread and inbox are never held
for long, and no mailbox waits on it (appends go through the log's writer thread, which
waits at most one small delete transaction). On stop it stores the memory once more. A
database error is logged and tried again at the next tick (the log busy or its server
away is a fault it expects, not a crash); anything else crashes it, as usual: it is one
of the supervisor's children (``on_failed``: a ``ChildCrashed``, then a restart by
``supervisor.child_policy``), and the new keeper starts from ``latest``, the memory the
dead one last folded. A retention run it was in the middle of starts again from its
first batch (each batch is its own transaction; what was deleted stays deleted).

``latest`` is shared with ``/metrics``, which starts its counters from it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from actors.periodic import PeriodicActor
from actors.scheduler import Scheduler
from events.clock import Clock
from events.projections.memory import ServiceMemory
from events.retention import Retention, RetentionRun, begin_run, go_on
from events.snapshot import follow, save_memory
from events.store import EventStore
from events.stream_snapshots import SnapshotTaker

log = logging.getLogger(__name__)

BATCHES_PER_TICK = 4
"""Delete transactions per message before the keeper lets its inbox and timers in."""
STEP_SECONDS = 0.2
"""Pause between the steps of a retention run."""


class LatestMemory:
    """The newest start-up memory the keeper folded; thread-safe."""

    def __init__(self, memory: ServiceMemory | None = None) -> None:
        self._lock = threading.Lock()
        self._memory = memory or ServiceMemory()

    def get(self) -> ServiceMemory:
        """Return the newest memory."""
        with self._lock:
            return self._memory

    def set(self, memory: ServiceMemory) -> None:
        """Replace the memory (the keeper, after each fold)."""
        with self._lock:
            self._memory = memory


@dataclass(frozen=True)
class LogKeeperDeps:
    """What the keeper is given; ``retention`` None turns pruning off."""

    store: EventStore
    clock: Clock
    scheduler: Scheduler
    checkpoint_seconds: float
    retention: Retention | None
    prune_every_seconds: float
    batch_rows: int
    first_prune_after: float
    latest: LatestMemory
    on_failed: Callable[[str], None] = lambda _error: None  # it died (ChildCrashed)


class LogKeeperActor(PeriodicActor):
    """Follows the log; stores the start-up memory; prunes the log in small steps."""

    def __init__(self, deps: LogKeeperDeps, memory: ServiceMemory) -> None:
        super().__init__(deps.scheduler)
        self._deps = deps
        self._memory = memory
        deps.latest.set(memory)
        start = deps.clock.monotonic()
        self._save_due = start  # at once: the next start reads from here
        self._prune_due = start + deps.first_prune_after
        self._run: RetentionRun | None = None
        self._snapshots = SnapshotTaker(deps.store)

    def failed(self, error: str) -> None:
        self._deps.on_failed(error)

    def tick(self) -> float:
        try:
            return self._keep()
        except SQLAlchemyError as exc:
            # The log busy or away for a while: the next tick tries again from where the
            # memory and the run's cursors are (both only move forward on success).
            log.warning("the log keeper could not read or write the event log: %s", exc)
            return self._deps.checkpoint_seconds

    def _keep(self) -> float:
        d = self._deps
        self._memory = follow(d.store, self._memory, on_chunk=self._snapshots)
        d.latest.set(self._memory)
        now = d.clock.monotonic()
        if now >= self._save_due:
            save_memory(d.store, self._memory)
            self._save_due = now + d.checkpoint_seconds
        if d.retention is not None and (self._run is not None or now >= self._prune_due):
            if self._prune_step(d.retention):
                return STEP_SECONDS
            self._prune_due = d.clock.monotonic() + d.prune_every_seconds
        next_due = min(self._save_due, self._prune_due if d.retention else self._save_due)
        return max(STEP_SECONDS, next_due - d.clock.monotonic())

    def _prune_step(self, retention: Retention) -> bool:
        """Do a few batches of the run (starting one if none); return True if it goes on."""
        d = self._deps
        if self._run is None:
            self._run, self._memory = begin_run(
                d.store, retention.cutoffs(d.clock.now()), self._memory
            )
            self._save_due = d.clock.monotonic() + d.checkpoint_seconds
        if not go_on(d.store, self._run, batch_rows=d.batch_rows, max_batches=BATCHES_PER_TICK):
            return True
        if self._run.deleted:
            log.info("retention deleted %d old events from the log", self._run.deleted)
        self._run = None
        return False

    def on_stop(self) -> None:
        super().on_stop()
        # Best effort: a store already closed (or failing) leaves the last stored memory,
        # which is still right, only older.
        with contextlib.suppress(Exception):
            self._memory = follow(self._deps.store, self._memory)
            save_memory(self._deps.store, self._memory)
