"""max_per_minute as a sliding window, and the retry backoff (pure): tables and hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.mail.backoff import BASE_SECONDS, CAP_SECONDS, JITTER_SHARE, retry_delay
from actors.mail.throttle import UNLIMITED, SendLog, allowance, next_allowed


def test_zero_means_unlimited() -> None:
    log = SendLog().record(0.0, count=10_000)
    assert allowance(0, log, 0.0) == UNLIMITED


def test_the_allowance_is_what_is_left_of_the_minute() -> None:
    log = SendLog().record(0.0).record(10.0)
    assert [allowance(3, log, t) for t in (10.0, 59.9, 60.0, 70.0)] == [1, 1, 2, 3]


def test_the_next_send_waits_for_the_oldest_to_leave_the_window() -> None:
    log = SendLog().record(0.0).record(10.0).record(20.0)
    assert (next_allowed(3, log, 30.0), next_allowed(2, log, 30.0)) == (60.0, 70.0)


def test_the_next_send_is_now_when_allowed() -> None:
    assert next_allowed(1, SendLog(), 5.0) == 5.0


def test_old_sends_are_pruned() -> None:
    assert SendLog().record(0.0).record(100.0).times == (100.0,)


@given(
    st.integers(1, 20),
    st.lists(st.floats(0.0, 30.0, allow_nan=False), min_size=1, max_size=200),
)
def test_a_sender_obeying_the_throttle_never_exceeds_the_limit(
    limit: int, gaps: list[float]
) -> None:
    log, now, sent = SendLog(), 0.0, []
    for gap in gaps:
        now += gap
        now = max(now, next_allowed(limit, log, now))
        log = log.record(now)
        sent.append(now)
    for start in sent:
        assert sum(start <= t < start + 60.0 for t in sent) <= limit


# --- backoff ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "expected"), [(1, 60.0), (2, 120.0), (3, 240.0), (7, 3600.0), (1000, 3600.0)]
)
def test_the_delay_doubles_up_to_the_cap(attempts: int, expected: float) -> None:
    assert retry_delay(attempts, 0.0) == expected


@given(st.integers(1, 100), st.floats(0.0, 1.0, exclude_max=True))
def test_jitter_only_stretches_the_delay(attempts: int, jitter: float) -> None:
    plain = retry_delay(attempts, 0.0)
    assert BASE_SECONDS <= plain <= retry_delay(attempts, jitter) <= plain * (1 + JITTER_SHARE)
    assert plain <= CAP_SECONDS


@given(st.integers(1, 99), st.floats(0.0, 1.0, exclude_max=True))
def test_the_delay_never_shrinks(attempts: int, jitter: float) -> None:
    assert retry_delay(attempts + 1, jitter) >= retry_delay(attempts, jitter)


@pytest.mark.parametrize(("attempts", "jitter"), [(0, 0.0), (1, 1.0), (1, -0.1)])
def test_bad_arguments_are_refused(attempts: int, jitter: float) -> None:
    with pytest.raises(ValueError, match=r"expected|at least one"):
        retry_delay(attempts, jitter)
