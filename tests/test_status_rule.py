"""The workstation status rule: one pure function, every case of the contract."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from events.describe import describe_duration
from supervisor.status_rule import (
    FAULT_TOOLTIP,
    NEVER_TOOLTIP,
    RUNNING_TOOLTIP,
    CheckIn,
    status_of,
)

T0 = datetime(2026, 11, 27, 9, 0, 0)
INTERVAL = timedelta(seconds=15)
GRACE = timedelta(seconds=15)


def checkin(
    at: datetime,
    *,
    ok: bool = True,
    summary: str = "",
    server: str = "SRV1",
    instance: str | None = None,
) -> CheckIn:
    return CheckIn(at, at + INTERVAL, ok, summary, server, instance)


def test_no_checkin_is_not_available() -> None:
    status = status_of([], T0, GRACE)
    assert (status.status, status.tooltip, status.last_checkin_at) == (
        "not_available",
        NEVER_TOOLTIP,
        None,
    )


def test_a_fresh_ok_checkin_is_running() -> None:
    status = status_of([checkin(T0)], T0 + timedelta(seconds=5), GRACE)
    assert (status.status, status.tooltip, status.last_checkin_at) == (
        "running",
        RUNNING_TOOLTIP,
        T0,
    )


def test_running_until_due_time_plus_grace_inclusive() -> None:
    assert status_of([checkin(T0)], T0 + INTERVAL + GRACE, GRACE).running


def test_late_checkin_is_not_available_and_says_since_when() -> None:
    now = T0 + timedelta(hours=1, minutes=12)
    status = status_of([checkin(T0)], now, GRACE)
    assert status.status == "not_available"
    assert status.tooltip == (
        "Nothing heard from the email service since 2026-11-27 09:00:00 UTC (1 h 12 min ago)"
    )


def test_failed_checkin_shows_its_summary() -> None:
    failed = checkin(T0, ok=False, summary="SMTP: 535 authentication failed")
    status = status_of([failed], T0, GRACE)
    assert (status.status, status.tooltip) == ("not_available", "SMTP: 535 authentication failed")


def test_failed_checkin_without_summary_gets_a_general_tooltip() -> None:
    assert status_of([checkin(T0, ok=False)], T0, GRACE).tooltip == FAULT_TOOLTIP


def test_only_the_newest_checkin_decides() -> None:
    older_failure = checkin(T0 - INTERVAL, ok=False, summary="broken")
    assert status_of([checkin(T0), older_failure], T0, GRACE).running


def test_two_servers_within_one_interval_are_reported() -> None:
    rows = [checkin(T0, server="SRV2"), checkin(T0 - timedelta(seconds=7), server="SRV1")]
    status = status_of(rows, T0, GRACE)
    assert status.status == "not_available"
    assert status.two_services == ("SRV1", "SRV2")
    assert status.tooltip == "Two email services are serving this database: SRV1 and SRV2"


def test_a_server_change_longer_ago_than_one_interval_is_not_two_services() -> None:
    rows = [checkin(T0, server="NEW"), checkin(T0 - 2 * INTERVAL, server="OLD")]
    assert status_of(rows, T0, GRACE).running


def test_the_workstation_clock_is_not_used_only_the_given_now() -> None:
    # A check-in written "in the future" by the server's clock is still judged by that clock.
    future = datetime(2030, 1, 1)
    assert status_of([checkin(future)], future, GRACE).running


@given(
    offset=st.integers(min_value=0, max_value=10_000),
    ok=st.booleans(),
    grace=st.integers(min_value=0, max_value=600),
)
def test_running_exactly_when_ok_and_not_late(offset: int, ok: bool, grace: int) -> None:
    now = T0 + timedelta(seconds=offset)
    status = status_of([checkin(T0, ok=ok, summary="x")], now, timedelta(seconds=grace))
    late = now > T0 + INTERVAL + timedelta(seconds=grace)
    assert status.running == (ok and not late)


def test_durations_read_like_people_write_them() -> None:
    assert describe_duration(timedelta(seconds=40)) == "40 s"
    assert describe_duration(timedelta(minutes=3, seconds=5)) == "3 min 5 s"
    assert describe_duration(timedelta(hours=1, minutes=12, seconds=9)) == "1 h 12 min"
    assert describe_duration(timedelta(days=2, hours=3)) == "2 d 3 h"
    assert describe_duration(timedelta(0)) == "0 s"


A = "host-a pid 100 start 0a0a0a0a"
B = "host-b pid 200 start 0b0b0b0b"
A_WHO = f"SRV1 ({A})"
B_WHO = f"SRV1 ({B})"


def test_a_restart_of_the_same_server_is_not_two_services() -> None:
    rows = [checkin(T0 + timedelta(seconds=s), instance=n) for s, n in [(0, A), (15, A), (20, B)]]
    status = status_of(rows[::-1], T0 + timedelta(seconds=21), GRACE)
    assert status.running


@given(
    gaps=st.lists(st.floats(0.0, 60.0), min_size=1, max_size=4),
    jitter=st.floats(0.0, 14.9),
)
def test_restarts_never_show_two_services_at_any_checkin(gaps: list[float], jitter: float) -> None:
    # Each start checks in every interval until the next start (a restart after a gap of
    # `gap` seconds, quick or slow); the contract's server_name is the same server_id.
    times: list[tuple[float, str]] = []
    at = 0.0
    for n, gap in enumerate([*gaps, 0.0]):
        for k in range(4):
            times.append((at + 15.0 * k, f"host-a pid {n} start {n:08x}"))
        at += 15.0 * 3 + jitter + gap
    rows: list[CheckIn] = []
    for moment, instance in times:
        rows.insert(0, checkin(T0 + timedelta(seconds=moment), instance=instance))
        status = status_of(rows[:10], rows[0].checked_in_at, GRACE)
        assert status.two_services == (), moment


@given(offset=st.floats(0.1, 14.9))
def test_two_starts_of_one_server_id_stay_not_available_at_every_checkin(
    offset: float,
) -> None:
    # A checks in every interval; B, the same server_id elsewhere, starts later. From
    # the check-in after B's first one, every check-in either writes shows both.
    times = sorted(
        [(15.0 * k, A) for k in range(8)] + [(15.0 * k + offset, B) for k in range(1, 8)]
    )
    rows: list[CheckIn] = []
    seen_b = 0
    for at, instance in times:
        rows.insert(0, checkin(T0 + timedelta(seconds=at), instance=instance))
        if seen_b:
            status = status_of(rows[:10], rows[0].checked_in_at, GRACE)
            assert (status.running, status.two_services) == (False, (A_WHO, B_WHO)), at
        seen_b += instance == B


def test_two_server_names_are_two_services_whatever_their_instances() -> None:
    rows = [
        checkin(T0, server="SRV2", instance=B),
        checkin(T0 - timedelta(seconds=7), server="SRV1", instance=A),
    ]
    assert status_of(rows, T0, GRACE).two_services == ("SRV1", "SRV2")
