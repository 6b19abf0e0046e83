"""The supervision tree: start, let it crash, back off, give up, hangs, rescans, commands."""

from __future__ import annotations

import threading
from collections.abc import Iterator, ValuesView

import pytest

from actors.command_reader import next_interval
from actors.fence import StaleIncarnationError
from actors.messages import MailboxFailed, Rescan, RestartCommand
from actors.scheduler import coalesced_due
from events.clock import FakeClock
from events.types import (
    CheckInMissed,
    DatabaseDiscovered,
    DatabaseIgnored,
    DatabaseLost,
    MailboxCrashed,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    RestartRequested,
    RestartScheduled,
    SelfTestPassed,
    ServiceStarted,
)
from supervisor.restart_policy import RestartPolicy
from supervisor.supervisor_actor import Served
from tests.tree_harness import CHECKIN, HANG_AFTER, Harness


@pytest.fixture
def tree() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.stop()


def test_it_starts_one_mailbox_per_eligible_database(tree: Harness) -> None:
    tree.add("Smile Dental")
    tree.add("Harbour Dental")
    tree.add("Demo Practice", eligible=False, reason="name contains 'demo'")
    tree.start()
    tree.wait_event("Harbour Dental", SelfTestPassed, incarnation=1)
    tree.wait_event("Smile Dental", SelfTestPassed, incarnation=1)
    assert tree.ask("mailboxes") == {"Smile Dental": 1, "Harbour Dental": 1}
    assert tree.events("Demo Practice", DatabaseIgnored) == [
        DatabaseIgnored("name contains 'demo'")
    ]
    assert tree.events("Smile Dental", DatabaseDiscovered) == [
        DatabaseDiscovered("Smile Dental", "eligible")
    ]


def test_the_service_start_is_logged(tree: Harness) -> None:
    tree.start()
    assert isinstance(tree.wait_event("service", ServiceStarted).event, ServiceStarted)


def test_self_tests_repeat_every_checkin_interval(tree: Harness) -> None:
    tree.add("Smile")
    tree.start()
    tree.wait_event("Smile", SelfTestPassed, incarnation=1)
    tree.advance(CHECKIN)
    tree.wait_event("Smile", SelfTestPassed, incarnation=1)
    assert len(tree.events("Smile", SelfTestPassed)) == 2


def test_a_crash_restarts_the_mailbox_at_once_as_the_next_incarnation(tree: Harness) -> None:
    tree.add("Smile")
    tree.start()
    tree.wait_event("Smile", SelfTestPassed, incarnation=1)
    tree.modes["Smile#1"] = "raise"
    tree.advance(CHECKIN)
    crash = tree.wait_event("Smile", MailboxCrashed, incarnation=1).event
    assert crash.error == "RuntimeError: scripted crash of Smile"
    assert "Traceback" in crash.traceback
    assert tree.wait_event("Smile", RestartScheduled).event == RestartScheduled(0.0, "crashed", 1)
    tree.wait_event("Smile", SelfTestPassed, incarnation=2)  # no timer: the clock stood still


def test_repeated_crashes_back_off_then_give_up_then_retry_slowly(tree: Harness) -> None:
    tree.add("Smile")
    tree.modes["Smile"] = "raise"
    tree.start()
    delays = []
    for attempt in range(1, 4):
        delays.append(tree.wait_event("Smile", RestartScheduled, attempt=attempt).event.delay)
        tree.advance(delays[-1])
    assert delays == [0.0, 1.0, 2.0]  # policy: at once, then min 1 s doubling (jitter 0)
    gave_up = tree.wait_event("Smile", MailboxGaveUp).event
    assert gave_up == MailboxGaveUp(3, 60.0, 8.0)
    tree.advance(7.9)
    assert tree.ask("mailboxes") == {"Smile": None}
    tree.modes["Smile"] = "ok"
    tree.advance(0.1)
    tree.wait_event("Smile", SelfTestPassed, incarnation=5)


def test_a_failed_retry_after_giving_up_gives_up_again(tree: Harness) -> None:
    tree.add("Smile")
    tree.modes["Smile"] = "raise"
    tree.start()
    for attempt in range(1, 4):
        tree.advance(tree.wait_event("Smile", RestartScheduled, attempt=attempt).event.delay)
    tree.wait_event("Smile", MailboxGaveUp)
    tree.advance(8.0)
    tree.wait_event("Smile", MailboxCrashed, incarnation=5)
    tree.wait_event("Smile", MailboxGaveUp)
    assert tree.events("Smile", RestartScheduled)[-1].attempt == 3


