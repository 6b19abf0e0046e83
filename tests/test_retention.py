"""Retention: what it deletes, what it must keep, and that nothing anyone decides changes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from actors.log_keeper import LatestMemory, LogKeeperActor, LogKeeperDeps
from actors.messages import Ping
from actors.scheduler import FakeScheduler
from events.clock import FakeClock
from events.memory_store import InMemoryEventStore
from events.projections.memory import ServiceMemory
from events.retention import Retention, begin_run, go_on, run_retention
from events.snapshot import follow, read_memory, save_memory
from events.store import ANY, EventStore, read_all
from events.types import (
    DatabaseDiscovered,
    DatabaseIgnored,
    DatabaseLost,
    Diagnostic,
    Event,
    LogPruned,
    MailboxCrashed,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    MessageSent,
    RestartRequested,
    RestartScheduled,
    SelfTestFailed,
    SelfTestPassed,
)
from supervisor.restart_policy import RestartPolicy, decide, give_up_in_force

POLICY = RestartPolicy(3, 600.0, 1.0, 60.0)
WINDOW = POLICY.within_seconds
DBS = ("a", "b", "c")
DAY = 86_400.0


def _event(kind: str, n: int) -> Event:
    return {
        "start": lambda: MailboxStarted(n),
        "pass": lambda: SelfTestPassed(n, ("database",)),
        "fail": lambda: SelfTestFailed(n, (Diagnostic("smtp", "error", "refused"),)),
        "crash": lambda: MailboxCrashed(n, "boom", ""),
        "restart": lambda: RestartScheduled(1.0, "crash", n),
        "gave_up": lambda: MailboxGaveUp(3, 600.0, 60.0),
        "stop": lambda: MailboxStopped(n, "restart requested"),
        "request": lambda: RestartRequested("cli", "ann", None),
        "found": lambda: DatabaseDiscovered("x", "eligible"),
        "ignored": lambda: DatabaseIgnored("demo database"),
        "lost": lambda: DatabaseLost("gone"),
        "sent": lambda: MessageSent(n, 1, "<m@x>", 1),
    }[kind]()


KINDS = st.sampled_from(
    ["pass"] * 8
    + ["fail"] * 2
    + ["start", "crash", "restart", "gave_up", "stop", "request", "found", "ignored", "lost"]
    + ["sent"]
)

steps = st.lists(
    st.tuples(
        st.sampled_from(DBS),
        KINDS,
        st.integers(1, 4),
        st.sampled_from([0.0, 1.0, 30.0, 600.0, 0.3 * DAY, 2 * DAY]),
    ),
    min_size=1,
    max_size=120,
)
retentions = st.builds(
    Retention,
    st.sampled_from([0.5, 1.0, 3.0]),
    st.sampled_from([1.0, 2.0, 5.0]),
    st.sampled_from([2.0, 4.0, 30.0]),
)


def _append(stores: list[EventStore], clock: FakeClock, step: tuple[str, str, int, float]) -> None:
    db, kind, n, gap = step
    clock.advance(gap)
    for store in stores:
        store.append(f"db:{db}", ANY, [_event(kind, n)])


def _decisions(memory: ServiceMemory, now: datetime) -> dict[str, Any]:
    """What the supervisor would learn and decide from this memory at ``now``."""
    return {
        db: (
            memory.view.health[db].incarnation if db in memory.view.health else 0,
            give_up_in_force(POLICY, memory.histories.get(db, ()), now),
            decide(POLICY, memory.histories.get(db, ()), now, 0.5, "crash"),
        )
        for db in DBS
    }


@given(steps, steps, retentions, st.integers(1, 12), st.integers(0, 40))
@example(  # found by CI: a start older than kept_days, before the newest decision
    before=[("a", "start", 1, 0.0), ("a", "pass", 1, 2 * DAY), ("a", "restart", 1, 1.0)],
    after=[("a", "pass", 1, 0.0)],
    retention=Retention(0.5, 1.0, 2.0),
    batch_rows=1,
    crash_after=3,
)
@settings(max_examples=150, deadline=None)
def test_pruning_changes_no_decision_incarnation_or_outage(
    before: list[tuple[str, str, int, float]],
    after: list[tuple[str, str, int, float]],
    retention: Retention,
    batch_rows: int,
    crash_after: int,
) -> None:
    """Given a log, retention that stops ("crashes") after some batches, then more events:
    the start-up memory of the pruned log gives the same incarnations, restart decisions,
    give-ups, health (the check-ins and their outage line) and counters as the whole log's;
    and a fold of the pruned log alone, its stored state lost, the same decisions."""
    clock = FakeClock()
    whole, pruned = InMemoryEventStore(clock), InMemoryEventStore(clock)
    for step in before:
        _append([whole, pruned], clock, step)
    # The supervisor's memory: histories bounded by its window (what retention protects).
    save_memory(pruned, read_memory(pruned, window_seconds=WINDOW))
    run, _ = begin_run(pruned, retention.cutoffs(clock.now()))
    go_on(pruned, run, batch_rows=batch_rows, max_batches=crash_after)  # then the "crash"
    event(f"deleted: {'some' if run.deleted else 'none'}")
    for step in after:
        _append([whole, pruned], clock, step)
    now = clock.now()
    expected = read_memory(whole)  # no window: every restart kept
    got = read_memory(pruned, window_seconds=WINDOW)
    assert (got.view.health, got.view.tree, got.counts) == (
        expected.view.health,
        expected.view.tree,
        expected.counts,
    )
    assert _decisions(got, now) == _decisions(expected, now)
    alone = follow(pruned, ServiceMemory(window_seconds=WINDOW))  # the pruned log only
    assert _decisions(alone, now) == _decisions(expected, now)


def test_it_deletes_old_passes_first_and_keeps_decisions_longer() -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    store.append("db:a", ANY, [MailboxStarted(1)])
    store.append("db:a", ANY, [SelfTestPassed(1, ("database",))] * 10)
    store.append("db:a", ANY, [MailboxCrashed(1, "boom", ""), RestartScheduled(0.0, "crash", 1)])
    store.append("db:a", ANY, [SelfTestFailed(2, (Diagnostic("smtp", "error", "x"),))] * 3)
    clock.advance(8 * DAY)
    store.append("db:a", ANY, [SelfTestPassed(2, ("database",))])
    run = run_retention(store, Retention(7, 90, 400).cutoffs(clock.now()))
    kinds = [type(r.event).__name__ for r in read_all(store)]
    assert (run.deleted, kinds) == (
        10,
        ["MailboxStarted", "MailboxCrashed", "RestartScheduled"]
        + ["SelfTestFailed"] * 3
        + ["SelfTestPassed", "LogPruned"],
    )


def test_a_run_is_recorded_with_its_count_cutoff_and_position() -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    store.append("db:a", ANY, [SelfTestPassed(1, ("database",))] * 5)
    clock.advance(2 * DAY)
    store.append("db:a", ANY, [SelfTestPassed(1, ("database",))])
    retention = Retention(1, 90, 400)
    run_retention(store, retention.cutoffs(clock.now()))
    [last] = [r.event for r in read_all(store) if isinstance(r.event, LogPruned)]
    assert last == LogPruned(5, clock.now() - timedelta(days=1), 6)


def test_nothing_past_the_stored_state_is_deleted() -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    store.append("db:a", ANY, [SelfTestPassed(1, ("database",))] * 5)
    run, _ = begin_run(store, Retention.all_before(clock.now() + timedelta(days=1)))
    store.append("db:a", ANY, [SelfTestPassed(1, ("database",))] * 5)  # after the state
    while not go_on(store, run, batch_rows=2, max_batches=1):
        pass
    assert [r.seq for r in read_all(store)][:6] == [5, 6, 7, 8, 9, 10]


def test_a_second_run_reads_only_what_aged_since_the_first() -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    store.append("db:a", ANY, [MessageSent(1, i, "<m@x>", 1) for i in range(50)])  # kept long
    store.append("db:a", ANY, [SelfTestPassed(1, ("database",))] * 50)
    clock.advance(2 * DAY)
    store.append("db:a", ANY, [SelfTestPassed(1, ("database",))])
    retention = Retention(1, 90, 400)
    first = run_retention(store, retention.cutoffs(clock.now()))
    reads: list[int] = []
    real = store.read_chunks

    def counted(*args: Any, **kwargs: Any) -> Any:
        chunks = list(real(*args, **kwargs))
        reads.append(sum(len(c) for c in chunks))
        return iter(chunks)

    store.read_chunks = counted  # type: ignore[method-assign]
    clock.advance(3600)
    second = run_retention(store, retention.cutoffs(clock.now()))
    # The 50 kept mail events are not walked again: each kind goes on from its cursor.
    assert (first.deleted, second.deleted, sum(reads) < 20) == (50, 0, True), reads


def test_the_log_keeper_stores_its_memory_and_prunes_in_steps() -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    store.append("db:a", ANY, [MailboxStarted(1)])
    store.append("db:a", ANY, [SelfTestPassed(1, ("database",))] * 40)
    clock.advance(8 * DAY)
    store.append("db:a", ANY, [SelfTestPassed(1, ("database",))])
    scheduler = FakeScheduler(clock)
    latest = LatestMemory()
    deps = LogKeeperDeps(
        store, clock, scheduler, 60.0, Retention(7, 90, 400), 3600.0, 5, 0.0, latest
    )
    keeper = LogKeeperActor.start(deps, read_memory(store))
    try:
        for _ in range(20):  # each step is a few batches of 5; the run ends within 3
            keeper.ask(Ping(), timeout=5)
            scheduler.advance(1.0)
        keeper.ask(Ping(), timeout=5)
        names = [type(r.event).__name__ for r in read_all(store)]
        stored = store.load_checkpoint("memory")
    finally:
        keeper.stop()
    assert names == ["MailboxStarted", "SelfTestPassed", "LogPruned"]
    assert (stored or (0, b""))[0] >= 41
    assert latest.get().counts == {}  # nothing counted for /metrics in these events


def test_on_stop_the_keeper_stores_what_it_read_since() -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    scheduler = FakeScheduler(clock)
    deps = LogKeeperDeps(store, clock, scheduler, 60.0, None, 3600.0, 5, 0.0, LatestMemory())
    keeper = LogKeeperActor.start(deps, ServiceMemory())
    keeper.ask(Ping(), timeout=5)
    store.append("db:a", ANY, [MailboxStarted(4)])
    keeper.stop()
    stored = store.load_checkpoint("memory")
    assert (stored or (0, b""))[0] == 1
