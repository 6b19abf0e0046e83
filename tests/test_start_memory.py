"""Start-up from the stored memory: the fold's laws, its checkpoint, and rows read at start."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.messages import Ping
from events.clock import FakeClock
from events.memory_store import InMemoryEventStore
from events.projections.memory import ServiceMemory, fold_memory
from events.recorded import RawRecord, Recorded
from events.replay import replay_store
from events.snapshot import decode_memory, encode_memory, read_memory, save_memory
from events.sql_store import SqlEventStore
from events.store import ANY, EventStore
from events.types import (
    DatabaseDiscovered,
    MailboxCrashed,
    MailboxStarted,
    RestartScheduled,
    SelfTestPassed,
)
from tests.event_samples import logs
from tests.tree_harness import Harness

CODEC = InMemoryEventStore().codec


def _decoded(records: Sequence[Recorded]) -> list[Recorded]:
    # What a store hands back: every event through the codec.
    return [r._replace(event=CODEC.decode(CODEC.encode(r.event))) for r in records]


@given(logs(max_size=60), st.integers(0, 60))
@settings(deadline=None)  # a shared machine's pauses are not this fold's business
def test_folding_in_two_parts_is_folding_at_once(log: list[Recorded], cut: int) -> None:
    log = _decoded(log)
    whole = fold_memory(ServiceMemory(), log)
    parts = fold_memory(fold_memory(ServiceMemory(), log[:cut]), log[cut:])
    assert parts == whole


@given(logs(max_size=60))
@settings(deadline=None)
def test_the_stored_memory_reads_back_equal(log: list[Recorded]) -> None:
    memory = fold_memory(ServiceMemory(), _decoded(log))
    assert decode_memory(encode_memory(memory, CODEC.encode), CODEC.decode) == memory


@given(logs(max_size=60))
@settings(max_examples=50, deadline=None)
def test_the_memory_holds_the_replay_view(log: list[Recorded]) -> None:
    store = InMemoryEventStore(FakeClock())
    for r in log:
        store.append(r.stream, ANY, [r.event])
    view, _ = replay_store(store)
    assert read_memory(store).view == view


@given(logs(max_size=60), st.integers(0, 60))
@settings(max_examples=50, deadline=None)
def test_a_stored_memory_plus_the_rest_is_the_whole_fold(log: list[Recorded], cut: int) -> None:
    clock = FakeClock()
    with_checkpoint, without = InMemoryEventStore(clock), InMemoryEventStore(clock)
    for i, r in enumerate(log):
        if i == cut:
            save_memory(with_checkpoint, read_memory(with_checkpoint))
        for store in (with_checkpoint, without):
            store.append(r.stream, ANY, [r.event])
    assert read_memory(with_checkpoint) == read_memory(without)


def test_a_damaged_checkpoint_is_ignored_and_the_log_folded() -> None:
    store = InMemoryEventStore(FakeClock())
    store.append("db:a", ANY, [MailboxStarted(3)])
    store.save_checkpoint("memory", 1, b"\x93not what was stored")
    assert read_memory(store).view.health["a"].incarnation == 3


# --- rows read at start ----------------------------------------------------------------


class CountingStore:
    """A store that counts the rows every read hands out (what start-up costs)."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner
        self.codec = inner.codec
        self.rows_read = 0

    def read_chunks(self, *args: Any, **kwargs: Any) -> Iterator[Sequence[RawRecord]]:
        for chunk in self.inner.read_chunks(*args, **kwargs):
            self.rows_read += len(chunk)
            yield chunk

    def read_last(self, *args: Any, **kwargs: Any) -> list[RawRecord]:
        rows = self.inner.read_last(*args, **kwargs)
        self.rows_read += len(rows)
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _grown_log(path: Path, clock: FakeClock, events: int) -> SqlEventStore:
    """A log as healthy check-ins grow it: two databases, a crash, then passes."""
    store = SqlEventStore(f"sqlite:///{path}", clock=clock)
    for db in ("a", "b"):
        store.append(f"db:{db}", ANY, [DatabaseDiscovered(db, "eligible"), MailboxStarted(1)])
    store.append("db:a", ANY, [MailboxCrashed(1, "boom", ""), RestartScheduled(0.0, "crash", 1)])
    store.append("db:a", ANY, [MailboxStarted(2)])
    passes = events - store.last_seq()
    for start in range(0, passes, 1000):
        clock.advance(15)
        n = min(1000, passes - start)
        store.append("db:b", ANY, [SelfTestPassed(1, ("database",))] * (n // 2))
        store.append("db:a", ANY, [SelfTestPassed(2, ("database",))] * (n - n // 2))
    return store


def _start_and_count(store: SqlEventStore, clock: FakeClock) -> tuple[int, list[Any]]:
    counting = CountingStore(store)
    harness = Harness(clock=clock)
    harness.store = counting  # type: ignore[assignment]
    harness.add("a")
    harness.add("b")
    try:
        harness.start()
        assert harness.supervisor is not None
        harness.supervisor.ask(Ping(), timeout=60)  # a long Init is slow, not hung
        harness.unresponsive.clear()
        harness.settle()
        rows = counting.rows_read
        # The test's own read, after the count: the new process numbers on from the log
        # (its appends are committed by the writer thread, so it is waited for).
        started = [harness.wait_event("a", MailboxStarted, incarnation=3).event]
    finally:
        harness.stop()
    return rows, started


@pytest.mark.parametrize("events", [2_000, 40_000])
def test_start_up_reads_the_stored_memory_and_only_what_is_newer(
    tmp_path: Path, events: int
) -> None:
    clock = FakeClock()
    store = _grown_log(tmp_path / "events.sqlite3", clock, events)
    save_memory(store, read_memory(store))  # as the log keeper does every minute
    store.append("db:b", ANY, [SelfTestPassed(1, ("database",))] * 40)  # since then
    try:
        rows, started = _start_and_count(store, clock)
    finally:
        store.close()
    # 40 newer events, then what the new process itself appends and its watchdog reads.
    assert (rows <= 80, started[-1]) == (True, MailboxStarted(3)), rows


@pytest.mark.parametrize("events", [2_000, 40_000])
def test_without_a_stored_memory_start_up_reads_the_log_once(tmp_path: Path, events: int) -> None:
    clock = FakeClock()
    store = _grown_log(tmp_path / "events.sqlite3", clock, events)
    try:
        rows, started = _start_and_count(store, clock)
        stored = store.load_checkpoint("memory")
    finally:
        store.close()
    # Counted reads are real: a log without a stored state is read whole, once; the
    # incarnation numbers come out the same as from the stored state.
    assert (events <= rows <= events + 80, started[-1]) == (True, MailboxStarted(3)), rows
    assert stored is None  # the supervisor only reads; the log keeper stores
