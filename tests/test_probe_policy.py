"""When a mail server is probed: on schedule, at once after a failure or a start, never when
real traffic just succeeded, and never more than once a minute per provider."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from actors.mail.probe_policy import MIN_GAP_SECONDS, ProbeState, after_check, decide_probe

T0 = datetime(2026, 11, 27, 9, 0, 0)
PROBE = 60.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_component_never_checked_is_probed_at_once() -> None:
    assert (
        decide_probe(
            ProbeState(), T0, traffic_ok_at=None, last_connect_at=None, probe_seconds=PROBE
        )
        == "probe"
    )


def test_a_passing_component_waits_for_its_interval() -> None:
    state = after_check(ProbeState(), T0, ok=True)
    kwargs = {"traffic_ok_at": None, "last_connect_at": T0, "probe_seconds": PROBE}
    assert decide_probe(state, at(59), **kwargs) == "wait"  # type: ignore[arg-type]
    assert decide_probe(state, at(60), **kwargs) == "probe"  # type: ignore[arg-type]


def test_recent_successful_traffic_counts_as_a_pass_instead_of_a_probe() -> None:
    state = after_check(ProbeState(), T0, ok=True)
    action = decide_probe(
        state, at(61), traffic_ok_at=at(30), last_connect_at=T0, probe_seconds=PROBE
    )
    assert action == "traffic"


def test_traffic_older_than_the_last_check_does_not_count() -> None:
    state = after_check(ProbeState(), at(40), ok=True)
    action = decide_probe(
        state, at(101), traffic_ok_at=at(30), last_connect_at=at(40), probe_seconds=PROBE
    )
    assert action == "probe"


def test_after_a_failure_it_is_probed_again_as_soon_as_the_provider_allows() -> None:
    state = after_check(ProbeState(), T0, ok=False)
    assert (
        decide_probe(state, at(30), traffic_ok_at=None, last_connect_at=T0, probe_seconds=PROBE)
        == "wait"
    )
    assert (
        decide_probe(state, at(60), traffic_ok_at=None, last_connect_at=T0, probe_seconds=PROBE)
        == "probe"
    )


def test_a_new_incarnation_does_not_probe_a_provider_probed_under_a_minute_ago() -> None:
    action = decide_probe(
        ProbeState(), at(10), traffic_ok_at=None, last_connect_at=T0, probe_seconds=PROBE
    )
    assert action == "wait"


@given(
    steps=st.lists(
        st.tuples(st.floats(min_value=0.1, max_value=120), st.booleans(), st.booleans()),
        max_size=60,
    ),
    probe_seconds=st.floats(min_value=1, max_value=600),
)
def test_never_more_than_one_probe_connection_a_minute(
    steps: list[tuple[float, bool, bool]], probe_seconds: float
) -> None:
    now, state, last_connect, traffic_at = T0, ProbeState(), None, None
    connects: list[datetime] = []
    for gap, ok, traffic in steps:
        now += timedelta(seconds=gap)
        if traffic:
            traffic_at = now
        action = decide_probe(
            state,
            now,
            traffic_ok_at=traffic_at,
            last_connect_at=last_connect,
            probe_seconds=probe_seconds,
        )
        if action == "probe":
            connects.append(now)
            last_connect = now
        if action != "wait":
            state = after_check(state, now, ok)
    for earlier, later in itertools.pairwise(connects):
        assert later - earlier >= timedelta(seconds=MIN_GAP_SECONDS)
