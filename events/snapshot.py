"""The stored start-up memory: ``ServiceMemory`` as a checkpoint, and reading it back.

``read_memory(store)`` is how every reader of the log's past starts: the checkpoint saved
under ``MEMORY_CHECKPOINT`` (a msgpack record, ``FORMAT`` below) plus the events after its
``seq``, read by the primary key; without a checkpoint (a log from before this, or the
first start) the whole log once. ``save_memory`` stores it again. The state is versioned:
a checkpoint of another format, or one that does not decode, is ignored (with a warning)
and the log is folded from the start instead, so a bad checkpoint costs time, never truth.

The supervisor reads it with its restart window (``window_seconds``), by which the
histories are bounded (``events.projections.memory.bound_history``). A checkpoint bounded
by a narrower window (``within_seconds`` was raised since) lacks restarts the wider one
counts: its histories are folded again from the log's lifecycle rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgpack

from events.projections.health import DbHealth, HealthStatus
from events.projections.memory import (
    HISTORY_TYPES,
    MEMORY_TYPES,
    ServiceMemory,
    bound_history,
    fold_memory,
    moved_to,
    narrowed,
)
from events.projections.service_view import ServiceInfo, ServiceView
from events.projections.tree import TreeEntry
from events.recorded import RawRecord, Recorded, from_micros, to_micros
from events.store import EventStore
from events.types import Diagnostic, db_of

log = logging.getLogger(__name__)

MEMORY_CHECKPOINT = "memory"
"""The checkpoint's name in the store."""

FORMAT = 2
"""The layout of the stored state: 2 adds the histories' window to 1 (still read, as
bounded by no window); another number is not read."""


def _time(t: datetime | None) -> int | None:
    return None if t is None else to_micros(t)


def _untime(us: int | None) -> datetime | None:
    return None if us is None else from_micros(us)


def health_state(h: DbHealth) -> list[Any]:
    """``h`` as plain msgpack-able values (``health_from_state`` reads them back)."""
    return [
        h.status.value, h.incarnation, _time(h.since), _time(h.last_selftest_at),
        h.last_selftest_ok, [[d.component, d.level, d.message] for d in h.last_failure],
        _time(h.last_failure_at), [to_micros(t) for t in h.restart_times], h.restarts_total,
        h.crashes_total,
    ]  # fmt: skip


def health_from_state(v: list[Any]) -> DbHealth:
    """The ``DbHealth`` that ``health_state`` gave ``v`` for."""
    return DbHealth(
        HealthStatus(v[0]), v[1], _untime(v[2]), _untime(v[3]), v[4],
        tuple(Diagnostic(*d) for d in v[5]), _untime(v[6]),
        tuple(from_micros(t) for t in v[7]), v[8], v[9],
    )  # fmt: skip


def _service(s: ServiceInfo) -> list[Any]:
    return [
        s.running, s.server_id, s.service_version, s.pid, _time(s.started_at),
        _time(s.stopping_since), s.stop_reason, s.starts,
    ]  # fmt: skip


def _unservice(v: list[Any]) -> ServiceInfo:
    return ServiceInfo(v[0], v[1], v[2], v[3], _untime(v[4]), _untime(v[5]), v[6], v[7])


def encode_memory(memory: ServiceMemory, encode_event: Callable[[Any], bytes]) -> bytes:
    """Return the memory as one msgpack record (events inside it in the log's own codec)."""
    view = memory.view
    state = [
        FORMAT,
        view.last_seq,
        _time(view.last_at),
        {db: health_state(h) for db, h in view.health.items()},
        {db: list(t) for db, t in view.tree.items()},
        _service(view.service),
        {
            db: [
                [r.seq, r.stream, r.version, to_micros(r.recorded_at), encode_event(r.event)]
                for r in history
            ]
            for db, history in memory.histories.items()
        },
        [[metric, db, n] for (metric, db), n in memory.counts.items()],
        dict(memory.heads),
        memory.window_seconds,
    ]
    packed: bytes = msgpack.packb(state, use_bin_type=True)
    return packed


