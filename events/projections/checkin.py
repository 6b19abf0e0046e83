"""What a check-in says: a pure function of one database's health (the fold of its stream).

``checkin_of(health, memory, now)`` returns the check-in to write now and what to remember
for the next one. A running mailbox gives an ok check-in; a failing self-test, a crash, a
restart, a hang or a given-up mailbox gives a failed one whose summary says which, with
the diagnostics as its lines (DESIGN decision 4). After a recovery, the first ok check-in
carries a line saying how long email was not available ("Email was not available for
1 h 12 min, from ... to ..."). ``now`` is the database server's time (naive UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from events.describe import describe_duration
from events.projections.health import DbHealth, HealthStatus
from events.types import Diagnostic

COMPONENT_NAMES = {
    "database": "Practice database",
    "smtp": "Sending (SMTP)",
    "imap": "Receiving (IMAP)",
    "sms": "SMS",
    "service": "Email service",
}


@dataclass(frozen=True, slots=True)
class CheckInContent:
    """One check-in's ``ok``, ``summary`` and diagnostic lines ``(level, component, message)``."""

    ok: bool
    summary: str
    lines: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CheckInMemory:
    """What the writer keeps between check-ins: since when email has not been available."""

    unavailable_since: datetime | None = None


def summary_of(diagnostics: tuple[Diagnostic, ...]) -> str:
    """One line for the tooltip: the first error (else the first line), named by component."""
    if not diagnostics:
        return "The email service reported a fault"
    first = next((d for d in diagnostics if d.level == "error"), diagnostics[0])
    return f"{COMPONENT_NAMES.get(first.component, first.component)}: {first.message}"


def _lines(diagnostics: tuple[Diagnostic, ...]) -> tuple[tuple[str, str, str], ...]:
    return tuple((d.level, d.component, d.message) for d in diagnostics)


def _failed(health: DbHealth) -> CheckInContent:
    status = health.status
    failure = health.last_failure
    if status is HealthStatus.FAILING:
        return CheckInContent(False, summary_of(failure), _lines(failure))
    if status is HealthStatus.CRASHED:
        detail = failure[0].message if failure else "it stopped"
        return CheckInContent(
            False,
            f"Email service: this database's mailbox stopped ({detail}); it is being restarted",
            _lines(failure),
        )
    if status is HealthStatus.RESTARTING:
        return CheckInContent(
            False,
            f"Email service: restarting this database's mailbox (restart {health.restarts_total})",
            _lines(failure),
        )
    if status is HealthStatus.GAVE_UP:
        detail = failure[0].message if failure else "too many crashes"
        return CheckInContent(
            False,
            f"Email service: this database's mailbox keeps failing; {detail}",
            _lines(failure),
        )
    if status is HealthStatus.STARTING:
        return CheckInContent(False, "Email service: starting this database's mailbox")
    return CheckInContent(False, "Email service: this database is not being served")


def checkin_of(
    health: DbHealth,
    memory: CheckInMemory,
    now: datetime,
    warnings: tuple[Diagnostic, ...] = (),
) -> tuple[CheckInContent, CheckInMemory]:
    """Return the check-in to write at ``now`` and the memory for the next one. Pure.

    ``warnings``: a passed self-test's warning lines (``SelfTestPassed.warnings``), said in
    a running database's check-in without failing it: its ``summary`` stays empty (the
    tooltip is the contract's "operating normally") and its lines name them."""
    if health.status is HealthStatus.RUNNING:
        said = _lines(warnings)
        if memory.unavailable_since is None:
            return CheckInContent(True, "", said), memory
        since = memory.unavailable_since
        line = (
            "info",
            "service",
            f"Email was not available for {describe_duration(now - since)}, "
            f"from {since:%Y-%m-%d %H:%M:%S} to {now:%Y-%m-%d %H:%M:%S} UTC",
        )
        return CheckInContent(True, "", (line, *said)), CheckInMemory()
    content = _failed(health)
    since = memory.unavailable_since if memory.unavailable_since is not None else now
    return content, CheckInMemory(unavailable_since=since)
