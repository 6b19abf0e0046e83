"""One-for-one restart decisions from a database's stream and the time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.recorded import Recorded
from events.types import (
    CheckInWritten,
    DatabaseLost,
    Event,
    MailboxCrashed,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    RestartRequested,
    RestartScheduled,
    SelfTestFailed,
)
from supervisor.restart_policy import (
    GiveUp,
    Restart,
    RestartPolicy,
    backoff_delay,
    decide,
    decide_requested,
    gave_up_retry_due,
    give_up_again,
    give_up_in_force,
    recent_restarts,
)

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
POLICY = RestartPolicy(
    max_restarts=5, within_seconds=60.0, backoff_min_seconds=1.0, backoff_max_seconds=30.0
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stream(*timed: tuple[float, Event]) -> list[Recorded]:
    """Build one database's stream, oldest first, from (seconds after T0, event) pairs."""
    return [
        Recorded(seq, "db:x", seq, at(seconds), event)
        for seq, (seconds, event) in enumerate(timed, start=1)
    ]


def scheduled(attempt: int = 1) -> RestartScheduled:
    return RestartScheduled(delay=0.0, cause="crashed", attempt=attempt)


def crashed() -> MailboxCrashed:
    return MailboxCrashed(incarnation=1, error="boom", traceback="")


def restarts_at(*seconds: float) -> list[Recorded]:
    """A stream with a RestartScheduled at each of the given times."""
    return stream(*((s, scheduled(i)) for i, s in enumerate(seconds, start=1)))


def gave_up(retry_in: float = 30.0) -> MailboxGaveUp:
    return MailboxGaveUp(restarts=5, within_seconds=60.0, retry_in=retry_in)


# --- the policy ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"max_restarts": 0}, "max_restarts", id="no-restarts"),
        pytest.param({"within_seconds": 0.0}, "within_seconds", id="empty-window"),
        pytest.param({"backoff_min_seconds": 0.0}, "backoff_min_seconds", id="zero-min"),
        pytest.param({"backoff_min_seconds": float("nan")}, "backoff_min_seconds", id="nan-min"),
        pytest.param({"backoff_max_seconds": 0.5}, "backoff_max_seconds", id="max-below-min"),
        pytest.param({"backoff_max_seconds": float("inf")}, "backoff_max_seconds", id="inf-max"),
    ],
)
def test_a_policy_out_of_range_is_refused_naming_the_value(
    kwargs: dict[str, float], message: str
) -> None:
    values: dict[str, float] = {
        "max_restarts": 5,
        "within_seconds": 60.0,
        "backoff_min_seconds": 1.0,
        "backoff_max_seconds": 30.0,
    } | kwargs

    with pytest.raises(ValueError, match=message):
        RestartPolicy(
            max_restarts=int(values["max_restarts"]),
            within_seconds=values["within_seconds"],
            backoff_min_seconds=values["backoff_min_seconds"],
            backoff_max_seconds=values["backoff_max_seconds"],
        )


def test_a_policy_with_min_equal_to_max_is_accepted() -> None:
    RestartPolicy(
        max_restarts=1, within_seconds=1.0, backoff_min_seconds=2.0, backoff_max_seconds=2.0
    )


# --- decide ---------------------------------------------------------------------------


def test_the_first_failure_restarts_at_once() -> None:
    history = stream((0, MailboxStarted(incarnation=1)), (5, crashed()))

    assert decide(POLICY, history, at(5), jitter=0.9, cause="crashed") == Restart(
        delay=0.0, attempt=1, cause="crashed"
    )


