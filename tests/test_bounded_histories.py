"""The start-up memory keeps of each database's lifecycle only what the decisions read.

A database failing for weeks writes thousands of lifecycle events; the stored start-up
state keeps a few per database (``events.projections.memory.bound_history``), and every
decision the supervisor takes from it is the one it would take from the whole stream.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from events.clock import FakeClock
from events.memory_store import InMemoryEventStore
from events.projections.memory import COMMANDS_KEPT, ServiceMemory, fold_memory
from events.recorded import Recorded
from events.snapshot import decode_memory, encode_memory, read_memory, save_memory
from events.store import ANY, EventStore, read_all
from events.types import (
    CheckInMissed,
    DatabaseDiscovered,
    DatabaseLost,
    Event,
    MailboxCrashed,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    RestartRequested,
    RestartScheduled,
    SelfTestPassed,
    db_of,
)
from supervisor.escalation import counts_toward_burst
from supervisor.restart_policy import (
    RestartPolicy,
    decide,
    decide_requested,
    give_up_in_force,
)

DBS = ("a", "b")


def _event(kind: str, n: int) -> Event:
    return {
        "start": lambda: MailboxStarted(n),
        "crash": lambda: MailboxCrashed(n, "boom", ""),
        "hung": lambda: CheckInMissed(n, 30.0),
        "restart": lambda: RestartScheduled(1.0, "crashed", n),
        "requested": lambda: RestartScheduled(0.0, "requested", n),
        "gave_up": lambda: MailboxGaveUp(n, 60.0, 300.0),
        "command": lambda: RestartRequested("cli", "ann", n),
        "request": lambda: RestartRequested("web", "bob", None),
        "stop": lambda: MailboxStopped(n, "restart requested"),
        "lost": lambda: DatabaseLost("gone"),
        "found": lambda: DatabaseDiscovered("x", "eligible"),
        "pass": lambda: SelfTestPassed(n, ("database",)),
    }[kind]()


# Mostly the cycle of a failing mailbox: start, crash, a restart or a give-up.
KINDS = st.sampled_from(
    ["start"] * 4
    + ["crash"] * 3
    + ["restart"] * 4
    + ["gave_up"] * 2
    + ["hung", "requested", "command", "request", "stop", "lost", "found", "pass"]
)
GAPS = st.sampled_from([0.0, 0.5, 1.0, 10.0, 29.0, 30.0, 61.0, 300.0, 3600.0])
steps = st.lists(
    st.tuples(st.sampled_from(DBS), KINDS, st.integers(1, 9), GAPS), min_size=1, max_size=150
)
policies = st.builds(
    RestartPolicy,
    st.integers(1, 6),
    st.sampled_from([1.0, 30.0, 60.0, 600.0]),
    st.just(1.0),
    st.just(300.0),
)


def _append(store: EventStore, clock: FakeClock, step: tuple[str, str, int, float]) -> None:
    db, kind, n, gap = step
    clock.advance(gap)
    store.append(f"db:{db}", ANY, [_event(kind, n)])


def _whole(store: EventStore, db: str) -> list[Recorded]:
    """The database's whole stream: what an unbounded history would hold."""
    return [r for r in read_all(store) if db_of(r.stream) == db]


def _decisions(
    policy: RestartPolicy, history: list[Recorded] | tuple[Recorded, ...], now: datetime
) -> tuple[Any, ...]:
    crash = decide(policy, history, now, 0.5, "crashed")
    return (
        crash,
        counts_toward_burst(crash, history, now, policy.within_seconds),
        decide_requested(policy, history, now),
        give_up_in_force(policy, history, now),
    )