def test_restart_counts_survive_a_restart_of_the_process(tree: Harness) -> None:
    tree.add("Smile")
    tree.modes["Smile"] = "raise"
    tree.start()
    tree.advance(tree.wait_event("Smile", RestartScheduled, attempt=1).event.delay)
    tree.wait_event("Smile", RestartScheduled, attempt=2)
    tree.stop()
    tree.hanging.clear()
    tree.advance(1.0)
    tree.start()  # a new process: same log, fresh actors
    tree.wait_event("Smile", MailboxStarted, incarnation=3)  # the old process never started 3
    scheduled = tree.wait_event("Smile", RestartScheduled)
    assert scheduled.event.attempt == 3


def test_a_hung_mailbox_is_replaced_and_its_late_writes_refused(tree: Harness) -> None:
    tree.add("Smile")
    tree.start()
    tree.wait_event("Smile", SelfTestPassed, incarnation=1)
    tree.modes["Smile#1"] = "hang"
    tree.advance(CHECKIN)  # incarnation 1 starts its next self-test and hangs
    # No progress since the hang began. Two watchdog periods (5 s each) past the limit:
    # the hang may begin up to a step after the check-in is due, and the watchdog's ticks
    # need not fall on the check-in's grid, so one period left it borderline.
    tree.advance(HANG_AFTER + 10.0)
    missed = tree.wait_event("Smile", CheckInMissed, incarnation=1).event
    assert missed.overdue_seconds > HANG_AFTER
    tree.wait_event("Smile", RestartScheduled, cause="hung")
    tree.advance(0)
    tree.wait_event("Smile", SelfTestPassed, incarnation=2)
    with pytest.raises(StaleIncarnationError, match="incarnation 1 of 'Smile' was abandoned"):
        tree.registry.append("Smile", 1, [SelfTestPassed(1, ())])


def test_a_rescan_starts_new_databases_and_stops_vanished_ones(tree: Harness) -> None:
    tree.add("Smile")
    tree.start()
    tree.wait_event("Smile", SelfTestPassed, incarnation=1)
    del tree.databases["Smile"]
    tree.add("Harbour")
    tree.advance(60.0)
    tree.wait_event("Harbour", SelfTestPassed, incarnation=1)
    tree.wait_event("Smile", DatabaseLost)
    assert (
        tree.events("Smile", MailboxStopped)[-1].reason == "the database is no longer on the server"
    )
    assert tree.ask("mailboxes") == {"Harbour": 1}


def test_a_database_that_becomes_ineligible_is_stopped(tree: Harness) -> None:
    tree.add("Smile")
    tree.start()
    tree.wait_event("Smile", SelfTestPassed, incarnation=1)
    tree.add("Smile", eligible=False, reason="name contains 'test'")
    tree.advance(60.0)
    assert tree.wait_event("Smile", DatabaseLost).event == DatabaseLost("name contains 'test'")


def test_an_unchanged_rescan_appends_nothing(tree: Harness) -> None:
    tree.add("Smile")
    tree.add("Demo", eligible=False, reason="name contains 'demo'")
    tree.start()
    tree.wait_event("Smile", SelfTestPassed, incarnation=1)
    before = len(tree.events("Demo", DatabaseIgnored)) + len(
        tree.events("Smile", DatabaseDiscovered)
    )
    tree.advance(60.0)
    tree.wait_event("Smile", SelfTestPassed)  # the tree has turned over since the rescan
    tree.ask("mailboxes")
    after = len(tree.events("Demo", DatabaseIgnored)) + len(
        tree.events("Smile", DatabaseDiscovered)
    )
    assert after == before