def decode_memory(data: bytes, decode_event: Callable[[bytes], Any]) -> ServiceMemory:
    """Return the memory ``encode_memory`` stored; raises ValueError for another format."""
    state = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if not isinstance(state, list) or not state or state[0] not in (1, FORMAT):
        raise ValueError(f"not a start-up memory of format 1 or {FORMAT}")
    if state[0] == 1:
        state = [*state, None]  # histories trimmed by count, not by a window
    _, last_seq, last_at, health, tree, service, histories, counts, heads, window = state
    view = ServiceView(
        {db: health_from_state(v) for db, v in health.items()},
        {db: TreeEntry(*v) for db, v in tree.items()},
        _unservice(service),
        last_seq,
        _untime(last_at),
    )
    return ServiceMemory(
        view,
        {
            db: tuple(Recorded(s, st, v, from_micros(at), decode_event(e)) for s, st, v, at, e in h)
            for db, h in histories.items()
        },
        {(metric, db): n for metric, db, n in counts},
        dict(heads),
        window,
    )


def load_checkpoint(store: EventStore) -> ServiceMemory | None:
    """Return the stored memory, or None when there is none (or it cannot be read)."""
    stored = store.load_checkpoint(MEMORY_CHECKPOINT)
    if stored is None:
        return None
    seq, data = stored
    try:
        memory = decode_memory(data, store.codec.decode)
    except Exception as exc:  # any damage: fold the log instead, which is always right
        log.warning(
            "the stored start-up state (seq %d) cannot be read (%s); folding the log", seq, exc
        )
        return None
    return memory


def follow(
    store: EventStore,
    memory: ServiceMemory,
    *,
    on_rows: Callable[[int], None] | None = None,
    on_chunk: Callable[[Sequence[RawRecord], ServiceMemory], None] | None = None,
) -> ServiceMemory:
    """Return ``memory`` with every event after its ``last_seq`` folded in.

    Reads by ``seq`` (the primary key) only what is newer, in chunks; decodes only the
    types the memory looks at. ``on_rows(n)`` is told how many rows each chunk held,
    ``on_chunk(rows, memory)`` is given each chunk's raw rows and the memory with them
    folded in.
    """
    codec = store.codec
    for chunk in store.read_chunks(memory.last_seq):
        wanted = [row for row in chunk if row[3] in MEMORY_TYPES]
        memory = fold_memory(memory, codec.decode_chunks([wanted]))
        heads = {row[1]: row[0] for row in chunk}
        last = chunk[-1]
        memory = moved_to(memory, heads, last[0], from_micros(last[4]))
        if on_rows is not None:
            on_rows(len(chunk))
        if on_chunk is not None:
            on_chunk(chunk, memory)
    return memory


def refold_histories(
    store: EventStore, memory: ServiceMemory, window_seconds: float
) -> ServiceMemory:
    """Return ``memory`` with its histories folded again, bounded by ``window_seconds``, from
    the log's lifecycle rows up to its ``last_seq`` (for a window wider than its own)."""
    kept: dict[str, list[Recorded]] = {}
    for chunk in store.read_chunks(0):
        wanted = [row for row in chunk if row[0] <= memory.last_seq and row[3] in HISTORY_TYPES]
        for r in store.codec.decode_chunks([wanted]):
            db = db_of(r.stream)
            if db is not None:
                kept.setdefault(db, []).append(r)
        if chunk[-1][0] >= memory.last_seq:
            break
    histories = {db: bound_history(h, window_seconds) for db, h in kept.items()}
    return ServiceMemory(memory.view, histories, memory.counts, memory.heads, window_seconds)


def read_memory(
    store: EventStore,
    *,
    window_seconds: float | None = None,
    on_rows: Callable[[int], None] | None = None,
    on_chunk: Callable[[Sequence[RawRecord], ServiceMemory], None] | None = None,
) -> ServiceMemory:
    """The stored memory (if any) plus every event after it: what start-up knows of the past.

    ``window_seconds``: the restart window the histories must serve (the supervisor's
    ``within_seconds``); None takes the stored memory's own (no bound without one).
    """
    memory = load_checkpoint(store)
    if memory is None:
        memory = ServiceMemory(window_seconds=window_seconds)
    elif window_seconds is not None:
        stored = memory.window_seconds
        if stored is None or window_seconds <= stored:
            memory = narrowed(memory, window_seconds)
        else:
            log.info(
                "the restart window grew from %g s to %g s: reading the log's restarts again",
                stored,
                window_seconds,
            )
            memory = refold_histories(store, memory, window_seconds)
    return follow(store, memory, on_rows=on_rows, on_chunk=on_chunk)


def save_memory(store: EventStore, memory: ServiceMemory) -> None:
    """Store ``memory`` as the checkpoint (replacing the one before)."""
    store.save_checkpoint(
        MEMORY_CHECKPOINT, memory.last_seq, encode_memory(memory, store.codec.encode)
    )
