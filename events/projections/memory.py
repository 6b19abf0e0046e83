"""What the service remembers from its log at start-up: one pure fold, stored as a checkpoint.

``ServiceMemory`` holds everything the process needs of the log's past when it starts
(DESIGN decisions 2 and 8; Akka Persistence's snapshot, eventsourcing's tracking record):

- ``view``: the replay view (each database's health and place in the tree, the process's
  life): the supervisor's incarnation numbers and "what the log last said", the check-in
  projector's health, ``events replay`` without ``--until``;
- ``histories``: of each database's lifecycle events, only those the supervisor's
  decisions read (``bound_history``): the restarts within the restart window, the newest
  decision and the first start after it (a give-up in force), the newest restart commands,
  the newest start (the incarnation);
  a few events per database however long it has been failing (``window_seconds``: the
  window they are bounded by, None: every restart kept);
- ``counts``: the ``/metrics`` counters (``events.projections.counts``), which must
  survive both a restart of the process and retention;
- ``heads``: each stream's newest ``seq``, which retention never deletes.

``fold_memory(memory, records)`` is pure: ``fold_memory(fold_memory(m, a), b) ==
fold_memory(m, a + b)``. Start-up is then the stored memory plus the events after its
``last_seq``, whatever the length of the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from events.projections.counts import COUNTED, Counts, count_events
from events.projections.service_view import CONSUMED_TYPES, ServiceView, fold
from events.recorded import Recorded
from events.types import (
    DatabaseLost,
    MailboxGaveUp,
    MailboxStarted,
    RestartRequested,
    RestartScheduled,
    db_of,
)

HISTORY_KEPT = 200
"""Lifecycle events the supervisor keeps in memory per served database between decisions
(``trim_history``; each decision also drops those before its window)."""

COMMANDS_KEPT = 10
"""Restart commands (``RestartRequested`` with a command id) kept per database: a command
row read again after a crash, before it was marked, is one of the newest."""

HISTORY_TYPES: frozenset[str] = frozenset(
    t.__name__
    for t in (RestartScheduled, MailboxGaveUp, MailboxStarted, RestartRequested, DatabaseLost)
)
"""The lifecycle events the supervisor's restart decisions read."""

_DECISIONS = (MailboxGaveUp, RestartScheduled, RestartRequested, DatabaseLost)
"""A give-up, or what ends one (``supervisor.restart_policy.give_up_in_force``)."""

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
    window_seconds: float | None = None

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest event folded in (0: none)."""
        return self.view.last_seq


def trim_history(history: list[Recorded]) -> None:
    """Drop the oldest ``HISTORY_KEPT`` once there are more than twice that (in place)."""
    if len(history) > 2 * HISTORY_KEPT:
        del history[:HISTORY_KEPT]


def bound_history(
    history: Sequence[Recorded], window_seconds: float | None
) -> tuple[Recorded, ...]:
    """Return of one database's lifecycle events (oldest first) those its decisions read.

    The supervisor reads a database's history for four things (``supervisor``:
    ``restart_policy``, ``escalation``, ``supervisor_actor._learn``), and keeps:

    - the restarts (``RestartScheduled``) a decision's window can hold: those recorded
      within ``window_seconds`` of the newest one (all of them when it is None); a
      decision at ``now`` (no earlier than the log's newest event) counts those in
      ``(now - within_seconds, now]``, so none older is ever counted while
      ``within_seconds <= window_seconds``;
    - the newest give-up or event that ends one (``MailboxGaveUp``, ``RestartScheduled``,
      ``RestartRequested``, ``DatabaseLost``), and of the starts after it the earliest
      recorded: ``give_up_in_force`` returns that give-up unless a start since it is
      older than the window, which the earliest one answers;
    - the newest ``COMMANDS_KEPT`` restart commands (their ids, so a command row read
      again is not restarted twice);
    - the newest start (``MailboxStarted``): the incarnation the replay view reports and
      the next start numbers from, which a fold of a pruned log alone must still find,
      however long ago the mailbox started.

    Pure, and a projection: ``bound_history(bound_history(a) + b) == bound_history(a + b)``
    (each kept event is kept by the same rule in the longer history), so a fold in parts,
    or of a log that retention pruned down to the kept events, keeps the same events.
    """
    last_decision = -1
    for i in range(len(history) - 1, -1, -1):
        if isinstance(history[i].event, _DECISIONS):
            last_decision = i
            break
    keep: set[int] = set() if last_decision < 0 else {last_decision}
    first_start: int | None = None
    for i in range(last_decision + 1, len(history)):
        r = history[i]
        if isinstance(r.event, MailboxStarted) and (
            first_start is None or r.recorded_at < history[first_start].recorded_at
        ):
            first_start = i
    if first_start is not None:
        keep.add(first_start)
    for i in range(len(history) - 1, -1, -1):
        if isinstance(history[i].event, MailboxStarted):
            keep.add(i)
            break
    restarts = [i for i, r in enumerate(history) if isinstance(r.event, RestartScheduled)]
    if restarts and window_seconds is not None:
        newest = max(history[i].recorded_at for i in restarts)
        since = newest - timedelta(seconds=window_seconds)
        restarts = [i for i in restarts if history[i].recorded_at > since]
    keep.update(restarts)
    commands = [
        i
        for i, r in enumerate(history)
        if isinstance(r.event, RestartRequested) and r.event.command_id is not None
    ]
    keep.update(commands[-COMMANDS_KEPT:])
    return tuple(history[i] for i in sorted(keep))


def narrowed(memory: ServiceMemory, window_seconds: float) -> ServiceMemory:
    """Return ``memory`` with its histories bounded by ``window_seconds``, which must be at
    most its own window (a narrower window keeps a subset of what a wider one kept). Pure."""
    if memory.window_seconds is not None and window_seconds > memory.window_seconds:
        raise ValueError(
            f"a memory bounded by {memory.window_seconds} s cannot serve {window_seconds} s"
        )
    histories = {db: bound_history(h, window_seconds) for db, h in memory.histories.items()}
    return replace(memory, histories=histories, window_seconds=window_seconds)


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
    for db, kept in touched.items():
        histories[db] = bound_history(kept, memory.window_seconds)
    heads = dict(memory.heads)
    for r in records:
        heads[r.stream] = r.seq
    counts = dict(count_events(memory.counts, records))
    return ServiceMemory(view, histories, counts, heads, memory.window_seconds)


def moved_to(
    memory: ServiceMemory, heads: Mapping[str, int], last_seq: int, last_at: datetime | None
) -> ServiceMemory:
    """Return the memory having read rows up to ``last_seq`` (recorded ``last_at``), with the
    streams' newest ``seq``s among them (``heads``), also of rows it did not decode. Pure."""
    new_heads = dict(memory.heads)
    new_heads.update(heads)
    if last_seq <= memory.last_seq:  # the fold already reached it (its last row decoded)
        return replace(memory, heads=new_heads)
    v = memory.view
    view = ServiceView(v.health, v.tree, v.service, last_seq, last_at)
    return replace(memory, view=view, heads=new_heads)


def protected_seqs(memory: ServiceMemory) -> frozenset[int]:
    """The ``seq``s retention must keep: every stream's newest event (Kafka's latest per key)
    and the lifecycle events the restart policy reads (so a fold of the pruned log alone
    still gives the same incarnations and restart decisions)."""
    kept = set(memory.heads.values())
    for history in memory.histories.values():
        kept.update(r.seq for r in history)
    return frozenset(kept)