@given(steps, steps, policies, st.sampled_from([0.0, 0.5, 1.0, 2.0, 10.0]))
@settings(max_examples=200, deadline=None)
def test_bounded_histories_decide_as_the_whole_streams(
    before: list[tuple[str, str, int, float]],
    after: list[tuple[str, str, int, float]],
    policy: RestartPolicy,
    later: float,
) -> None:
    """Given a crash-looping log, its checkpoint stored part-way, then more events: the
    start-up memory's histories (bounded by the policy's window) give the same restart
    decisions, first failures, requested restarts and give-ups in force as each database's
    whole stream, now and ``later`` windows from now; and the same incarnations."""
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    for step in before:
        _append(store, clock, step)
    save_memory(store, read_memory(store, window_seconds=policy.within_seconds))
    for step in after:
        _append(store, clock, step)
    memory = read_memory(store, window_seconds=policy.within_seconds)
    unbounded = fold_memory(ServiceMemory(), read_all(store))  # no window, no checkpoint
    for db in DBS:
        whole = _whole(store, db)
        got = memory.histories.get(db, ())
        for now in (clock.now(), clock.now() + timedelta(seconds=later * policy.within_seconds)):
            assert _decisions(policy, got, now) == _decisions(policy, whole, now)
        assert memory.view.health.get(db) == unbounded.view.health.get(db)


def _crash_loop(store: EventStore, clock: FakeClock, cycles: int, commands: int = 0) -> None:
    for i in range(cycles):
        store.append("db:a", ANY, [MailboxStarted(i + 1)])
        clock.advance(120.0)
        store.append(
            "db:a", ANY, [MailboxCrashed(i + 1, "boom", ""), RestartScheduled(0.0, "crashed", 1)]
        )
        if i >= cycles - commands:
            store.append("db:a", ANY, [RestartRequested("cli", "ann", i)])


def test_a_database_failing_for_weeks_keeps_a_few_lifecycle_events() -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    _crash_loop(store, clock, 2_000)  # a crash every two minutes for almost three days
    memory = read_memory(store, window_seconds=60.0)
    kept = [type(r.event).__name__ for r in memory.histories["a"]]
    assert kept == ["MailboxStarted", "RestartScheduled"]


def test_the_newest_start_is_kept_however_old_it_is() -> None:
    """The incarnation comes from the newest start alone; a pruned log must still hold it."""
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    _crash_loop(store, clock, 3)
    clock.advance(30 * 86_400.0)
    store.append("db:a", ANY, [RestartScheduled(0.0, "crashed", 1)])
    memory = read_memory(store, window_seconds=60.0)
    starts = [r.event for r in memory.histories["a"] if isinstance(r.event, MailboxStarted)]
    assert starts == [MailboxStarted(3)]


def test_the_newest_restart_commands_are_kept_however_long_the_loop() -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    _crash_loop(store, clock, 500, commands=COMMANDS_KEPT + 5)
    _crash_loop(store, clock, 500)
    memory = read_memory(store, window_seconds=60.0)
    ids = [
        r.event.command_id for r in memory.histories["a"] if isinstance(r.event, RestartRequested)
    ]
    assert ids == list(range(500 - COMMANDS_KEPT, 500))


def test_a_wider_window_than_the_stored_one_reads_the_restarts_again() -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    for i in range(5):
        store.append("db:a", ANY, [RestartScheduled(1.0, "crashed", i + 1)])
        clock.advance(100.0)
    save_memory(store, read_memory(store, window_seconds=60.0))  # keeps the newest only
    memory = read_memory(store, window_seconds=600.0)
    assert (memory.window_seconds, len(memory.histories["a"])) == (600.0, 5)


def test_a_checkpoint_of_format_1_is_still_read() -> None:
    clock = FakeClock()
    store = InMemoryEventStore(clock)
    _crash_loop(store, clock, 3)
    memory = read_memory(store)
    state = msgpack.unpackb(encode_memory(memory, store.codec.encode), strict_map_key=False)
    old = msgpack.packb([1, *state[1:-1]], use_bin_type=True)  # format 1: no window
    assert decode_memory(old, store.codec.decode) == ServiceMemory(
        memory.view, memory.histories, memory.counts, memory.heads, None
    )
