"""The folds: health per database, the tree, and the whole service view."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from events.memory_store import InMemoryEventStore
from events.projections import DbHealth, HealthStatus, apply_health, apply_tree, fold, replay
from events.projections.health import INITIAL
from events.projections.tree import INITIAL as TREE_INITIAL
from events.recorded import Recorded
from events.replay import replay_store
from events.sql_store import SqlEventStore
from events.store import ANY, read_all
from events.types import (
    CheckInMissed,
    DatabaseDiscovered,
    DatabaseIgnored,
    DatabaseLost,
    Diagnostic,
    Event,
    MailboxCrashed,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    MessageSent,
    RestartScheduled,
    SelfTestFailed,
    SelfTestPassed,
    ServiceStarted,
    ServiceStopping,
)
from tests.event_samples import T0, logs

SMTP_DOWN = (Diagnostic("smtp", "error", "connection refused by smtp.example:587"),)


def health_after(*events: Event) -> DbHealth:
    state = INITIAL
    for i, e in enumerate(events, start=1):
        state = apply_health(state, Recorded(i, "db:a", i, T0 + timedelta(seconds=i), e))
    return state


def test_a_started_mailbox_is_starting() -> None:
    assert health_after(MailboxStarted(1)).status is HealthStatus.STARTING


def test_a_passed_self_test_means_running() -> None:
    h = health_after(MailboxStarted(1), SelfTestPassed(1, ("database",)))
    assert (h.status, h.last_selftest_ok) == (HealthStatus.RUNNING, True)


def test_a_failed_self_test_means_failing_with_its_diagnostics() -> None:
    h = health_after(MailboxStarted(1), SelfTestFailed(1, SMTP_DOWN))
    assert (h.status, h.last_failure) == (HealthStatus.FAILING, SMTP_DOWN)


def test_recovery_keeps_the_last_failure_for_the_record() -> None:
    h = health_after(MailboxStarted(1), SelfTestFailed(1, SMTP_DOWN), SelfTestPassed(1, ()))
    assert (h.status, h.last_failure) == (HealthStatus.RUNNING, SMTP_DOWN)


def test_a_crash_is_crashed_and_counted() -> None:
    h = health_after(MailboxStarted(1), MailboxCrashed(1, "OSError: boom", "tb"))
    assert (h.status, h.crashes_total) == (HealthStatus.CRASHED, 1)
    assert "OSError: boom" in h.last_failure[0].message


def test_a_hung_incarnation_dying_after_its_restart_was_decided_changes_nothing() -> None:
    decided = health_after(
        MailboxStarted(1), CheckInMissed(1, 45.0), RestartScheduled(1.0, "hung", 1)
    )
    late = health_after(
        MailboxStarted(1),
        CheckInMissed(1, 45.0),
        RestartScheduled(1.0, "hung", 1),
        MailboxCrashed(1, "TimeoutError", "tb"),
    )
    assert (late.status, late.crashes_total) == (decided.status, decided.crashes_total)


def test_a_missed_check_in_is_a_hang() -> None:
    h = health_after(MailboxStarted(1), CheckInMissed(1, 45.0))
    assert h.status is HealthStatus.CRASHED
    assert "no progress for 45 s" in h.last_failure[0].message


def test_a_scheduled_restart_is_restarting_and_remembered() -> None:
    h = health_after(MailboxStarted(1), MailboxCrashed(1, "e", ""), RestartScheduled(0, "crash", 1))
    assert (h.status, h.restarts_total, len(h.restart_times)) == (HealthStatus.RESTARTING, 1, 1)


def test_restarts_within_counts_only_the_window() -> None:
    h = health_after(*[RestartScheduled(0, "crash", n) for n in range(1, 6)])
    # restarts were recorded at T0+1 … T0+5 s
    assert h.restarts_within(2.5, T0 + timedelta(seconds=5)) == 3
    assert h.restarts_within(60, T0 + timedelta(seconds=5)) == 5


def test_giving_up_says_why() -> None:
    h = health_after(MailboxGaveUp(5, 60, 300))
    assert h.status is HealthStatus.GAVE_UP
    assert "gave up after 5 restarts" in h.last_failure[0].message


def test_a_stopped_mailbox_is_stopped() -> None:
    assert health_after(MailboxStarted(1), MailboxStopped(1, "shutdown")).status is (
        HealthStatus.STOPPED
    )


def test_a_lost_database_is_stopped() -> None:
    assert health_after(MailboxStarted(1), DatabaseLost("vanished")).status is HealthStatus.STOPPED


def test_words_from_an_abandoned_incarnation_change_nothing() -> None:
    before = health_after(MailboxStarted(1), MailboxStarted(2), SelfTestPassed(2, ()))
    after = apply_health(before, Recorded(9, "db:a", 9, T0, SelfTestFailed(1, SMTP_DOWN)))
    assert after is before


def test_mail_events_leave_health_unchanged() -> None:
    h = health_after(MailboxStarted(1))
    assert apply_health(h, Recorded(5, "db:a", 5, T0, MessageSent(1, 1, "<a@b>", 1))) is h


def tree_after(*events: Event):  # type: ignore[no-untyped-def]
    state = TREE_INITIAL
    for i, e in enumerate(events, start=1):
        state = apply_tree(state, Recorded(i, "db:a", i, T0, e))
    return state


def test_tree_shows_the_live_incarnation() -> None:
    t = tree_after(DatabaseDiscovered("Smile", "eligible"), MailboxStarted(3))
    assert (t.served, t.mailbox_incarnation, t.why_no_mailbox) == (True, 3, "")


def test_tree_says_why_an_ignored_database_has_no_mailbox() -> None:
    t = tree_after(DatabaseIgnored("name contains 'demo'"))
    assert (t.served, t.why_no_mailbox) == (False, "not served: name contains 'demo'")


def test_tree_says_a_crashed_mailbox_is_gone() -> None:
    t = tree_after(
        DatabaseDiscovered("Smile", "eligible"), MailboxStarted(1), MailboxCrashed(1, "E", "")
    )
    assert (t.mailbox_incarnation, t.why_no_mailbox) == (None, "crashed: E")


def test_service_view_tracks_the_process() -> None:
    view = replay(
        [
            Recorded(1, "service", 1, T0, ServiceStarted("SRV1", "0.1", 10)),
            Recorded(2, "service", 2, T0, ServiceStopping("SIGTERM")),
        ]
    )
    assert (view.service.server_id, view.service.running, view.service.stop_reason) == (
        "SRV1",
        False,
        "SIGTERM",
    )


@given(logs(), st.integers(min_value=0, max_value=40))
def test_replay_of_a_whole_log_equals_folding_its_tail_onto_its_head(
    log: list[Recorded], cut: int
) -> None:
    head, tail = log[:cut], log[cut:]
    assert replay(head + tail) == fold(replay(head), tail)


@given(logs())
def test_the_fast_store_replay_equals_the_plain_fold(log: list[Recorded]) -> None:
    store = InMemoryEventStore()
    for r in log:
        store.append(r.stream, ANY, [r.event])
    fast, report = replay_store(store)
    assert report.events == len(log)
    assert fast == replay(read_all(store))


@settings(max_examples=20, deadline=None)
@given(logs(max_size=20), st.integers(min_value=0, max_value=20))
def test_replay_resumes_from_a_view(
    tmp_path_factory: object, log: list[Recorded], cut: int
) -> None:
    store = InMemoryEventStore()
    for r in log:
        store.append(r.stream, ANY, [r.event])
    head_view, _ = replay_store(store, stream=None)
    partial = replay(list(read_all(store))[:cut])
    resumed, _ = replay_store(store, view=partial)
    assert resumed == head_view


def test_replay_until_stops_at_that_time(tmp_path: Path) -> None:
    store = SqlEventStore(f"sqlite:///{tmp_path / 'e.sqlite3'}")
    try:
        store.append("db:a", 0, [MailboxStarted(1)])
        [cut] = store.append("db:a", 1, [SelfTestPassed(1, ())])
        view, _ = replay_store(store, until=cut.recorded_at)
        assert view.health["a"].status is HealthStatus.RUNNING
        assert view.last_seq == 2
    finally:
        store.close()
