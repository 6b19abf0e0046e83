"""The restart decisions for the supervisor's children that are not mailboxes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from supervisor.child_policy import decide_child
from supervisor.restart_policy import GiveUp, Restart, RestartPolicy

POLICY = RestartPolicy(3, 60.0, 1.0, 30.0)
NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def ago(*seconds: float) -> list[datetime]:
    return [NOW - timedelta(seconds=s) for s in seconds]


def test_a_first_failure_restarts_the_child_at_once() -> None:
    assert decide_child(POLICY, "watchdog", [], NOW, 0.5) == Restart(0.0, 1, "crashed")


def test_later_failures_back_off_like_a_mailbox() -> None:
    decision = decide_child(POLICY, "commands", ago(10), NOW, 0.0)
    assert isinstance(decision, Restart)
    assert (decision.attempt, decision.delay > 0) == (2, True)


def test_too_many_failures_within_the_window_give_up() -> None:
    assert isinstance(decide_child(POLICY, "watchdog", ago(30, 20, 10), NOW, 0.0), GiveUp)


def test_the_http_server_never_gives_up_it_retries_at_the_longest_backoff() -> None:
    assert decide_child(POLICY, "http", ago(30, 20, 10), NOW, 0.0) == Restart(30.0, 4, "crashed")


def test_the_scheduler_is_restarted_without_delay_but_still_gives_up() -> None:
    assert decide_child(POLICY, "scheduler", ago(10), NOW, 0.9) == Restart(0.0, 2, "crashed")
    assert isinstance(decide_child(POLICY, "scheduler", ago(3, 2, 1), NOW, 0.0), GiveUp)
