"""``/metrics``: counters folded from the event log, plus gauges the process reports.

Counters come from ``events.projections.counts`` over the log, folded incrementally on
each scrape (only events past the last one seen are read), so they survive a restart of
the process exactly as the log does. Gauges (outbox depth, check-ins written, whether the
tree is up) and the event-append latency are reported by the running process.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from actors.server_budget import BudgetView
from events.projections.counts import METRIC_NAMES, count_events
from events.store import EventStore, read_all

PREFIX = "email_service_"

HELP = {
    "restarts": "Restarts of a database's mailbox scheduled by the supervisor",
    "crashes": "Crashes of a database's mailbox",
    "hangs": "Mailboxes found hung (check-in overdue) and replaced",
    "gave_up": "Times the supervisor gave a database's mailbox up",
    "restart_requests": "Restarts asked for by a person or a workstation",
    "selftest_failures": "Self-tests that found a fault",
    "messages_sent": "Outbox messages the mail server accepted",
    "send_failures": "Send attempts that failed (temporary or permanent)",
    "deliveries_uncertain": "Messages that may have been delivered when a connection broke",
    "messages_received": "Messages imported from the IMAP server",
}


class ProcessGauges:
    """Values the running process sets, per database; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], float] = {}
        self._checkins: Counter[str] = Counter()

    def set(self, name: str, database: str, value: float) -> None:
        """Set gauge ``name`` (e.g. ``outbox_depth``) for ``database``."""
        with self._lock:
            self._values[(name, database)] = value

    def checkin_written(self, database: str) -> None:
        """Count one check-in row written into ``database``."""
        with self._lock:
            self._checkins[database] += 1

    def snapshot(self) -> tuple[dict[tuple[str, str], float], dict[str, int]]:
        """A copy of the gauges and the check-in counts."""
        with self._lock:
            return dict(self._values), dict(self._checkins)


LatencySnapshot = tuple[Mapping[float, int], float, int]
"""``({upper bound in seconds: cumulative count}, sum of seconds, count)``."""


class MetricsView(Collector):
    """Renders the Prometheus text; the log is folded incrementally, under a lock."""

    def __init__(
        self,
        store: EventStore,
        gauges: ProcessGauges,
        *,
        tree_up: Callable[[], bool],
        append_latency: Callable[[], LatencySnapshot] | None = None,
        budgets: Callable[[], list[BudgetView]] | None = None,
    ) -> None:
        self._store = store
        self._gauges = gauges
        self._tree_up = tree_up
        self._append_latency = append_latency
        self._budgets = budgets
        self._lock = threading.Lock()
        self._after_seq = 0
        self._counts: Counter[tuple[str, str]] = Counter()
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    def _fold(self) -> Counter[tuple[str, str]]:
        with self._lock:
            records = list(read_all(self._store, self._after_seq))
            if records:
                self._counts = count_events(self._counts, records)
                self._after_seq = records[-1].seq
            return Counter(self._counts)

    def collect(self) -> Iterator[Metric]:
        counts = self._fold()
        for name in METRIC_NAMES:
            family = CounterMetricFamily(PREFIX + name, HELP[name], labels=["database"])
            for (metric, database), value in sorted(counts.items()):
                if metric == name:
                    family.add_metric([database], value)
            yield family
        values, checkins = self._gauges.snapshot()
        written = CounterMetricFamily(
            PREFIX + "checkins",
            "Check-in rows written into practice databases",
            labels=["database"],
        )
        for database, value in sorted(checkins.items()):
            written.add_metric([database], value)
        yield written
        depth = GaugeMetricFamily(
            PREFIX + "outbox_depth",
            "Outbox messages waiting (queued or being sent), as last seen",
            labels=["database"],
        )
        for (name, database), level in sorted(values.items()):
            if name == "outbox_depth":
                depth.add_metric([database], level)
        yield depth
        yield GaugeMetricFamily(
            PREFIX + "up", "1 while the supervision tree answers", value=int(self._tree_up())
        )
        if self._append_latency is not None:
            buckets, total, _count = self._append_latency()
            histogram = HistogramMetricFamily(
                PREFIX + "event_append_seconds",
                "Time from an append to its commit in the event log",
            )
            histogram.add_metric(
                [],
                [(_bound(b), float(n)) for b, n in sorted(buckets.items())],
                sum_value=total,
            )
            yield histogram
        if self._budgets is not None:
            yield from _budget_families(self._budgets())

    def text(self) -> str:
        """The whole exposition, as ``/metrics`` serves it."""
        return generate_latest(self._registry).decode()


def _budget_families(views: list[BudgetView]) -> Iterator[Metric]:
    """The connection budget of each database server (``actors.server_budget``)."""
    held = GaugeMetricFamily(
        PREFIX + "db_connections",
        "Connections the service holds to the database server (in use or idle)",
        labels=["server"],
    )
    in_use = GaugeMetricFamily(
        PREFIX + "db_connections_in_use",
        "Connections to the database server in use right now",
        labels=["server"],
    )
    budget = GaugeMetricFamily(
        PREFIX + "db_connection_budget",
        "Most connections the service may hold to the database server",
        labels=["server"],
    )
    peak = GaugeMetricFamily(
        PREFIX + "db_connections_peak",
        "Most connections held to the database server at once since the service started",
        labels=["server"],
    )
    refusals = CounterMetricFamily(
        PREFIX + "db_connection_refusals",
        "Connections the database server refused for lack of free slots",
        labels=["server"],
    )
    for view in views:
        held.add_metric([view.server], view.held)
        in_use.add_metric([view.server], view.in_use)
        budget.add_metric([view.server], view.budget)
        peak.add_metric([view.server], view.peak)
        refusals.add_metric([view.server], view.refusals)
    yield from (held, in_use, budget, peak, refusals)


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