@pytest.mark.parametrize(
    ("recent", "base"),
    [
        pytest.param(1, 1.0, id="second-failure"),
        pytest.param(2, 2.0, id="third"),
        pytest.param(3, 4.0, id="fourth"),
        pytest.param(4, 8.0, id="fifth"),
        pytest.param(5, 16.0, id="sixth"),
        pytest.param(6, 30.0, id="capped"),
        pytest.param(9, 30.0, id="stays-capped"),
    ],
)
def test_delays_grow_exponentially_and_are_capped_at_max(recent: int, base: float) -> None:
    policy = RestartPolicy(
        max_restarts=10, within_seconds=60.0, backoff_min_seconds=1.0, backoff_max_seconds=30.0
    )
    history = restarts_at(*range(recent))

    # Given jitter 0, the delay is the bottom of its range: the base, or half the cap.
    decision = decide(policy, history, at(recent), jitter=0.0, cause="crashed")

    low = min(base, policy.backoff_max_seconds / 2)
    assert decision == Restart(delay=low, attempt=recent + 1, cause="crashed")


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 0.999999])
def test_jitter_scales_the_delay_within_one_to_two_bases(jitter: float) -> None:
    history = restarts_at(0, 1, 2)  # base 4 s
    decision = decide(POLICY, history, at(3), jitter=jitter, cause="crashed")

    assert isinstance(decision, Restart)
    assert decision.delay == pytest.approx(4.0 * (1 + jitter))
    assert 4.0 <= decision.delay < 8.0


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999999])
def test_the_second_restart_waits_at_least_backoff_min(jitter: float) -> None:
    # The finding: the second restart waited 0.58-1.0 s with backoff_min 1 s.
    decision = decide(POLICY, restarts_at(0), at(1), jitter=jitter, cause="crashed")

    assert isinstance(decision, Restart)
    assert POLICY.backoff_min_seconds <= decision.delay < 2 * POLICY.backoff_min_seconds


@pytest.mark.parametrize(
    ("jitter", "delay"),
    [pytest.param(0.0, 15.0, id="half-the-cap"), pytest.param(0.5, 22.5, id="between")],
)
def test_restarts_at_the_cap_still_spread_between_half_the_cap_and_the_cap(
    jitter: float, delay: float
) -> None:
    policy = RestartPolicy(
        max_restarts=10, within_seconds=60.0, backoff_min_seconds=1.0, backoff_max_seconds=30.0
    )
    decision = decide(policy, restarts_at(*range(8)), at(8), jitter=jitter, cause="crashed")

    assert decision == Restart(delay=delay, attempt=9, cause="crashed")


def test_a_cap_below_twice_the_minimum_never_waits_below_the_minimum() -> None:
    policy = RestartPolicy(
        max_restarts=10, within_seconds=60.0, backoff_min_seconds=3.0, backoff_max_seconds=4.0
    )
    decision = decide(policy, restarts_at(0, 1, 2), at(3), jitter=0.0, cause="crashed")

    assert decision == Restart(delay=3.0, attempt=4, cause="crashed")