def test_a_restart_command_restarts_once_for_many_rows(tree: Harness) -> None:
    tree.add("Smile")
    tree.start()
    tree.wait_event("Smile", SelfTestPassed, incarnation=1)
    assert tree.supervisor is not None
    tree.supervisor.tell(RestartCommand("Smile", "workstation", "RECEPTION", (7, 8, 9)))
    assert tree.wait_event("Smile", RestartRequested).event == RestartRequested(
        "workstation", "RECEPTION", 7
    )
    tree.wait_event("Smile", SelfTestPassed, incarnation=2)
    assert len(tree.events("Smile", MailboxStarted)) == 2
    assert tree.events("Smile", MailboxStopped) == [MailboxStopped(1, "restart requested")]


def test_most_mailboxes_crashing_at_once_stops_the_process(tree: Harness) -> None:
    for n in range(4):
        tree.add(f"P{n}")
    tree.start()
    tree.settle()
    for n in range(4):
        tree.modes[f"P{n}"] = "raise"
    tree.advance(CHECKIN)
    assert tree.fatal[:1] == ["3 mailboxes failed at once; the process must restart"]


def test_a_crash_is_in_the_log_before_its_restart_decision_and_the_next_start(
    tree: Harness,
) -> None:
    tree.add("Smile")
    tree.modes["Smile#1"] = "raise"
    tree.start()
    tree.wait_event("Smile", SelfTestPassed, incarnation=2)
    kinds = [type(e).__name__ for e in tree.events_of("Smile")]
    crashed = kinds.index("MailboxCrashed")
    assert kinds[crashed : crashed + 3] == ["MailboxCrashed", "RestartScheduled", "MailboxStarted"]


