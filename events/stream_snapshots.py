"""Per-stream snapshots: where ``events replay --db NAME --until T`` starts reading.

The start-up memory (``events.snapshot``) is one checkpoint of the whole service *now*; it
answers a replay up to now, not one up to a time in the past, which would otherwise fold
the database's stream from its first event (100 s for a stream of two million check-ins).
So the log keeper also keeps, per database stream, the state it held every
``SNAPSHOT_EVERY`` events of that stream: a past time then costs at most that many events
after the newest snapshot at or before it.

A stream's snapshots are one checkpoint, named ``stream:`` and a digest of the stream (the
checkpoint table's ``seq`` is the newest snapshot's), holding a msgpack list ``[FORMAT,
entries]`` with one entry ``[at_us, version, seq, health, tree]`` per snapshot, oldest
first, at most ``KEEP`` of them (the oldest dropped first). A database's state depends
only on its own stream, so the whole service's memory at any ``seq`` at or after the
stream's newest event is that stream's state at that event. Anything unreadable is
ignored: a bad snapshot costs time (the fold from the stream's start), never truth.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgpack

from events.projections.memory import ServiceMemory
from events.projections.service_view import ServiceView
from events.projections.tree import TreeEntry
from events.recorded import RawRecord, from_micros, to_micros
from events.snapshot import health_from_state, health_state
from events.store import EventStore
from events.types import db_of

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 10_000
"""Events of one stream between two of its snapshots."""

KEEP = 400
"""Snapshots kept per stream: at 5,800 check-ins a day, about two years."""

FORMAT = 1
"""The layout of a stream's stored snapshots; another number is not read."""

PREFIX = "stream:"


def checkpoint_name(stream: str) -> str:
    """The checkpoint that holds ``stream``'s snapshots: a digest of the stream's name, as
    checkpoint names are at most 100 characters and a database's name may be longer."""
    return PREFIX + hashlib.blake2b(stream.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class StreamStart:
    """Where a replay of one stream up to a time begins: the view after event ``version``
    (at ``seq``) of the stream, holding that stream's database only."""

    view: ServiceView
    version: int


@dataclass
class _Head:
    seq: int = 0
    version: int = 0
    at_us: int = 0
    since_snapshot: int = 0


@dataclass
class StreamMarks:
    """What the keeper has seen of each database stream since that stream's last snapshot.

    ``see(rows)`` takes the raw rows the keeper follows; ``due()`` names the streams that
    have reached ``every`` new events; ``taken(stream)`` starts the count again.
    """

    every: int = SNAPSHOT_EVERY
    _heads: dict[str, _Head] = field(default_factory=dict)

    def see(self, rows: Iterable[Sequence[Any]]) -> None:
        """Count rows (``seq, stream, version, type, recorded_at_us, data``)."""
        heads = self._heads
        for seq, stream, version, _type, at_us, _data in rows:
            head = heads.get(stream)
            if head is None:
                if db_of(stream) is None:
                    continue
                head = heads[stream] = _Head()
            head.seq, head.version, head.at_us = seq, version, at_us
            head.since_snapshot += 1

    def due(self) -> list[str]:
        """The streams with at least ``every`` events since their last snapshot."""
        return [s for s, h in self._heads.items() if h.since_snapshot >= self.every]

    def head(self, stream: str) -> tuple[int, int, int]:
        """``(seq, version, recorded_at_us)`` of the newest event seen in ``stream``."""
        h = self._heads[stream]
        return h.seq, h.version, h.at_us

    def taken(self, stream: str) -> None:
        """The stream's snapshot was stored: count from zero again."""
        self._heads[stream].since_snapshot = 0


class SnapshotTaker:
    """Stores a stream's snapshot each time ``every`` more of its events have been folded:
    give it as ``on_chunk`` to ``events.snapshot.follow``/``read_memory``. The log keeper
    uses one as it follows the log, and start-up one as it reads the log's past, so the
    first start on a long log from an older version makes the snapshots of its history."""

    def __init__(self, store: EventStore, every: int = SNAPSHOT_EVERY) -> None:
        self._store = store
        self._marks = StreamMarks(every)

    def __call__(self, rows: Sequence[RawRecord], memory: ServiceMemory) -> None:
        """Count ``rows`` (already folded into ``memory``); store the snapshots now due."""
        marks = self._marks
        marks.see(rows)
        for stream in marks.due():
            save_stream_snapshot(self._store, memory, stream, marks.head(stream))
            marks.taken(stream)


def _entry(memory: ServiceMemory, stream: str, head: tuple[int, int, int]) -> list[Any] | None:
    db = db_of(stream)
    if db is None:
        return None
    seq, version, at_us = head
    view = memory.view
    h = view.health.get(db)
    t = view.tree.get(db)
    return [
        at_us,
        version,
        seq,
        None if h is None else health_state(h),
        None if t is None else list(t),
    ]


def _entries(store: EventStore, stream: str) -> list[list[Any]]:
    stored = store.load_checkpoint(checkpoint_name(stream))
    if stored is None:
        return []
    try:
        state = msgpack.unpackb(stored[1], raw=False, strict_map_key=False)
        if not isinstance(state, list) or len(state) != 2 or state[0] != FORMAT:
            raise ValueError(f"not stream snapshots of format {FORMAT}")
        entries: list[list[Any]] = state[1]
        return entries
    except Exception as exc:  # damaged: start the stream's snapshots again
        log.warning("the snapshots of %s cannot be read (%s); starting them again", stream, exc)
        return []


def save_stream_snapshot(
    store: EventStore, memory: ServiceMemory, stream: str, head: tuple[int, int, int]
) -> None:
    """Add the state of ``stream``'s database in ``memory`` (whose ``last_seq`` is at or
    after ``head``, the stream's newest event) to the stream's stored snapshots."""
    entry = _entry(memory, stream, head)
    if entry is None:
        return
    entries = [e for e in _entries(store, stream) if e[2] < entry[2]]
    entries.append(entry)
    entries = entries[-KEEP:]
    packed: bytes = msgpack.packb([FORMAT, entries], use_bin_type=True)
    store.save_checkpoint(checkpoint_name(stream), entry[2], packed)


def start_before(store: EventStore, stream: str, until: datetime | None) -> StreamStart | None:
    """The newest stored snapshot of ``stream`` recorded at or before ``until`` (the newest
    of all without one), as a replay's start; None when there is none."""
    db = db_of(stream)
    entries = _entries(store, stream)
    if db is None or not entries:
        return None
    if until is None:
        index = len(entries)
    else:
        index = bisect.bisect_right([e[0] for e in entries], to_micros(until))
    if index == 0:
        return None
    at_us, version, seq, health, tree = entries[index - 1]
    try:
        view = ServiceView(
            {} if health is None else {db: health_from_state(health)},
            {} if tree is None else {db: TreeEntry(*tree)},
            last_seq=seq,
            last_at=from_micros(at_us),
        )
    except Exception as exc:
        log.warning("a snapshot of %s cannot be read (%s); folding the stream", stream, exc)
        return None
    return StreamStart(view, version)
