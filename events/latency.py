"""A small fixed-bucket latency histogram (for the event log's append-to-commit time).

Written by one thread (the store's writer), read by any: ``snapshot`` copies under a lock.
The buckets are Prometheus-style cumulative upper bounds in seconds, always ending with
``+Inf`` (added when the given bounds lack it, so a value above the last finite bound is
never counted as at or below it).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping

BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"),
)  # fmt: skip


class LatencyHistogram:
    """Counts of observations per bucket, their sum and their number."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        inf = float("inf")
        self._bounds = buckets if buckets and buckets[-1] == inf else (*buckets, inf)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._total = 0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        """Count one observation."""
        index = bisect.bisect_left(self._bounds, seconds)
        with self._lock:
            self._counts[min(index, len(self._counts) - 1)] += 1
            self._sum += seconds
            self._total += 1

    def snapshot(self) -> tuple[Mapping[float, int], float, int]:
        """``({upper bound: cumulative count}, sum of seconds, count)``."""
        with self._lock:
            counts, total_sum, total = list(self._counts), self._sum, self._total
        cumulative: dict[float, int] = {}
        running = 0
        for bound, count in zip(self._bounds, counts, strict=True):
            running += count
            cumulative[bound] = running
        return cumulative, total_sum, total
