"""The append-latency histogram: Prometheus-style cumulative buckets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from events.latency import BUCKETS, LatencyHistogram

seconds = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)


def observed(values: list[float]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for value in values:
        histogram.observe(value)
    return histogram


@given(st.lists(seconds, max_size=200))
def test_cumulative_counts_never_decrease(values: list[float]) -> None:
    cumulative, _sum, _count = observed(values).snapshot()
    counts = [cumulative[bound] for bound in BUCKETS]
    assert counts == sorted(counts)


@given(st.lists(seconds, max_size=200))
def test_the_last_bucket_holds_every_observation(values: list[float]) -> None:
    cumulative, _sum, count = observed(values).snapshot()
    assert (cumulative[float("inf")], count) == (len(values), len(values))


@given(st.lists(seconds, max_size=200))
def test_each_bucket_counts_the_observations_at_or_below_its_bound(values: list[float]) -> None:
    cumulative, _sum, _count = observed(values).snapshot()
    for bound in BUCKETS:
        assert cumulative[bound] == sum(1 for v in values if v <= bound)


@given(st.lists(seconds, max_size=200))
def test_the_sum_is_the_sum_of_the_observations(values: list[float]) -> None:
    _cumulative, total, _count = observed(values).snapshot()
    assert total == sum(values) or abs(total - sum(values)) <= 1e-9 * max(1.0, sum(values))


def test_a_value_on_a_bound_counts_in_that_bound() -> None:
    cumulative, _sum, _count = observed([0.005]).snapshot()
    assert (cumulative[0.0025], cumulative[0.005]) == (0, 1)


@given(st.lists(seconds, max_size=50))
def test_buckets_without_infinity_still_end_at_the_count(values: list[float]) -> None:
    histogram = LatencyHistogram((0.5, 1.0))
    for value in values:
        histogram.observe(value)
    cumulative, _sum, count = histogram.snapshot()
    assert cumulative[1.0] == sum(1 for v in values if v <= 1.0)
    assert list(cumulative.values())[-1] == count


def test_an_empty_histogram_reports_zeros() -> None:
    cumulative, total, count = LatencyHistogram().snapshot()
    assert (set(cumulative.values()), total, count) == ({0}, 0.0, 0)
