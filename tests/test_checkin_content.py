"""What a check-in says, from a database's health: ok, failed for each reason, recovery."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from events.projections.checkin import CheckInMemory, checkin_of, summary_of
from events.projections.health import DbHealth, HealthStatus
from events.types import Diagnostic

T0 = datetime(2026, 11, 27, 9, 0, 0)
SMTP_DOWN = (Diagnostic("smtp", "error", "535 5.7.8 authentication failed"),)


def test_a_running_mailbox_checks_in_ok_without_lines() -> None:
    content, memory = checkin_of(DbHealth(HealthStatus.RUNNING), CheckInMemory(), T0)
    assert (content.ok, content.summary, content.lines) == (True, "", ())
    assert memory == CheckInMemory()


def test_a_failing_self_test_names_the_component_and_the_servers_words() -> None:
    health = DbHealth(HealthStatus.FAILING, last_failure=SMTP_DOWN)
    content, _ = checkin_of(health, CheckInMemory(), T0)
    assert content.ok is False
    assert content.summary == "Sending (SMTP): 535 5.7.8 authentication failed"
    assert content.lines == (("error", "smtp", "535 5.7.8 authentication failed"),)


def test_a_crashed_mailbox_gives_a_failed_checkin_that_says_so() -> None:
    crash = (Diagnostic("service", "error", "the mailbox crashed: KeyError: 'x'"),)
    content, _ = checkin_of(DbHealth(HealthStatus.CRASHED, last_failure=crash), CheckInMemory(), T0)
    assert content.ok is False
    assert "mailbox stopped (the mailbox crashed: KeyError: 'x')" in content.summary


def test_a_restarting_mailbox_gives_a_failed_checkin_that_says_so() -> None:
    health = DbHealth(HealthStatus.RESTARTING, restarts_total=3)
    content, _ = checkin_of(health, CheckInMemory(), T0)
    assert (content.ok, content.summary) == (
        False,
        "Email service: restarting this database's mailbox (restart 3)",
    )


def test_a_given_up_mailbox_gives_a_failed_checkin_that_says_so() -> None:
    gave_up = (Diagnostic("service", "error", "gave up after 5 restarts within 60 s"),)
    content, _ = checkin_of(
        DbHealth(HealthStatus.GAVE_UP, last_failure=gave_up), CheckInMemory(), T0
    )
    assert content.ok is False
    assert "keeps failing; gave up after 5 restarts within 60 s" in content.summary


def test_the_first_ok_checkin_after_an_outage_says_how_long_it_lasted() -> None:
    _, memory = checkin_of(
        DbHealth(HealthStatus.FAILING, last_failure=SMTP_DOWN), CheckInMemory(), T0
    )
    _, memory = checkin_of(
        DbHealth(HealthStatus.FAILING, last_failure=SMTP_DOWN), memory, T0 + timedelta(minutes=30)
    )
    back = T0 + timedelta(hours=1, minutes=12)
    content, memory = checkin_of(DbHealth(HealthStatus.RUNNING), memory, back)
    assert content.ok is True
    assert content.lines == (
        (
            "info",
            "service",
            "Email was not available for 1 h 12 min, "
            "from 2026-11-27 09:00:00 to 2026-11-27 10:12:00 UTC",
        ),
    )
    assert memory == CheckInMemory()


def test_summary_prefers_the_first_error_over_warnings() -> None:
    diagnostics = (
        Diagnostic("imap", "warning", "slow"),
        Diagnostic("database", "error", "does not answer"),
    )
    assert summary_of(diagnostics) == "Practice database: does not answer"


@given(st.sampled_from(list(HealthStatus)))
def test_ok_exactly_when_running(status: HealthStatus) -> None:
    content, _ = checkin_of(DbHealth(status), CheckInMemory(), T0)
    assert content.ok == (status is HealthStatus.RUNNING)
    assert content.ok or content.summary
