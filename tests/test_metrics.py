"""``/metrics``: counters folded from the log (incrementally, surviving a restart) and gauges."""

from __future__ import annotations

from hypothesis import given
from prometheus_client.parser import text_string_to_metric_families

from events.memory_store import InMemoryEventStore
from events.projections.counts import count_events
from events.recorded import Recorded
from events.snapshot import read_memory
from events.store import ANY
from events.types import MailboxCrashed, MessageSent, RestartScheduled, stream_for
from supervisor.http.metrics import MetricsView, ProcessGauges
from tests.event_samples import logs


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    result = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            result[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return result


def test_counters_come_from_the_log_per_database() -> None:
    store = InMemoryEventStore()
    db = stream_for("Smile Dental")
    store.append(db, ANY, [MailboxCrashed(1, "KeyError", ""), RestartScheduled(1.0, "crash", 1)])
    store.append(db, ANY, [MessageSent(2, 7, "<a@b>", 1), MessageSent(2, 8, "<c@b>", 2)])
    view = MetricsView(store, ProcessGauges(), tree_up=lambda: True)
    found = samples(view.text())
    label = (("database", "Smile Dental"),)
    assert found[("email_service_crashes_total", label)] == 1
    assert found[("email_service_restarts_total", label)] == 1
    assert found[("email_service_messages_sent_total", label)] == 2
    assert found[("email_service_up", ())] == 1


def test_a_second_scrape_adds_only_the_new_events() -> None:
    store = InMemoryEventStore()
    db = stream_for("Smile Dental")
    view = MetricsView(store, ProcessGauges(), tree_up=lambda: True)
    store.append(db, ANY, [MessageSent(1, 1, "<a@b>", 1)])
    view.text()
    store.append(db, ANY, [MessageSent(1, 2, "<c@b>", 1)])
    found = samples(view.text())
    assert found[("email_service_messages_sent_total", (("database", "Smile Dental"),))] == 2


def test_gauges_and_checkins_reported_by_the_process_are_shown() -> None:
    gauges = ProcessGauges()
    gauges.set("outbox_depth", "Smile Dental", 12)
    gauges.checkin_written("Smile Dental")
    gauges.checkin_written("Smile Dental")
    found = samples(MetricsView(InMemoryEventStore(), gauges, tree_up=lambda: False).text())
    label = (("database", "Smile Dental"),)
    assert found[("email_service_outbox_depth", label)] == 12
    assert found[("email_service_checkins_total", label)] == 2
    assert found[("email_service_up", ())] == 0


def test_append_latency_is_a_histogram() -> None:
    view = MetricsView(
        InMemoryEventStore(),
        ProcessGauges(),
        tree_up=lambda: True,
        append_latency=lambda: ({0.001: 3, 0.01: 5, float("inf"): 6}, 0.05, 6),
    )
    found = samples(view.text())
    assert found[("email_service_event_append_seconds_bucket", (("le", "0.01"),))] == 5
    assert found[("email_service_event_append_seconds_count", ())] == 6


@given(logs(), logs())
def test_counting_is_a_fold(first: list[Recorded], second: list[Recorded]) -> None:
    assert count_events({}, first + second) == count_events(count_events({}, first), second)


def test_counters_start_from_the_stored_memory_and_survive_retention() -> None:
    store = InMemoryEventStore()
    db = stream_for("Smile Dental")
    store.append(db, ANY, [MessageSent(1, n, "<a@b>", 1) for n in range(5)])
    memory = read_memory(store)
    store.delete_events([1, 2, 3, 4])  # retention took all but the stream's newest
    store.append(db, ANY, [MessageSent(1, 9, "<c@b>", 1)])
    view = MetricsView(store, ProcessGauges(), tree_up=lambda: True, memory=lambda: memory)
    found = samples(view.text())
    assert found[("email_service_messages_sent_total", (("database", "Smile Dental"),))] == 6
