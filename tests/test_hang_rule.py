"""The hang rule: no progress is a hang, busy is not, and a paused process hangs nobody.

The pure rule (``supervisor.hang_rule``) with table tests and properties, then the
watchdog actor that applies it, on a fake clock and scheduler.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pykka
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.fence import IncarnationRegistry
from actors.messages import MailboxFailed, Ping
from actors.scheduler import FakeScheduler
from actors.watchdog import WatchdogActor, WatchdogDeps
from events.clock import FakeClock
from events.memory_store import InMemoryEventStore
from events.projections.liveness import Liveness
from events.store import read_all
from events.types import CheckInMissed, MailboxStarted
from supervisor.hang_rule import PAUSE_FRACTION, judge, was_paused

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
PERIOD = 5.0
LIMIT = 30.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def live(last_sign: float, incarnation: int = 1, beats: int = 0) -> Liveness:
    return Liveness(incarnation, at(last_sign), beats=beats)


# --- the pure rule ---------------------------------------------------------------------


def test_a_mailbox_without_progress_beyond_the_limit_is_hung() -> None:
    verdict = judge({"Smile": live(0)}, {"Smile": (1, 0)}, at(31), at(26), PERIOD, LIMIT)

    assert verdict.hung == [("Smile", 1, 31.0)]


def test_a_mailbox_silent_for_exactly_the_limit_is_not_hung_yet() -> None:
    verdict = judge({"Smile": live(0)}, {"Smile": (1, 0)}, at(30), at(25), PERIOD, LIMIT)

    assert verdict.hung == []


def test_a_mailbox_whose_beats_moved_made_progress_and_is_not_hung() -> None:
    # Its last self-test is long ago (a batch to a slow server), but it beat since.
    verdict = judge({"Smile": live(0)}, {"Smile": (1, 7)}, at(100), at(95), PERIOD, LIMIT)

    assert verdict.hung == []
    assert verdict.states["Smile"] == live(100, beats=7)


def test_beats_that_stopped_moving_count_from_when_they_stopped() -> None:
    busy = judge({"Smile": live(0)}, {"Smile": (1, 7)}, at(100), at(95), PERIOD, LIMIT)
    ticks = [at(100 + PERIOD * n) for n in range(1, 8)]
    states, previous, hung = busy.states, at(100), []
    for now in ticks:  # beats stay at 7 from 100 s on
        verdict = judge(states, {"Smile": (1, 7)}, now, previous, PERIOD, LIMIT)
        states, previous, hung = verdict.states, now, hung + verdict.hung

    assert hung == [("Smile", 1, 35.0)]  # the first tick more than 30 s after 100 s


def test_beats_of_another_incarnation_are_no_progress_of_this_one() -> None:
    verdict = judge({"Smile": live(0)}, {"Smile": (2, 9)}, at(31), at(26), PERIOD, LIMIT)

    assert verdict.hung == [("Smile", 1, 31.0)]


def test_a_mailbox_already_reported_is_not_reported_again() -> None:
    reported = live(0)._replace(reported=True)
    verdict = judge({"Smile": reported}, {}, at(100), at(95), PERIOD, LIMIT)

    assert verdict.hung == []


def test_a_late_tick_gives_every_mailbox_a_fresh_deadline() -> None:
    # The whole process was stopped for 60 s: every mailbox is equally late.
    states = {"Smile": live(0), "Harbour": live(2), "Molar": live(4)}
    progress = {"Smile": (1, 0), "Harbour": (1, 0), "Molar": (1, 0)}

    verdict = judge(states, progress, at(65), at(5), PERIOD, LIMIT)

    assert verdict.paused
    assert verdict.hung == []
    assert {db: s.last_sign for db, s in verdict.states.items()} == dict.fromkeys(states, at(65))


def test_after_a_pause_a_mailbox_that_stays_silent_is_hung_one_limit_later() -> None:
    paused = judge({"Smile": live(0)}, {"Smile": (1, 0)}, at(65), at(5), PERIOD, LIMIT)
    states, previous, hung = paused.states, at(65), []
    for n in range(1, 8):
        now = at(65 + PERIOD * n)
        verdict = judge(states, {"Smile": (1, 0)}, now, previous, PERIOD, LIMIT)
        states, previous, hung = verdict.states, now, hung + verdict.hung

    assert hung == [("Smile", 1, 35.0)]


@pytest.mark.parametrize(
    ("gap", "paused"),
    [
        pytest.param(PERIOD, False, id="on-time"),
        pytest.param(PERIOD + LIMIT * PAUSE_FRACTION, False, id="late-by-exactly-the-slack"),
        pytest.param(PERIOD + LIMIT * PAUSE_FRACTION + 0.001, True, id="later"),
        pytest.param(-3.0, False, id="clock-went-back"),
    ],
)
def test_a_tick_is_a_pause_only_when_later_than_its_period_plus_a_quarter_limit(
    gap: float, paused: bool
) -> None:
    assert was_paused(at(100), at(100 + gap), PERIOD, LIMIT) is paused


def test_the_first_tick_is_never_a_pause() -> None:
    assert not was_paused(None, at(1000), PERIOD, LIMIT)


signs = st.floats(min_value=0.0, max_value=10_000.0)
names = st.sampled_from(["Smile", "Harbour", "Molar", "Canine"])
liveness_maps = st.dictionaries(
    names,
    st.builds(
        lambda sign, n, beats, reported: Liveness(n, at(sign), reported, beats),
        signs,
        st.integers(1, 5),
        st.integers(0, 50),
        st.booleans(),
    ),
)
progress_maps = st.dictionaries(names, st.tuples(st.integers(1, 5), st.integers(0, 50)))


@given(liveness_maps, progress_maps, signs, st.floats(min_value=0.0, max_value=10_000.0))
def test_a_tick_after_a_pause_never_finds_a_hang(
    states: dict[str, Liveness], progress: dict[str, tuple[int, int]], now: float, pause: float
) -> None:
    previous = at(now)
    late = previous + timedelta(seconds=PERIOD + LIMIT * PAUSE_FRACTION + 1 + pause)

    assert judge(states, progress, late, previous, PERIOD, LIMIT).hung == []


@given(liveness_maps, progress_maps, signs)
def test_a_mailbox_whose_own_beats_moved_is_never_hung(
    states: dict[str, Liveness], progress: dict[str, tuple[int, int]], now: float
) -> None:
    verdict = judge(states, progress, at(now + 20_000), at(now + 20_000 - PERIOD), PERIOD, LIMIT)

    moved = {
        db
        for db, s in states.items()
        if db in progress and progress[db] == (s.incarnation, s.beats + 1)
    }
    assert not moved & {db for db, _n, _s in verdict.hung}


@given(liveness_maps, progress_maps, signs)
def test_judging_keeps_every_database_and_its_incarnation(
    states: dict[str, Liveness], progress: dict[str, tuple[int, int]], now: float
) -> None:
    verdict = judge(states, progress, at(now), None, PERIOD, LIMIT)

    assert {db: s.incarnation for db, s in verdict.states.items()} == {
        db: s.incarnation for db, s in states.items()
    }


# --- the watchdog actor, on a fake clock -------------------------------------------------


class _Supervisor(pykka.ThreadingActor):
    """Stands in for the supervisor: keeps what it is told."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, MailboxFailed):
            self.told.append(message)
        return None

    def failures(self) -> list[Any]:
        return list(self.told)