@pytest.mark.parametrize("jitter", [-0.1, 1.0, float("nan")])
def test_a_jitter_outside_zero_to_one_is_refused(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        decide(POLICY, [], T0, jitter=jitter, cause="crashed")


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(POLICY, [], datetime(2026, 3, 2, 9, 0), jitter=0.0, cause="crashed")


def test_restarts_older_than_the_window_are_not_counted() -> None:
    # Four restarts long ago, one 59 s ago; the window is 60 s.
    history = restarts_at(0, 1, 2, 3, 41)

    decision = decide(POLICY, history, at(100), jitter=0.0, cause="crashed")

    assert decision == Restart(delay=1.0, attempt=2, cause="crashed")


def test_a_restart_exactly_window_seconds_ago_is_out_and_one_at_now_is_in() -> None:
    history = restarts_at(0, 60)

    assert recent_restarts(POLICY, history, at(60)) == 1


def test_a_restart_recorded_after_now_is_not_counted() -> None:
    assert recent_restarts(POLICY, restarts_at(0, 10), at(5)) == 1


def test_only_restart_scheduled_events_count() -> None:
    history = stream(
        (0, MailboxStarted(incarnation=1)),
        (1, crashed()),
        (2, RestartRequested(source="cli", requested_by="ann", command_id=None)),
        (3, gave_up()),
    )

    assert recent_restarts(POLICY, history, at(4)) == 0


def test_the_limit_reached_gives_up_with_retry_in_backoff_max() -> None:
    history = restarts_at(0, 1, 2, 3, 4)

    decision = decide(POLICY, history, at(5), jitter=0.5, cause="crashed")

    assert decision == GiveUp(restarts=5, within_seconds=60.0, retry_in=30.0)


def test_a_crash_loop_is_still_seen_after_the_process_restarts() -> None:
    # Given four restarts in the log, and the fifth decided and appended ...
    earlier: list[tuple[float, Event]] = [(t, scheduled(i)) for i, t in enumerate((0, 2, 4, 6), 1)]
    fifth = decide(POLICY, stream(*earlier), at(7), jitter=0.0, cause="crashed")
    assert isinstance(fifth, Restart)
    assert fifth == Restart(delay=8.0, attempt=5, cause="crashed")
    # ... when the whole process restarts (the log is all that survives) and the new
    # process's first mailbox for the database crashes again ...
    after = stream(
        *earlier,
        (7, RestartScheduled(delay=fifth.delay, cause=fifth.cause, attempt=fifth.attempt)),
        (20, MailboxStarted(incarnation=1)),
        (21, crashed()),
    )

    # ... then deciding from the same log later still counts all five: it gives up.
    assert recent_restarts(POLICY, after, at(21)) == 5
    assert decide(POLICY, after, at(21), jitter=0.0, cause="crashed") == GiveUp(
        restarts=5, within_seconds=60.0, retry_in=30.0
    )


def test_the_cause_is_passed_through() -> None:
    decision = decide(POLICY, [], T0, jitter=0.0, cause="check-in missed")

    assert isinstance(decision, Restart)
    assert decision.cause == "check-in missed"


# --- decide_requested -------------------------------------------------------------------


def test_a_requested_restart_ignores_the_limit() -> None:
    history = restarts_at(0, 1, 2, 3, 4)
    assert isinstance(decide(POLICY, history, at(5), jitter=0.0, cause="crashed"), GiveUp)

    decision = decide_requested(POLICY, history, at(5))

    assert decision == Restart(delay=0.0, attempt=6, cause="requested")


def test_a_requested_restart_happens_at_once_even_after_recent_restarts() -> None:
    decision = decide_requested(POLICY, restarts_at(0, 1), at(2))

    assert decision == Restart(delay=0.0, attempt=3, cause="requested")


def test_a_requested_restart_counts_toward_the_window() -> None:
    history = restarts_at(0, 1, 2, 3)
    requested = decide_requested(POLICY, history, at(4))
    history.append(
        Recorded(
            5,
            "db:x",
            5,
            at(4),
            RestartScheduled(
                delay=requested.delay, cause=requested.cause, attempt=requested.attempt
            ),
        )
    )

    assert isinstance(decide(POLICY, history, at(5), jitter=0.0, cause="crashed"), GiveUp)


# --- gave_up_retry_due ------------------------------------------------------------------


def test_a_give_up_is_not_retried_before_retry_in() -> None:
    history = stream((0, gave_up(retry_in=30.0)))

    assert not gave_up_retry_due(POLICY, history, at(29.999))


def test_a_give_up_is_retried_once_retry_in_has_passed() -> None:
    history = stream((0, gave_up(retry_in=30.0)))

    assert gave_up_retry_due(POLICY, history, at(30))
    assert gave_up_retry_due(POLICY, history, at(3600))


def test_a_shorter_backoff_max_than_the_recorded_retry_in_wins() -> None:
    history = stream((0, gave_up(retry_in=600.0)))

    assert gave_up_retry_due(POLICY, history, at(30))


def test_no_retry_is_due_without_a_give_up() -> None:
    assert not gave_up_retry_due(POLICY, [], at(1000))
    assert not gave_up_retry_due(POLICY, restarts_at(0), at(1000))


def test_no_retry_is_due_once_the_mailbox_was_started_again() -> None:
    history = stream((0, gave_up()), (30, scheduled(6)), (30, MailboxStarted(incarnation=7)))

    assert not gave_up_retry_due(POLICY, history, at(1000))


def test_check_ins_written_after_a_give_up_do_not_postpone_the_retry() -> None:
    history = stream(
        (0, gave_up()),
        (1, SelfTestFailed(incarnation=6, diagnostics=())),
        (2, CheckInWritten(checkin_id=9, ok=False, up_to_seq=2)),
    )

    assert gave_up_retry_due(POLICY, history, at(30))


# --- give_up_again ----------------------------------------------------------------------


def test_a_retry_that_fails_within_the_window_gives_up_again_with_the_same_count() -> None:
    again = give_up_again(POLICY, gave_up(retry_in=600.0), at(0), at(59.9))

    assert again == GiveUp(restarts=5, within_seconds=60.0, retry_in=30.0)


def test_a_retry_that_ran_for_the_whole_window_is_judged_afresh() -> None:
    assert give_up_again(POLICY, gave_up(), at(0), at(60)) is None


# --- give_up_in_force -------------------------------------------------------------------


def test_a_give_up_is_in_force_while_nothing_was_decided_after_it() -> None:
    history = stream((0, scheduled(5)), (1, gave_up()))

    assert give_up_in_force(POLICY, history, at(1000)) == gave_up()


def test_a_give_up_stays_in_force_across_a_young_retry_and_a_shutdown() -> None:
    history = stream(
        (0, gave_up()), (30, MailboxStarted(incarnation=7)), (40, MailboxStopped(7, "stop"))
    )

    assert give_up_in_force(POLICY, history, at(89.9)) == gave_up()


def test_a_retry_started_a_whole_window_ago_ends_the_give_up() -> None:
    history = stream((0, gave_up()), (30, MailboxStarted(incarnation=7)))

    assert give_up_in_force(POLICY, history, at(90)) is None


@pytest.mark.parametrize(
    "later",
    [
        pytest.param(scheduled(1), id="restart-scheduled"),
        pytest.param(RestartRequested("cli", "cli:admin", None), id="restart-requested"),
        pytest.param(DatabaseLost("name contains 'test'"), id="database-lost"),
    ],
)
def test_a_later_decision_ends_the_give_up(later: Event) -> None:
    history = stream((0, gave_up()), (1, later))

    assert give_up_in_force(POLICY, history, at(2)) is None


def test_no_give_up_is_in_force_without_one() -> None:
    assert give_up_in_force(POLICY, restarts_at(0, 1), at(2)) is None


# --- properties -------------------------------------------------------------------------

policies = st.builds(
    lambda n, within, lo, extra: RestartPolicy(
        max_restarts=n,
        within_seconds=within,
        backoff_min_seconds=lo,
        backoff_max_seconds=lo + extra,
    ),
    st.integers(min_value=1, max_value=20),
    st.floats(min_value=0.001, max_value=86_400.0),
    st.floats(min_value=0.001, max_value=3_600.0),
    st.floats(min_value=0.0, max_value=86_400.0),
)
# Offsets from T0 in seconds, for restarts and for now.
offsets = st.floats(min_value=0.0, max_value=200_000.0)
jitters = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


def restart_history(times: list[float]) -> list[Recorded]:
    return restarts_at(*sorted(times))


@given(policies, st.lists(offsets, max_size=30), offsets, jitters)
def test_the_delay_is_always_within_zero_and_backoff_max(
    policy: RestartPolicy, times: list[float], now: float, jitter: float
) -> None:
    decision = decide(policy, restart_history(times), at(now), jitter, "crashed")

    if isinstance(decision, Restart):
        assert 0.0 <= decision.delay <= policy.backoff_max_seconds
    else:
        assert decision.retry_in == policy.backoff_max_seconds


@given(policies, st.lists(offsets, max_size=30), offsets, jitters)
def test_only_the_first_restart_waits_less_than_backoff_min(
    policy: RestartPolicy, times: list[float], now: float, jitter: float
) -> None:
    decision = decide(policy, restart_history(times), at(now), jitter, "crashed")

    if isinstance(decision, Restart) and decision.attempt > 1:
        assert decision.delay >= policy.backoff_min_seconds
    elif isinstance(decision, Restart):
        assert decision.delay == 0.0


@given(policies, st.integers(min_value=1, max_value=60), jitters)
def test_the_lowest_delay_never_shrinks_as_restarts_grow(
    policy: RestartPolicy, count: int, jitter: float
) -> None:
    assert backoff_delay(policy, count + 1, 0.0) >= backoff_delay(policy, count, 0.0)
    assert backoff_delay(policy, count, 0.0) <= backoff_delay(policy, count, jitter)


@given(policies, st.lists(offsets, max_size=30), offsets, jitters)
def test_decide_is_deterministic_for_equal_inputs(
    policy: RestartPolicy, times: list[float], now: float, jitter: float
) -> None:
    first = decide(policy, restart_history(times), at(now), jitter, "crashed")
    again = decide(policy, restart_history(list(times)), at(now), jitter, "crashed")

    assert first == again


@given(policies, st.lists(offsets, max_size=30), offsets, jitters)
def test_attempt_is_the_number_of_recent_restarts_plus_one(
    policy: RestartPolicy, times: list[float], now: float, jitter: float
) -> None:
    history = restart_history(times)
    # Counted from the datetimes, as the log holds them, not from the float offsets.
    since = at(now) - timedelta(seconds=policy.within_seconds)
    recent = sum(1 for r in history if since < r.recorded_at <= at(now))

    decision = decide(policy, history, at(now), jitter, "crashed")

    if recent < policy.max_restarts:
        assert isinstance(decision, Restart)
        assert decision.attempt == recent + 1
    else:
        assert decision == GiveUp(recent, policy.within_seconds, policy.backoff_max_seconds)
