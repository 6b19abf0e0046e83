"""Counters of what happened, per database: a pure fold for ``/metrics`` and ``events stats``.

``count_events(counts, records)`` returns new counts with ``records`` added; the input is
not changed. Keys are ``(metric, database)``; the database is "" for service-wide events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from events.recorded import Recorded
from events.types import (
    CheckInMissed,
    MailboxCrashed,
    MailboxGaveUp,
    MessageDeliveryUncertain,
    MessageReceived,
    MessageSendFailed,
    MessageSent,
    RestartRequested,
    RestartScheduled,
    SelfTestFailed,
    db_of,
)

COUNTED: Mapping[type, str] = {
    RestartScheduled: "restarts",
    MailboxCrashed: "crashes",
    CheckInMissed: "hangs",
    MailboxGaveUp: "gave_up",
    RestartRequested: "restart_requests",
    SelfTestFailed: "selftest_failures",
    MessageSent: "messages_sent",
    MessageSendFailed: "send_failures",
    MessageDeliveryUncertain: "deliveries_uncertain",
    MessageReceived: "messages_received",
}
"""Event type -> counter name. Every counter is a Prometheus ``..._total``."""

METRIC_NAMES: tuple[str, ...] = tuple(dict.fromkeys(COUNTED.values()))

Counts = Mapping[tuple[str, str], int]


def count_events(counts: Counts, records: Iterable[Recorded]) -> Counter[tuple[str, str]]:
    """Return ``counts`` plus one for each counted event in ``records``. Pure."""
    result: Counter[tuple[str, str]] = Counter(counts)
    for recorded in records:
        name = COUNTED.get(type(recorded.event))
        if name is not None:
            result[(name, db_of(recorded.stream) or "")] += 1
    return result
