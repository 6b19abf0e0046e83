"""Per-stream snapshots: a replay of one database up to a past time starts at the newest
snapshot at or before it, and comes out as the fold from the stream's first event."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.log_keeper import LatestMemory, LogKeeperActor, LogKeeperDeps
from actors.messages import Ping
from actors.scheduler import FakeScheduler
from events.clock import FakeClock
from events.memory_store import InMemoryEventStore
from events.projections.memory import ServiceMemory
from events.recorded import RawRecord, Recorded, from_micros
from events.replay import replay_store
from events.snapshot import read_memory
from events.sql_store import SqlEventStore
from events.store import ANY
from events.stream_snapshots import (
    KEEP,
    SNAPSHOT_EVERY,
    SnapshotTaker,
    StreamMarks,
    checkpoint_name,
    save_stream_snapshot,
    start_before,
)
from events.types import (
    Diagnostic,
    MailboxCrashed,
    MailboxStarted,
    SelfTestFailed,
    SelfTestPassed,
    db_of,
    stream_for,
)
from supervisor.cli import main
from tests.event_samples import logs

SMILE = stream_for("Smile Dental")


def _head(store: InMemoryEventStore | SqlEventStore, stream: str) -> tuple[int, int, int]:
    rows = [row for chunk in store.read_chunks(stream=stream) for row in chunk]
    seq, _stream, version, _type, at_us, _data = rows[-1]
    return seq, version, at_us


@given(logs(max_size=60), st.integers(0, 60), st.integers(0, 70), st.data())
@settings(max_examples=80, deadline=None)
def test_a_snapshot_plus_the_rest_is_the_fold_from_the_start(
    log: list[Recorded], cut: int, until_index: int, data: st.DataObject
) -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    times = []
    for i, r in enumerate(log):
        if i == cut:
            memory = read_memory(store)
            for stream in store.streams():
                if db_of(stream) is not None:
                    save_stream_snapshot(store, memory, stream, _head(store, stream))
        store.append(r.stream, ANY, [r.event])
        times.append(clock.now())
        clock.advance(1)
    streams = [s for s in store.streams() if db_of(s) is not None]
    if not streams:
        return
    stream = data.draw(st.sampled_from(streams))
    until = times[until_index] if until_index < len(times) else None
    start = start_before(store, stream, until)
    from_snapshot, _ = replay_store(
        store,
        view=None if start is None else start.view,
        stream=stream,
        until=until,
        after_version=0 if start is None else start.version,
    )
    from_start, _ = replay_store(store, stream=stream, until=until)
    assert (from_snapshot.health, from_snapshot.tree) == (from_start.health, from_start.tree)


def test_no_snapshot_at_or_before_the_time_means_none() -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    early = clock.now()
    clock.advance(60)
    store.append(SMILE, 0, [MailboxStarted(1)])
    save_stream_snapshot(store, read_memory(store), SMILE, _head(store, SMILE))
    assert start_before(store, SMILE, early) is None
    assert start_before(store, SMILE, clock.now()) is not None


def test_the_newest_snapshot_at_or_before_the_time_is_the_start() -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    store.append(SMILE, 0, [MailboxStarted(1)])
    save_stream_snapshot(store, read_memory(store), SMILE, _head(store, SMILE))
    first = clock.now()
    clock.advance(60)
    store.append(SMILE, 1, [SelfTestPassed(1, ("database",))])
    save_stream_snapshot(store, read_memory(store), SMILE, _head(store, SMILE))
    start = start_before(store, SMILE, first + timedelta(seconds=30))
    assert start is not None
    assert start.version == 1


def test_a_stream_keeps_at_most_its_limit_of_snapshots() -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    for version in range(KEEP + 5):
        store.append(SMILE, version, [SelfTestPassed(1, ("database",))])
        save_stream_snapshot(store, read_memory(store), SMILE, _head(store, SMILE))
        clock.advance(1)
    assert start_before(store, SMILE, from_micros(0) + timedelta(days=1)) is None
    oldest = start_before(store, SMILE, from_micros(_head(store, SMILE)[2]) - timedelta(days=1))
    assert oldest is None
    newest = start_before(store, SMILE, None)
    assert newest is not None
    assert newest.version == KEEP + 5


def test_damaged_snapshots_are_ignored() -> None:
    store = InMemoryEventStore(FakeClock())
    store.append(SMILE, 0, [MailboxStarted(1)])
    store.save_checkpoint(checkpoint_name(SMILE), 1, b"\xc1 not msgpack")
    assert start_before(store, SMILE, None) is None


def _rows(stream: str, versions: Sequence[int]) -> list[RawRecord]:
    return [RawRecord(v * 10, stream, v, "SelfTestPassed", v * 1_000_000, b"") for v in versions]


def test_marks_name_a_stream_once_it_has_enough_new_events() -> None:
    marks = StreamMarks(every=3)
    marks.see(_rows(SMILE, [1, 2]))
    marks.see([RawRecord(25, "service", 1, "ServiceStarted", 0, b"")])
    assert marks.due() == []
    marks.see(_rows(SMILE, [3]))
    assert marks.due() == [SMILE]
    assert marks.head(SMILE) == (30, 3, 3_000_000)
    marks.taken(SMILE)
    assert marks.due() == []


class CountingStore(SqlEventStore):
    """A real SQLite store that counts the rows its readers are handed."""

    rows_read = 0

    def read_chunks(self, *args: Any, **kwargs: Any) -> Iterator[Sequence[RawRecord]]:
        for chunk in super().read_chunks(*args, **kwargs):
            CountingStore.rows_read += len(chunk)
            yield chunk


def test_a_replay_from_a_snapshot_reads_only_the_events_after_it(tmp_path: Path) -> None:
    clock = FakeClock()
    store = CountingStore(f"sqlite:///{tmp_path / 'events.sqlite3'}", clock=clock)
    try:
        for version in range(2_000):
            store.append(SMILE, version, [SelfTestPassed(1, ("database",))])
            clock.advance(15)
        save_stream_snapshot(store, read_memory(store), SMILE, _head(store, SMILE))
        for version in range(2_000, 2_010):
            store.append(SMILE, version, [SelfTestPassed(1, ("database",))])
            clock.advance(15)
        start = start_before(store, SMILE, clock.now())
        assert start is not None
        CountingStore.rows_read = 0
        replay_store(store, view=start.view, stream=SMILE, after_version=start.version)
        assert CountingStore.rows_read == 10
    finally:
        store.close()


@pytest.fixture
def long_log(tmp_path: Path) -> tuple[Path, str]:
    """A config whose SQLite log has a snapshot in the middle of Smile Dental's stream;
    returns it with a time after the snapshot and before the newest events."""
    db_file = tmp_path / "events.sqlite3"
    config = tmp_path / "service.toml"
    config.write_text(f'[service]\nevent_store = "sqlite:///{db_file}"\n')
    clock = FakeClock()
    store = SqlEventStore(f"sqlite:///{db_file}", clock=clock)
    store.append(SMILE, 0, [MailboxStarted(1)])
    for version in range(1, 300):
        store.append(SMILE, version, [SelfTestPassed(1, ("database", "smtp"))])
        clock.advance(15)
    save_stream_snapshot(store, read_memory(store), SMILE, _head(store, SMILE))
    clock.advance(15)
    failure = (Diagnostic("smtp", "error", "535 5.7.8 authentication failed"),)
    store.append(SMILE, 300, [SelfTestFailed(1, failure)])
    clock.advance(15)
    until = clock.now().isoformat()
    clock.advance(15)
    store.append(SMILE, 301, [MailboxCrashed(1, "TimeoutError: timed out", "tb")])
    store.close()
    return config, until


def _replay_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(list(argv)) == 0
    out, _err = capsys.readouterr()
    result: dict[str, Any] = json.loads(out)
    return result


def test_the_command_gives_the_same_past_state_as_the_whole_fold(
    capsys: pytest.CaptureFixture[str], long_log: tuple[Path, str]
) -> None:
    config, until = long_log
    args = ("--config", str(config), "events", "replay", "--db", "Smile Dental", "--until", until)
    fast = _replay_json(capsys, *args, "--json")
    full = _replay_json(capsys, *args, "--json", "--full")
    assert fast["databases"] == full["databases"]
    assert fast["databases"][0]["status"] != "crashed"
    assert fast["databases"][0]["last_failure"] == full["databases"][0]["last_failure"] != []


def test_the_log_keeper_snapshots_a_stream_every_so_many_of_its_events() -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    scheduler = FakeScheduler(clock)
    deps = LogKeeperDeps(store, clock, scheduler, 60.0, None, 3600.0, 5, 0.0, LatestMemory())
    keeper = LogKeeperActor.start(deps, ServiceMemory())
    try:
        store.append(SMILE, ANY, [MailboxStarted(1)])
        store.append(SMILE, ANY, [SelfTestPassed(1, ("database",))] * (SNAPSHOT_EVERY - 2))
        scheduler.advance(61.0)
        keeper.ask(Ping(), timeout=5)
        before = start_before(store, SMILE, None)
        store.append(SMILE, ANY, [SelfTestPassed(1, ("database",))] * 2)
        scheduler.advance(61.0)
        keeper.ask(Ping(), timeout=5)
        after = start_before(store, SMILE, None)
    finally:
        keeper.stop()
    assert before is None
    assert after is not None
    assert after.version == SNAPSHOT_EVERY + 1  # the newest event when the count was reached


def test_reading_a_long_log_without_snapshots_makes_them(tmp_path: Path) -> None:
    # An older version's log: history but no snapshots. Start-up's one read of it (the
    # supervisor gives read_memory a SnapshotTaker) leaves one every so many events.
    clock = FakeClock()
    store = SqlEventStore(f"sqlite:///{tmp_path / 'events.sqlite3'}", clock=clock)
    try:
        store.append(SMILE, ANY, [MailboxStarted(1)])
        times = []
        for _ in range(25):
            store.append(SMILE, ANY, [SelfTestPassed(1, ("database",))] * 250)
            times.append(clock.now())
            clock.advance(60)
        read_memory(store, on_chunk=SnapshotTaker(store, every=1_000))
        newest = start_before(store, SMILE, None)
        middle = start_before(store, SMILE, times[21])
    finally:
        store.close()
    assert newest is not None
    assert newest.version == 6_251
    assert middle is not None
    assert middle.version == 5_000  # the end of the first chunk the read folded
