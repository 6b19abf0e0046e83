"""What the service remembers from its log at start-up: one pure fold, stored as a checkpoint.

``ServiceMemory`` holds everything the process needs of the log's past when it starts
(DESIGN decisions 2 and 8; Akka Persistence's snapshot, eventsourcing's tracking record):

- ``view``: the replay view (each database's health and place in the tree, the process's
  life): the supervisor's incarnation numbers and "what the log last said", the check-in
  projector's health, ``events replay`` without ``--until``;
- ``histories``: each database's recent lifecycle events, the restart policy's input
  (restart counts within the window, a give-up in force), trimmed as the supervisor trims
  them;
- ``counts``: the ``/metrics`` counters (``events.projections.counts``), which must
  survive both a restart of the process and retention;
- ``heads``: each stream's newest ``seq``, which retention never deletes.

``fold_memory(memory, records)`` is pure: ``fold_memory(fold_memory(m, a), b) ==
fold_memory(m, a + b)``. Start-up is then the stored memory plus the events after its
``last_seq``, whatever the length of the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from events.projections.counts import COUNTED, Counts, count_events
from events.projections.service_view import CONSUMED_TYPES, ServiceView, fold
from events.recorded import Recorded
from events.types import (
    DatabaseLost,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    RestartRequested,
    RestartScheduled,
    db_of,
)

HISTORY_KEPT = 200
"""Lifecycle events kept per database for restart decisions (far more than any window needs)."""

HISTORY_TYPES: frozenset[str] = frozenset(
    t.__name__
    for t in (
        RestartScheduled,
        MailboxGaveUp,
        MailboxStarted,
        MailboxStopped,
        RestartRequested,
        DatabaseLost,
    )
)
"""The lifecycle events the supervisor's restart decisions read."""

MEMORY_TYPES: frozenset[str] = (
    CONSUMED_TYPES | HISTORY_TYPES | frozenset(t.__name__ for t in COUNTED)
)
"""The event types ``fold_memory`` looks at; a reader need not decode the others."""


@dataclass(frozen=True)
class ServiceMemory:
    """The fold of the log up to ``view.last_seq``; callers must not mutate its maps."""

    view: ServiceView = field(default_factory=ServiceView)
    histories: Mapping[str, tuple[Recorded, ...]] = field(default_factory=dict)
    counts: Counts = field(default_factory=dict)
    heads: Mapping[str, int] = field(default_factory=dict)

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest event folded in (0: none)."""
        return self.view.last_seq


def trim_history(history: list[Recorded]) -> None:
    """Drop the oldest ``HISTORY_KEPT`` once there are more than twice that (in place)."""
    if len(history) > 2 * HISTORY_KEPT:
        del history[:HISTORY_KEPT]


def fold_memory(memory: ServiceMemory, records: Iterable[Recorded]) -> ServiceMemory:
    """Return the memory after ``records`` (decoded events, in ``seq`` order). Pure."""
    records = list(records)
    if not records:
        return memory
    view = fold(memory.view, (r for r in records if type(r.event).__name__ in CONSUMED_TYPES))
    histories = dict(memory.histories)
    touched: dict[str, list[Recorded]] = {}
    for r in records:
        if type(r.event).__name__ not in HISTORY_TYPES:
            continue
        db = db_of(r.stream)
        if db is None:
            continue
        kept = touched.get(db)
        if kept is None:
            kept = touched[db] = list(histories.get(db, ()))
        kept.append(r)
        trim_history(kept)
    for db, kept in touched.items():
        histories[db] = tuple(kept)
    heads = dict(memory.heads)
    for r in records:
        heads[r.stream] = r.seq
    return ServiceMemory(view, histories, dict(count_events(memory.counts, records)), heads)


def moved_to(
    memory: ServiceMemory, heads: Mapping[str, int], last_seq: int, last_at: datetime | None
) -> ServiceMemory:
    """Return the memory having read rows up to ``last_seq`` (recorded ``last_at``), with the
    streams' newest ``seq``s among them (``heads``), also of rows it did not decode. Pure."""
    new_heads = dict(memory.heads)
    new_heads.update(heads)
    if last_seq <= memory.last_seq:  # the fold already reached it (its last row decoded)
        return ServiceMemory(memory.view, memory.histories, memory.counts, new_heads)
    v = memory.view
    view = ServiceView(v.health, v.tree, v.service, last_seq, last_at)
    return ServiceMemory(view, memory.histories, memory.counts, new_heads)


def protected_seqs(memory: ServiceMemory) -> frozenset[int]:
    """The ``seq``s retention must keep: every stream's newest event (Kafka's latest per key)
    and the lifecycle events the restart policy reads (so a fold of the pruned log alone
    still gives the same incarnations and restart decisions)."""
    kept = set(memory.heads.values())
    for history in memory.histories.values():
        kept.update(r.seq for r in history)
    return frozenset(kept)
