"""Health of one practice database: a pure fold over that database's stream.

``apply_health(state, recorded) -> state``: the state is immutable, an event that
does not concern health returns the same object, and the function looks at
nothing but its arguments (no clock: the time is the event's ``recorded_at``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from events.recorded import Recorded
from events.types import (
    CheckInMissed,
    DatabaseIgnored,
    DatabaseLost,
    Diagnostic,
    Event,
    MailboxCrashed,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    RestartScheduled,
    SelfTestFailed,
    SelfTestPassed,
)

RECENT_RESTARTS_KEPT = 64
"""How many restart times the fold keeps: enough for any sane ``max_restarts``."""


class HealthStatus(StrEnum):
    """Where a database's mailbox stands."""

    STARTING = "starting"
    RUNNING = "running"
    FAILING = "failing"
    CRASHED = "crashed"
    RESTARTING = "restarting"
    GAVE_UP = "gave_up"
    STOPPED = "stopped"


class DbHealth(NamedTuple):
    """The health of one database as far as the log has told it."""

    status: HealthStatus = HealthStatus.STOPPED
    incarnation: int = 0
    since: datetime | None = None  # when ``status`` was entered
    last_selftest_at: datetime | None = None
    last_selftest_ok: bool | None = None
    last_failure: tuple[Diagnostic, ...] = ()  # diagnostics of the newest failure
    last_failure_at: datetime | None = None
    restart_times: tuple[datetime, ...] = ()  # newest last, at most RECENT_RESTARTS_KEPT
    restarts_total: int = 0
    crashes_total: int = 0

    def restarts_within(self, seconds: float, now: datetime) -> int:
        """Return how many restarts were scheduled in ``(now - seconds, now]``."""
        start = now - timedelta(seconds=seconds)
        return sum(1 for t in self.restart_times if start < t <= now)


def _failure(message: str, component: str = "service") -> tuple[Diagnostic, ...]:
    return (Diagnostic(component, "error", message),)


def _moved(s: DbHealth, status: HealthStatus, r: Recorded, **changes: Any) -> DbHealth:
    return s._replace(status=status, since=r.recorded_at, **changes)


def _started(s: DbHealth, r: Recorded, e: MailboxStarted) -> DbHealth:
    return _moved(s, HealthStatus.STARTING, r, incarnation=e.incarnation)


def _passed(s: DbHealth, r: Recorded, e: SelfTestPassed) -> DbHealth:
    if e.incarnation != s.incarnation:
        return s  # a late word from an abandoned incarnation changes nothing
    at = r.recorded_at
    if s.status is HealthStatus.RUNNING:
        # The hot path of a replay: positional construction, no _replace.
        return DbHealth(
            s.status, s.incarnation, s.since, at, True, s.last_failure, s.last_failure_at,
            s.restart_times, s.restarts_total, s.crashes_total,
        )  # fmt: skip
    return _moved(s, HealthStatus.RUNNING, r, last_selftest_at=at, last_selftest_ok=True)


def _failed(s: DbHealth, r: Recorded, e: SelfTestFailed) -> DbHealth:
    if e.incarnation != s.incarnation:
        return s
    at = r.recorded_at
    changes = {
        "last_selftest_at": at,
        "last_selftest_ok": False,
        "last_failure": e.diagnostics,
        "last_failure_at": at,
    }
    if s.status is HealthStatus.FAILING:
        return s._replace(**changes)  # type: ignore[arg-type]
    return _moved(s, HealthStatus.FAILING, r, **changes)


def _crashed(s: DbHealth, r: Recorded, e: MailboxCrashed) -> DbHealth:
    if e.incarnation != s.incarnation:
        return s  # an abandoned incarnation died late: already replaced
    if s.status in (HealthStatus.RESTARTING, HealthStatus.GAVE_UP):
        return s  # a hung incarnation's thread died after the decision on it: nothing new
    return _moved(
        s,
        HealthStatus.CRASHED,
        r,
        last_failure=_failure(f"the mailbox crashed: {e.error}"),
        last_failure_at=r.recorded_at,
        crashes_total=s.crashes_total + 1,
    )


def _missed(s: DbHealth, r: Recorded, e: CheckInMissed) -> DbHealth:
    if e.incarnation != s.incarnation:
        return s
    return _moved(
        s,
        HealthStatus.CRASHED,
        r,
        last_failure=_failure(f"no progress for {e.overdue_seconds:.0f} s: the mailbox hangs"),
        last_failure_at=r.recorded_at,
    )


def _scheduled(s: DbHealth, r: Recorded, e: RestartScheduled) -> DbHealth:
    times = (*s.restart_times, r.recorded_at)[-RECENT_RESTARTS_KEPT:]
    return _moved(
        s, HealthStatus.RESTARTING, r, restart_times=times, restarts_total=s.restarts_total + 1
    )


def _gave_up(s: DbHealth, r: Recorded, e: MailboxGaveUp) -> DbHealth:
    return _moved(
        s,
        HealthStatus.GAVE_UP,
        r,
        last_failure=_failure(
            f"gave up after {e.restarts} restarts within {e.within_seconds:.0f} s;"
            f" next try in {e.retry_in:.0f} s"
        ),
        last_failure_at=r.recorded_at,
    )


def _stopped(s: DbHealth, r: Recorded, e: MailboxStopped) -> DbHealth:
    if e.incarnation != s.incarnation:
        return s
    return _moved(s, HealthStatus.STOPPED, r)


def _not_served(s: DbHealth, r: Recorded, e: DatabaseLost | DatabaseIgnored) -> DbHealth:
    return _moved(s, HealthStatus.STOPPED, r)


_Handler = Callable[[DbHealth, Recorded, Event], DbHealth]
_HANDLERS: dict[type[Event], _Handler] = {
    MailboxStarted: _started,  # type: ignore[dict-item]
    SelfTestPassed: _passed,  # type: ignore[dict-item]
    SelfTestFailed: _failed,  # type: ignore[dict-item]
    MailboxCrashed: _crashed,  # type: ignore[dict-item]
    CheckInMissed: _missed,  # type: ignore[dict-item]
    RestartScheduled: _scheduled,  # type: ignore[dict-item]
    MailboxGaveUp: _gave_up,  # type: ignore[dict-item]
    MailboxStopped: _stopped,  # type: ignore[dict-item]
    DatabaseLost: _not_served,  # type: ignore[dict-item]
    DatabaseIgnored: _not_served,  # type: ignore[dict-item]
}

HEALTH_TYPES: frozenset[type[Event]] = frozenset(_HANDLERS)
"""The event types that can change a database's health."""

INITIAL = DbHealth()


def apply_health(state: DbHealth, recorded: Recorded) -> DbHealth:
    """Return the health after ``recorded``; the same object if it changes nothing."""
    handler = _HANDLERS.get(type(recorded.event))
    return state if handler is None else handler(state, recorded, recorded.event)