class GatedListing(dict[str, Served]):
    """The database server's listing, counting its reads; a closed gate holds a read.

    Holding the supervisor in a rescan lets a test queue messages behind it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.gate = threading.Event()
        self.gate.set()

    def values(self) -> ValuesView[Served]:  # type: ignore[override]  # dict_values is private
        self.reads += 1
        self.gate.wait(timeout=30)
        return super().values()


@pytest.fixture
def listing(tree: Harness) -> Iterator[GatedListing]:
    gated = GatedListing()
    tree.databases = gated
    yield gated
    gated.gate.set()


def _hold_the_supervisor_in_a_rescan(tree: Harness, listing: GatedListing) -> None:
    assert tree.supervisor is not None
    listing.gate.clear()
    tree.supervisor.tell(Rescan())


def test_restart_commands_that_arrive_while_one_is_pending_make_one_restart(
    tree: Harness, listing: GatedListing
) -> None:
    tree.add("Smile")
    tree.start()
    tree.wait_event("Smile", SelfTestPassed, incarnation=1)
    _hold_the_supervisor_in_a_rescan(tree, listing)
    assert tree.supervisor is not None
    for n in range(3):  # three polls' or sources' commands, queued together
        tree.supervisor.tell(RestartCommand("Smile", "cli", "cli:admin", (n,)))
    listing.gate.set()
    tree.wait_event("Smile", SelfTestPassed, incarnation=2)
    tree.settle()
    assert [e.command_id for e in tree.events("Smile", RestartRequested)] == [0, 1, 2]
    assert [e.incarnation for e in tree.events("Smile", MailboxStarted)] == [1, 2]


def test_a_restart_request_answered_by_a_failures_restart_restarts_no_more(
    tree: Harness, listing: GatedListing
) -> None:
    tree.add("Smile")
    tree.start()
    tree.wait_event("Smile", SelfTestPassed, incarnation=1)
    _hold_the_supervisor_in_a_rescan(tree, listing)
    assert tree.supervisor is not None
    tree.supervisor.tell(RestartCommand("Smile", "workstation", "RECEPTION", (7,)))
    tree.supervisor.tell(MailboxFailed("Smile", 1, "hung", "no progress for 31 s"))
    listing.gate.set()
    tree.wait_event("Smile", SelfTestPassed, incarnation=2)
    tree.settle()
    assert [e.cause for e in tree.events("Smile", RestartScheduled)] == ["hung"]
    assert tree.ask("mailboxes") == {"Smile": 2}


def test_a_rescan_from_outside_starts_no_second_rescan_chain(
    tree: Harness, listing: GatedListing
) -> None:
    tree.add("Smile")
    tree.start()
    assert tree.supervisor is not None
    tree.supervisor.tell(Rescan())
    tree.settle()
    tree.advance(61.0)
    assert listing.reads == 3  # at the start, from outside, and one periodic


def test_the_crash_burst_message_counts_only_recent_failures(tree: Harness) -> None:
    for name in ("A", "B", "C", "D", "E"):
        tree.add(name)
    tree.modes["A#1"] = "raise"  # fails once long before the others
    tree.start()
    tree.wait_event("A", SelfTestPassed, incarnation=2)
    tree.advance(30.0)
    for name in ("B", "C", "D"):
        tree.modes[f"{name}#1"] = "raise"
    tree.advance(CHECKIN)
    assert tree.fatal == ["3 mailboxes failed at once; the process must restart"]


def test_a_give_up_is_still_in_force_in_the_next_process() -> None:
    # A window shorter than the give-up's retry: the next process sees no recent restart.
    tree = Harness(policy=RestartPolicy(3, 10.0, 1.0, 30.0))
    try:
        tree.add("Smile")
        tree.modes["Smile"] = "raise"
        tree.start()
        tree.advance(20.0)  # three restarts, then a give-up; its retry is 30 s away
        assert len(tree.events("Smile", MailboxGaveUp)) == 1
        tree.stop()
        tree.hanging.clear()
        tree.start()  # a new process starts the mailbox at once; it crashes again
        tree.wait_event("Smile", MailboxCrashed, incarnation=5)
        tree.settle()
        assert len(tree.events("Smile", RestartScheduled)) == 3
        assert tree.events("Smile", MailboxGaveUp) == [MailboxGaveUp(3, 10.0, 30.0)] * 2
    finally:
        tree.stop()


def test_a_quiet_databases_command_poll_interval_doubles_up_to_the_ceiling() -> None:
    intervals = [5.0]
    for _ in range(4):
        intervals.append(next_interval(intervals[-1], False, 5.0, 15.0))
    assert intervals == [5.0, 10.0, 15.0, 15.0, 15.0]


def test_a_command_brings_the_poll_interval_back_to_the_base() -> None:
    assert next_interval(15.0, True, 5.0, 15.0) == 5.0


def test_timers_a_second_or_more_away_fall_on_the_grid() -> None:
    assert coalesced_due(100.01, 15.0, 0.05) == pytest.approx(115.05)


def test_timers_under_a_second_run_on_time() -> None:
    assert coalesced_due(100.01, 0.5, 0.05) == pytest.approx(100.51)


class CountingStep:
    """A mail step stand-in that counts its rounds and asks for one every 5 s."""

    def __init__(self) -> None:
        self.rounds = 0

    def run(self) -> float:
        self.rounds += 1
        return 5.0

    def close(self) -> None:
        pass


def test_a_work_step_runs_at_its_own_pace_beside_the_selftest() -> None:
    step = CountingStep()
    h = Harness(make_work=lambda _context: [step])
    try:
        h.add("Smile")
        h.start()
        h.wait_event("Smile", SelfTestPassed, incarnation=1)
        h.advance(CHECKIN)
        assert (step.rounds, len(h.events("Smile", SelfTestPassed))) == (4, 2)
    finally:
        h.stop()


class TimedStep:
    """A mail step stand-in that notes the clock each time it runs, every ``period`` s."""

    def __init__(self, clock: FakeClock, period: float) -> None:
        self.clock = clock
        self.period = period
        self.ran_at: list[float] = []

    def run(self) -> float:
        self.ran_at.append(round(self.clock.monotonic(), 6))
        return self.period

    def close(self) -> None:
        pass


def test_steps_due_close_together_share_one_wake_when_timers_fire_late() -> None:
    # Timers fire up to 0.4 s late (the clock moves in 0.4 s steps), so each step's own
    # period would drift it away from the others: a 15 s step and a 30 s one (the
    # check-in's pace and the idle outbox's) would wake the mailbox at different times.
    h = Harness()
    every_15 = TimedStep(h.clock, CHECKIN)
    every_30 = TimedStep(h.clock, 2 * CHECKIN)
    h.make_work = lambda _context: [every_15, every_30]
    try:
        h.add("Smile")
        h.start()
        h.wait_event("Smile", SelfTestPassed, incarnation=1)
        h.advance(8 * CHECKIN, step=0.4)
        assert len(every_30.ran_at) >= 4
        assert set(every_30.ran_at) <= set(every_15.ran_at)
    finally:
        h.stop()
