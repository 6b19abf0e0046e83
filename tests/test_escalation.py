"""When most mailboxes fail at once for the first time, the process restarts (pure rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events.recorded import Recorded
from events.types import RestartScheduled
from supervisor.escalation import (
    BURST_WINDOW_SECONDS,
    counts_toward_burst,
    crash_burst,
    recent_failures,
)
from supervisor.restart_policy import GiveUp, Restart

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


WINDOW = 60.0


def history(*timed: tuple[float, str]) -> list[Recorded]:
    """A stream of ``RestartScheduled`` events, each (seconds after T0, cause)."""
    return [
        Recorded(seq, "db:x", seq, at(seconds), RestartScheduled(0.0, cause, seq))
        for seq, (seconds, cause) in enumerate(timed, start=1)
    ]


def test_an_immediate_first_restart_counts_toward_a_burst() -> None:
    first = Restart(delay=0.0, attempt=1, cause="crashed")

    assert counts_toward_burst(first, [], at(0), WINDOW)


def test_a_restart_after_a_recent_failures_restart_does_not_count() -> None:
    second = Restart(delay=1.0, attempt=2, cause="crashed")

    assert not counts_toward_burst(second, history((0, "hung")), at(59), WINDOW)


def test_a_failures_restart_older_than_the_window_is_forgotten() -> None:
    second = Restart(delay=1.0, attempt=2, cause="crashed")

    assert counts_toward_burst(second, history((0, "crashed")), at(WINDOW), WINDOW)


def test_a_restart_people_asked_for_does_not_make_a_crash_loop() -> None:
    after_request = Restart(delay=1.0, attempt=2, cause="crashed")

    assert counts_toward_burst(after_request, history((0, "requested")), at(1), WINDOW)


def test_a_give_up_does_not_count_toward_a_burst() -> None:
    gave_up = GiveUp(restarts=5, within_seconds=60.0, retry_in=300.0)

    assert not counts_toward_burst(gave_up, [], at(0), WINDOW)


def test_three_of_four_failing_at_once_is_a_burst() -> None:
    failures = {"a": at(0), "b": at(1), "c": at(2)}

    assert crash_burst(failures, served=4, now=at(2))


def test_two_failing_at_once_is_never_a_burst() -> None:
    assert not crash_burst({"a": at(0), "b": at(0)}, served=2, now=at(0))


def test_half_of_those_served_failing_is_not_a_burst() -> None:
    failures = {"a": at(0), "b": at(0), "c": at(0)}

    assert not crash_burst(failures, served=6, now=at(0))


def test_failures_older_than_the_window_are_not_counted() -> None:
    failures = {"a": at(0), "b": at(BURST_WINDOW_SECONDS), "c": at(BURST_WINDOW_SECONDS)}

    assert not crash_burst(failures, served=3, now=at(BURST_WINDOW_SECONDS))


def test_recent_failures_keeps_only_the_window() -> None:
    failures = {"old": at(0), "edge": at(5), "new": at(15), "later": at(16)}

    assert recent_failures(failures, at(15)) == {"new": at(15)}
