"""The rule that tells an inbox that stopped checking for mail (issue 13, item 4), pure.

Timelines on a fake clock: passes of the inbox step and self-tests as the mailbox runs
them, in its one thread (a self-test never looks while a pass is under way).
"""

from __future__ import annotations

import pytest

from actors.mail.inbox_progress import (
    STALL_SELFTESTS,
    InboxWatch,
    looked,
    passed,
    stall_after,
    stall_words,
    stalled_for,
)
from events.clock import FakeClock

CHECKIN = 15.0
INBOX_POLL = 30.0
SETTINGS_EVERY = 30.0
LIMIT = stall_after(INBOX_POLL, CHECKIN, SETTINGS_EVERY)


class Mailbox:
    """One inbox's watch as the mailbox keeps it, on a fake clock."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.watch = passed(self.clock.monotonic())  # the inbox was just set up
        self.found: list[float] = []  # each self-test's verdict that it stopped

    def inbox_pass(self, takes: float = 0.0) -> None:
        self.clock.advance(takes)
        self.watch = passed(self.clock.monotonic())

    def selftest(self) -> float | None:
        now = self.clock.monotonic()
        self.watch = looked(self.watch, now, LIMIT)
        quiet = stalled_for(self.watch, now, LIMIT)
        if quiet is not None:
            self.found.append(quiet)
        return quiet

    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)


def test_the_bound_comes_from_the_configuration() -> None:
    assert stall_after(30.0, 15.0, 30.0) == 180.0  # the defaults: 3 min
    assert stall_after(600.0, 15.0, 30.0) == 2 * (600.0 + 60.0)  # a slow poll, a longer wait
    assert stall_after(1.0, 60.0, 30.0) == 2 * (30.0 + 240.0)  # long check-ins, likewise


def test_a_mailbox_just_started_is_not_stalled() -> None:
    box = Mailbox()
    assert box.selftest() is None  # the first self-test comes before the first pass


def test_an_inbox_in_idle_ending_a_pass_every_few_seconds_is_never_stalled() -> None:
    box = Mailbox()
    for second in range(0, 3600, 5):
        box.wait(5)
        box.inbox_pass()
        if second % int(CHECKIN) == 0:
            box.selftest()
    assert box.found == []


def test_an_inbox_without_idle_polled_at_its_interval_is_never_stalled() -> None:
    box = Mailbox()
    for _ in range(120):  # an hour: a self-test every 15 s, a poll every 30 s
        box.selftest()
        box.wait(CHECKIN)
        box.selftest()
        box.wait(CHECKIN)
        box.inbox_pass()
    assert box.found == []


def test_an_inbox_whose_turn_waits_behind_slow_steps_is_not_stalled() -> None:
    box = Mailbox()
    for _ in range(20):
        box.wait(INBOX_POLL)
        box.selftest()  # a self-test whose probes wait on slow servers...
        box.wait(2 * CHECKIN)
        box.selftest()
        box.wait(2 * CHECKIN)  # ...and an outbox round up to its yield
        box.inbox_pass()
    assert box.found == []


def test_a_slow_imap_server_makes_a_pass_long_never_missing() -> None:
    box = Mailbox()
    box.selftest()
    box.inbox_pass(takes=20 * 60)  # 20 minutes of importing: no self-test meanwhile
    assert box.selftest() is None


def test_an_imap_server_that_does_not_answer_is_its_own_fault_not_a_stall() -> None:
    box = Mailbox()
    for _ in range(30):  # each attempt times out and is tried again after the poll interval
        box.inbox_pass(takes=CHECKIN)
        box.selftest()
        box.wait(INBOX_POLL)
        box.selftest()
    assert box.found == []


def test_an_inbox_step_that_is_no_longer_scheduled_is_stalled_after_the_bound() -> None:
    box = Mailbox()
    box.inbox_pass()
    verdicts = []
    for _ in range(int(12 * 60 / CHECKIN)):
        box.wait(CHECKIN)
        verdicts.append(box.selftest())
    first = next(i for i, v in enumerate(verdicts) if v is not None)
    # the third self-test in a row past the bound
    assert (first + 1) * CHECKIN == LIMIT + STALL_SELFTESTS * CHECKIN
    assert verdicts[-1] == 12 * 60


def test_an_inbox_set_up_and_never_run_is_stalled() -> None:
    box = Mailbox()
    for _ in range(int(LIMIT / CHECKIN) + STALL_SELFTESTS):
        box.wait(CHECKIN)
        box.selftest()
    assert box.found == [LIMIT + STALL_SELFTESTS * CHECKIN]


def test_a_paused_process_is_not_a_stall() -> None:
    box = Mailbox()
    box.inbox_pass()
    for _ in range(2):  # without IDLE: two self-tests between polls
        box.wait(CHECKIN)
        box.selftest()
    box.wait(20 * 60)  # SIGSTOP, or a suspended virtual machine
    assert box.selftest() is None  # first in the tick after the pause...
    box.inbox_pass()  # ...and the inbox right after it
    box.wait(CHECKIN)
    assert box.selftest() is None


def test_self_tests_that_did_not_look_do_not_count() -> None:
    # The database did not answer for ten minutes: the self-test failed for it and did not
    # look at the mail. Once it answers, the inbox gets its turns before it is judged.
    box = Mailbox()
    box.inbox_pass()
    for _ in range(2):
        box.wait(CHECKIN)
        box.selftest()
    box.wait(10 * 60)
    verdicts = [box.selftest()]
    box.wait(CHECKIN)
    verdicts.append(box.selftest())
    box.inbox_pass()
    box.wait(CHECKIN)
    verdicts.append(box.selftest())
    assert verdicts == [None, None, None]


def test_it_takes_self_tests_in_a_row_past_the_bound() -> None:
    watch = InboxWatch(since=0.0)
    for _ in range(5):
        watch = looked(watch, LIMIT - 1, LIMIT)  # looks within the bound count for nothing
    watch = looked(watch, LIMIT + 1, LIMIT)
    assert stalled_for(watch, LIMIT + 1, LIMIT) is None
    watch = looked(looked(watch, LIMIT + 2, LIMIT), LIMIT + 3, LIMIT)
    assert stalled_for(watch, LIMIT + 3, LIMIT) == LIMIT + 3
    assert stalled_for(InboxWatch(0.0, 99), LIMIT, LIMIT) is None  # at the bound: not yet


@pytest.mark.parametrize(
    ("quiet", "words"),
    [(45.0, "45 s"), (725.0, "12 min"), (4_330.0, "1 h 12 min"), (60.0, "1 min")],
)
def test_the_words_say_for_how_long_in_whole_minutes(quiet: float, words: str) -> None:
    assert stall_words(quiet).startswith(f"incoming mail not checked for {words}: ")
