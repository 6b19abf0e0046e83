"""Retention: which old events the log deletes, and the run that deletes them.

Three kinds of event, each kept for its own time (``[retention]`` settings; EventStoreDB's
``$maxAge`` per stream category, then its scavenge):

- ``steady``: passed self-tests (``SelfTestPassed``), one per database per check-in; they
  say "nothing changed" and are most of the log;
- ``failure``: failed self-tests (``SelfTestFailed``), repeated every check-in while a
  fault lasts;
- ``kept``: everything else: the process's life, discovery, decisions, crashes, hangs,
  commands, mail outcomes, retention's own ``LogPruned``.

Three rules make a deletion safe (``prunable``, pure):

1. only events at or before the stored start-up state's ``seq`` (``events.snapshot``), so
   every reader that starts from it has already folded what goes;
2. never a stream's newest event, nor a lifecycle event the restart policy still reads
   (``events.projections.memory.protected_seqs``; Kafka's "latest per key"), so even a
   fold of the pruned log alone gives the same incarnations and restart decisions;
3. only events older than their kind's cutoff.

``prune`` (the shell) walks the log by ``seq`` with one cursor per kind (stored as the
``retention`` checkpoint, so each run reads only what aged since the last one), deletes in
transactions of ``batch_rows`` rows, and stops after ``max_batches`` so that the caller (the
log keeper actor, or ``email-service events prune``) never holds a thread or the log's
write lock for long. Rows it keeps by rule 2 are passed by the cursor and stay (at most a
few hundred per database: bounded).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgpack

from events.projections.memory import ServiceMemory, protected_seqs
from events.recorded import to_micros
from events.snapshot import follow, load_checkpoint, save_memory
from events.store import ANY, EventStore
from events.types import SERVICE_STREAM, LogPruned

KINDS = ("steady", "failure", "kept")
STEADY_TYPES = frozenset({"SelfTestPassed"})
FAILURE_TYPES = frozenset({"SelfTestFailed"})
CURSORS_CHECKPOINT = "retention"


def kind_of(type_name: str) -> str:
    """Return the retention kind of an event type's name."""
    if type_name in STEADY_TYPES:
        return "steady"
    if type_name in FAILURE_TYPES:
        return "failure"
    return "kept"


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind is kept, in days; raises ValueError for a time that is not > 0."""

    steady_days: float
    failure_days: float
    kept_days: float

    def __post_init__(self) -> None:
        for name in ("steady_days", "failure_days", "kept_days"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0, not {getattr(self, name)}")

    def cutoffs(self, now: datetime) -> dict[str, datetime]:
        """Return, per kind, the time before which its events may go."""
        return {
            "steady": now - timedelta(days=self.steady_days),
            "failure": now - timedelta(days=self.failure_days),
            "kept": now - timedelta(days=self.kept_days),
        }

    @staticmethod
    def all_before(before: datetime) -> dict[str, datetime]:
        """Cutoffs that let every kind go before ``before`` (``events prune --before``)."""
        return dict.fromkeys(KINDS, before)


def prunable(
    seq: int,
    type_name: str,
    recorded_at_us: int,
    *,
    cutoff_us: int,
    covered_seq: int,
    protected: frozenset[int],
) -> bool:
    """Return whether retention may delete this row, by the three rules above. Pure."""
    return seq <= covered_seq and recorded_at_us < cutoff_us and seq not in protected


@dataclass
class PruneReport:
    """What one ``prune`` call did."""

    deleted: int = 0
    batches: int = 0
    done: bool = True  # False: it stopped at max_batches, and there is more to do
    cursors: dict[str, int] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)  # kinds walked to their end


def load_cursors(store: EventStore) -> dict[str, int]:
    """Return the stored cursors (0 for a kind never walked)."""
    stored = store.load_checkpoint(CURSORS_CHECKPOINT)
    cursors = dict.fromkeys(KINDS, 0)
    if stored is not None:
        # A damaged record: walk again from the start, which is safe.
        with contextlib.suppress(Exception):
            cursors.update(msgpack.unpackb(stored[1]))
    return cursors


def save_cursors(store: EventStore, cursors: Mapping[str, int]) -> None:
    """Store the cursors (the checkpoint's ``seq`` is the smallest)."""
    store.save_checkpoint(
        CURSORS_CHECKPOINT, min(cursors.values(), default=0), msgpack.packb(dict(cursors))
    )


def prune(
    store: EventStore,
    cutoffs: Mapping[str, datetime],
    *,
    covered_seq: int,
    protected: frozenset[int],
    cursors: Mapping[str, int],
    batch_rows: int = 500,
    max_batches: int | None = None,
    finished: frozenset[str] = frozenset(),
) -> PruneReport:
    """Delete the prunable events, kind by kind from each kind's cursor; return a report.

    Each batch reads at most ``batch_rows`` rows by ``seq`` and deletes the prunable ones
    in one transaction (``EventStore.delete_events``). Stops after ``max_batches`` batches
    (``done`` False) or when every kind has reached its cutoff or ``covered_seq``. The
    report's ``cursors`` are where to go on from; a crash between batches loses nothing
    (what was deleted is gone, what was not is found again). ``finished`` names the kinds
    a previous call of the same run already walked to their end.
    """
    report = PruneReport(cursors=dict(cursors), finished=set(finished))
    for kind in KINDS:
        if kind in report.finished:
            continue
        cutoff_us = to_micros(cutoffs[kind])
        cursor = report.cursors.get(kind, 0)
        while True:
            if max_batches is not None and report.batches >= max_batches:
                report.done = False
                return report
            # One row first: a kind with nothing old enough costs one row, not a batch.
            peek = [row for chunk in store.read_chunks(cursor, limit=1) for row in chunk]
            if not peek or peek[0][0] > covered_seq or peek[0][4] >= cutoff_us:
                report.finished.add(kind)
                break
            rows = [row for chunk in store.read_chunks(cursor, limit=batch_rows) for row in chunk]
            doomed: list[int] = []
            reached_end = len(rows) < batch_rows
            for seq, _stream, _version, type_name, at_us, _data in rows:
                if seq > covered_seq or at_us >= cutoff_us:
                    reached_end = True
                    break
                cursor = seq
                if kind_of(type_name) == kind and prunable(
                    seq, type_name, at_us, cutoff_us=cutoff_us, covered_seq=covered_seq,
                    protected=protected,
                ):  # fmt: skip
                    doomed.append(seq)
            if doomed:
                report.deleted += store.delete_events(doomed)
            report.batches += 1
            report.cursors[kind] = cursor
            if reached_end:
                report.finished.add(kind)
                break
    return report


@dataclass
class RetentionRun:
    """One retention run in progress: what it may delete, and how far it got."""

    cutoffs: dict[str, datetime]
    covered_seq: int
    protected: frozenset[int]
    cursors: dict[str, int]
    deleted: int = 0
    finished: frozenset[str] = frozenset()


def begin_run(
    store: EventStore, cutoffs: Mapping[str, datetime], memory: ServiceMemory | None = None
) -> tuple[RetentionRun, ServiceMemory]:
    """Bring the start-up memory up to date and store it, then plan a run below it.

    ``memory``: the caller's own (the log keeper's); None reads the stored one. Returns the
    run and the memory saved (whose ``last_seq`` the run may not pass).
    """
    memory = follow(
        store, memory if memory is not None else load_checkpoint(store) or ServiceMemory()
    )
    save_memory(store, memory)
    run = RetentionRun(dict(cutoffs), memory.last_seq, protected_seqs(memory), load_cursors(store))
    return run, memory


def go_on(
    store: EventStore, run: RetentionRun, *, batch_rows: int, max_batches: int | None
) -> bool:
    """Prune up to ``max_batches`` more batches of ``run``; store its cursors; return True
    when the run is over, after appending ``LogPruned`` if it deleted anything."""
    report = prune(
        store,
        run.cutoffs,
        covered_seq=run.covered_seq,
        protected=run.protected,
        cursors=run.cursors,
        batch_rows=batch_rows,
        max_batches=max_batches,
        finished=run.finished,
    )
    run.cursors = report.cursors
    run.finished = frozenset(report.finished)
    run.deleted += report.deleted
    save_cursors(store, run.cursors)
    if not report.done:
        return False
    if run.deleted:
        newest = max(run.cutoffs.values())
        store.append(SERVICE_STREAM, ANY, [LogPruned(run.deleted, newest, run.covered_seq)])
    return True


def run_retention(
    store: EventStore,
    cutoffs: Mapping[str, datetime],
    *,
    batch_rows: int = 500,
    memory: ServiceMemory | None = None,
) -> RetentionRun:
    """Run retention once, to the end: the function the command line and benchmarks call.

    Stores the start-up memory first (``begin_run``), deletes what the three rules allow in
    transactions of ``batch_rows``, records ``LogPruned{count, before, up_to_seq}`` when
    anything went, and returns the run (``deleted``: how many).
    """
    run, _ = begin_run(store, cutoffs, memory)
    while not go_on(store, run, batch_rows=batch_rows, max_batches=20):
        pass
    return run