class _Watched:
    """A watchdog on a fake clock and scheduler, over an in-memory log and registry."""

    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.scheduler = FakeScheduler(self.clock)
        self.store = InMemoryEventStore(self.clock)
        self.registry = IncarnationRegistry(self.store)
        self.supervisor = _Supervisor.start()
        deps = WatchdogDeps(
            self.store,
            self.clock,
            self.scheduler,
            PERIOD,
            LIMIT,
            self.supervisor,
            progress=self.registry.progress,
        )
        self.watchdog = WatchdogActor.start(deps)
        self.sync()

    def start_mailbox(self, db: str) -> None:
        self.registry.begin(db, 1, [MailboxStarted(1)]).result(timeout=5)

    def sync(self) -> None:
        self.watchdog.ask(Ping(), timeout=5)  # every tick told so far has run

    def advance(self, seconds: float, beating: tuple[str, ...] = ()) -> None:
        """Move time on in one-second steps, the ``beating`` mailboxes beating at each."""
        for _ in range(round(seconds)):
            for db in beating:
                self.registry.beat(db, 1)
            self.scheduler.advance(1.0)
            self.sync()

    def pause(self, seconds: float) -> None:
        """Stop the whole process: time passes, no thread runs, no timer fires."""
        self.clock.advance(seconds)
        self.scheduler.advance(0.0)  # SIGCONT: the overdue tick fires, late
        self.sync()

    def missed(self) -> list[tuple[str, int]]:
        return [
            (r.stream, r.event.incarnation)
            for r in read_all(self.store)
            if isinstance(r.event, CheckInMissed)
        ]

    def stop(self) -> None:
        self.watchdog.stop()
        self.supervisor.stop()


@pytest.fixture
def watched() -> Iterator[_Watched]:
    w = _Watched()
    try:
        yield w
    finally:
        w.stop()


def test_the_watchdog_reports_a_mailbox_that_makes_no_progress(watched: _Watched) -> None:
    watched.start_mailbox("Smile")
    watched.advance(LIMIT + 2 * PERIOD)

    assert watched.missed() == [("db:Smile", 1)]
    assert [f.cause for f in watched.supervisor.proxy().failures().get(timeout=5)] == ["hung"]


def test_the_watchdog_leaves_a_busy_mailbox_alone_for_many_limits(watched: _Watched) -> None:
    # A batch to a slow server: no self-test for four limits, a beat every second.
    watched.start_mailbox("Smile")
    watched.advance(4 * LIMIT, beating=("Smile",))

    assert watched.missed() == []


def test_a_pause_of_the_whole_process_restarts_no_mailbox(watched: _Watched) -> None:
    for db in ("Smile", "Harbour", "Molar"):
        watched.start_mailbox(db)
    watched.advance(10, beating=("Smile", "Harbour", "Molar"))

    watched.pause(3 * LIMIT)
    watched.advance(LIMIT / 2, beating=("Smile", "Harbour", "Molar"))

    assert watched.missed() == []


def test_after_a_pause_a_mailbox_that_stays_stuck_is_still_reported(watched: _Watched) -> None:
    watched.start_mailbox("Smile")
    watched.start_mailbox("Harbour")
    watched.advance(10, beating=("Smile", "Harbour"))
    watched.pause(3 * LIMIT)

    watched.advance(LIMIT + 2 * PERIOD, beating=("Harbour",))  # Smile never beats again

    assert watched.missed() == [("db:Smile", 1)]
