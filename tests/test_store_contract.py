"""One contract, every event store: in memory, a SQLite file, and real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from events.clock import FakeClock
from events.errors import ConcurrencyError, CorruptEventError, StoreClosedError
from events.memory_store import InMemoryEventStore
from events.recorded import RawRecord
from events.replay import replay_store
from events.sql_store import SqlEventStore
from events.store import ANY, EventStore, read_all, read_raw, read_stream
from events.types import MailboxStarted, MessageSent, SelfTestPassed
from tests.event_samples import SAMPLES


@dataclass
class Backend:
    make: Callable[[FakeClock], EventStore]
    corrupt: Callable[[EventStore, int, bytes], None]


def _corrupt_memory(store: EventStore, seq: int, data: bytes) -> None:
    assert isinstance(store, InMemoryEventStore)
    rows = store._rows  # the fake's own list: the only way to damage it
    i = next(i for i, r in enumerate(rows) if r.seq == seq)
    rows[i] = RawRecord(*rows[i][:5], data)


def _sql_corrupter(url: str) -> Callable[[EventStore, int, bytes], None]:
    def corrupt(store: EventStore, seq: int, data: bytes) -> None:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE events SET data = :d WHERE seq = :s"), {"d": data, "s": seq})
        engine.dispose()

    return corrupt


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        yield Backend(lambda clock: InMemoryEventStore(clock), _corrupt_memory)
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
        engine = create_engine(url)
        with engine.begin() as conn:
            for table in ("events", "event_counts", "event_checkpoints"):
                conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()
    yield Backend(lambda clock: SqlEventStore(url, clock=clock), _sql_corrupter(url))


@pytest.fixture
def store(backend: Backend, clock: FakeClock) -> Iterator[EventStore]:
    s = backend.make(clock)
    yield s
    s.close()


def test_a_new_stream_is_at_version_zero(store: EventStore) -> None:
    assert store.stream_version("db:Smile") == 0
    assert store.last_seq() == 0


def test_append_numbers_events_in_stream_and_log(store: EventStore) -> None:
    first = store.append("db:a", 0, [MailboxStarted(1), SelfTestPassed(1, ("database",))])
    second = store.append("db:b", 0, [MailboxStarted(1)])
    assert [(r.seq, r.stream, r.version) for r in first + second] == [
        (1, "db:a", 1),
        (2, "db:a", 2),
        (3, "db:b", 1),
    ]


def test_recorded_at_comes_from_the_injected_clock(store: EventStore, clock: FakeClock) -> None:
    clock.advance(90)
    [recorded] = store.append("db:a", 0, [MailboxStarted(1)])
    assert recorded.recorded_at == clock.now()
    assert next(read_all(store)).recorded_at == clock.now()


def test_every_event_type_survives_the_store(store: EventStore) -> None:
    store.append("db:a", 0, SAMPLES)
    assert [r.event for r in read_all(store)] == SAMPLES


def test_a_stale_expected_version_is_refused(store: EventStore) -> None:
    store.append("db:a", 0, [MailboxStarted(1)])
    with pytest.raises(
        ConcurrencyError, match="stream 'db:a' is at version 1, the append expected 0"
    ):
        store.append("db:a", 0, [MailboxStarted(2)])


def test_a_refused_append_writes_none_of_its_events(store: EventStore) -> None:
    store.append("db:a", 0, [MailboxStarted(1)])
    with pytest.raises(ConcurrencyError):
        store.append("db:a", 5, [MailboxStarted(2), MailboxStarted(3)])
    assert store.stream_version("db:a") == 1
    assert store.last_seq() == 1


def test_any_appends_at_whatever_version_the_stream_has(store: EventStore) -> None:
    store.append("db:a", ANY, [MailboxStarted(1)])
    [r] = store.append("db:a", ANY, [MailboxStarted(2)])
    assert r.version == 2


def test_read_stream_returns_only_that_stream_in_order(store: EventStore) -> None:
    store.append("db:a", 0, [MailboxStarted(1)])
    store.append("db:b", 0, [MailboxStarted(7)])
    store.append("db:a", 1, [MailboxStarted(2)])
    assert [r.event for r in read_stream(store, "db:a")] == [MailboxStarted(1), MailboxStarted(2)]
    assert [r.version for r in read_stream(store, "db:a", after_version=1)] == [2]


def test_read_by_global_position(store: EventStore) -> None:
    for i in range(5):
        store.append(f"db:{i % 2}", ANY, [MailboxStarted(i)])
    assert [r.seq for r in read_all(store, after_seq=3)] == [4, 5]
    assert [r.seq for r in read_raw(store, 1, stream="db:0")] == [3, 5]


def test_read_chunks_limit_and_until(store: EventStore, clock: FakeClock) -> None:
    store.append("db:a", ANY, [MailboxStarted(1)])
    cutoff = clock.now()
    clock.advance(10)
    store.append("db:a", ANY, [MailboxStarted(2)])
    assert [r.seq for r in read_all(store, until=cutoff)] == [1]
    assert [row[0] for chunk in store.read_chunks(limit=1) for row in chunk] == [1]


def test_streams_lists_every_stream(store: EventStore) -> None:
    store.append("db:b", 0, [MailboxStarted(1)])
    store.append("service", 0, [SAMPLES[0]])
    assert store.streams() == ["db:b", "service"]


def test_concurrent_appends_get_unique_gap_free_seqs(store: EventStore) -> None:
    def worker(n: int) -> None:
        for i in range(50):
            store.append(f"db:{n}", ANY, [MessageSent(1, i, f"<{i}@x>", 1)])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = list(read_raw(store))
    assert [r.seq for r in rows] == list(range(1, 401))
    for n in range(8):
        assert [r.version for r in rows if r.stream == f"db:{n}"] == list(range(1, 51))


def test_of_racing_appends_with_one_expected_version_exactly_one_wins(store: EventStore) -> None:
    store.append("db:a", 0, [MailboxStarted(1)])
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def racer(n: int) -> None:
        barrier.wait()
        try:
            store.append("db:a", 1, [MailboxStarted(n)])
            outcomes.append("won")
        except ConcurrencyError:
            outcomes.append("lost")

    threads = [threading.Thread(target=racer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 5 + ["won"]
    assert store.stream_version("db:a") == 2


def test_async_appends_are_durable_when_their_result_returns(store: EventStore) -> None:
    pending = [store.append_async("db:a", ANY, [MailboxStarted(i)]) for i in range(100)]
    assert [p.result(timeout=30)[0].version for p in pending] == list(range(1, 101))
    assert store.last_seq() == 100


def test_close_flushes_pending_appends_then_refuses_more(
    backend: Backend, clock: FakeClock
) -> None:
    s = backend.make(clock)
    pending = [s.append_async("db:a", ANY, [MailboxStarted(i)]) for i in range(20)]
    s.close()
    assert all(p.done() for p in pending)
    with pytest.raises(StoreClosedError):
        s.append("db:a", ANY, [MailboxStarted(99)])


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_a_reopened_log_holds_every_flushed_event(backend: Backend, clock: FakeClock) -> None:
    s = backend.make(clock)
    for i in range(20):
        s.append_async("db:a", ANY, [MailboxStarted(i)])
    s.close()
    again = backend.make(clock)
    try:
        assert [r.event for r in read_all(again)] == [MailboxStarted(i) for i in range(20)]
    finally:
        again.close()


def test_a_waiting_follower_wakes_on_append(store: EventStore) -> None:
    woke: list[bool] = []
    t = threading.Thread(target=lambda: woke.append(store.wait_for_append(0, timeout=30)))
    t.start()
    store.append("db:a", 0, [MailboxStarted(1)])
    t.join()
    assert woke == [True]


def test_wait_for_append_reports_a_timeout(store: EventStore) -> None:
    assert store.wait_for_append(0, timeout=0.01) is False


def test_a_corrupt_record_stops_reading_with_its_seq(backend: Backend, store: EventStore) -> None:
    store.append("db:a", 0, [MailboxStarted(1), MailboxStarted(2), MailboxStarted(3)])
    backend.corrupt(store, 2, b"\x93\xa3bad")
    with pytest.raises(CorruptEventError, match="event seq 2"):
        list(read_all(store))
    with pytest.raises(CorruptEventError, match="event seq 2"):
        replay_store(store)


def test_replay_can_skip_corrupt_records_and_count_them(
    backend: Backend, store: EventStore
) -> None:
    store.append("db:a", 0, [MailboxStarted(1), MessageSent(1, 1, "<a@b>", 1), MailboxStarted(2)])
    backend.corrupt(store, 2, b"\xc1")
    view, report = replay_store(store, skip_corrupt=True)
    assert [e.seq for e in report.skipped] == [2]
    assert report.events == 3
    assert view.health["a"].incarnation == 2
    assert view.last_seq == 3


def _two_stores(backend: Backend, clock: FakeClock) -> tuple[Any, Any]:
    return backend.make(clock), backend.make(clock)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_a_second_writer_on_the_same_log_is_seen_not_overwritten(
    backend: Backend, clock: FakeClock
) -> None:
    a, b = _two_stores(backend, clock)
    try:
        a.append("db:x", 0, [MailboxStarted(1)])
        b.append("db:x", 1, [MailboxStarted(2)])
        with pytest.raises(ConcurrencyError, match="is at version 2"):
            a.append("db:x", 1, [MailboxStarted(3)])
        [r] = a.append("db:x", ANY, [MailboxStarted(4)])
        assert (r.seq, r.version) == (3, 3)
    finally:
        a.close()
        b.close()


# --- retention and stored state ----------------------------------------------------------


def test_deleted_events_are_gone_and_the_rest_keep_their_numbers(store: EventStore) -> None:
    for i in range(6):
        store.append(f"db:{i % 2}", ANY, [SelfTestPassed(1, ("database",))])
    assert store.delete_events([1, 2, 4]) == 3
    assert [(r.seq, r.stream, r.version) for r in read_all(store)] == [
        (3, "db:0", 2),
        (5, "db:0", 3),
        (6, "db:1", 3),
    ]


def test_the_newest_event_of_a_stream_is_never_deleted(store: EventStore) -> None:
    store.append("db:a", 0, [MailboxStarted(1), MailboxStarted(2)])
    store.append("db:b", 0, [MailboxStarted(1)])
    assert store.delete_events([1, 2, 3]) == 1
    assert [r.seq for r in read_all(store)] == [2, 3]


def test_numbering_goes_on_after_a_delete(store: EventStore) -> None:
    store.append("db:a", 0, [MailboxStarted(1), MailboxStarted(2), MailboxStarted(3)])
    store.delete_events([1, 2])
    [r] = store.append("db:a", 3, [MailboxStarted(4)])
    assert (r.seq, r.version, store.stream_version("db:a"), store.last_seq()) == (4, 4, 4, 4)


def test_a_stream_is_read_past_a_delete(store: EventStore) -> None:
    store.append("db:a", 0, [MailboxStarted(1), MailboxStarted(2), MailboxStarted(3)])
    store.append("db:b", 0, [MailboxStarted(9)])
    store.delete_events([2])
    assert [r.version for r in read_stream(store, "db:a")] == [1, 3]
    assert [r.seq for r in read_all(store, after_seq=1)] == [3, 4]


def test_event_counts_follow_appends_and_deletes(store: EventStore) -> None:
    store.append("db:a", 0, [MailboxStarted(1), SelfTestPassed(1, ()), SelfTestPassed(1, ())])
    store.append("db:b", 0, [MailboxStarted(1)])
    assert store.event_counts() == {
        ("db:a", "MailboxStarted"): 1,
        ("db:a", "SelfTestPassed"): 2,
        ("db:b", "MailboxStarted"): 1,
    }
    store.delete_events([1, 2])
    assert store.event_counts() == {("db:a", "SelfTestPassed"): 1, ("db:b", "MailboxStarted"): 1}


def test_a_checkpoint_is_saved_replaced_and_loaded(store: EventStore) -> None:
    assert store.load_checkpoint("memory") is None
    store.save_checkpoint("memory", 5, b"first")
    store.save_checkpoint("memory", 9, b"second")
    store.save_checkpoint("other", 1, b"x")
    assert (store.load_checkpoint("memory"), store.load_checkpoint("other")) == (
        (9, b"second"),
        (1, b"x"),
    )


def test_streams_are_listed_after_deletes(store: EventStore) -> None:
    store.append("db:a", 0, [MailboxStarted(1), MailboxStarted(2)])
    store.append("db:b", 0, [MailboxStarted(1)])
    store.delete_events([1])
    assert store.streams() == ["db:a", "db:b"]
