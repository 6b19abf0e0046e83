"""The workstation status rule (CONTRACT.md, "Workstation status rule"), as one pure function.

The command line (`email-service status`), the HTTP interface and the status page all call
``status_of`` with the newest check-ins of one practice database and the database server's
own current time, so a workstation with a wrong clock still judges right and every view
tells the same story.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

RUNNING_TOOLTIP = "The email service is operating normally"
NEVER_TOOLTIP = "The email service has not checked in to this database yet"
FAULT_TOOLTIP = "The email service reported a fault"

StatusWord = Literal["running", "not_available"]


@dataclass(frozen=True, slots=True)
class CheckIn:
    """One ``email_service_checkins`` row; times are naive UTC from the database server."""

    checked_in_at: datetime
    next_checkin_due_at: datetime
    ok: bool
    summary: str
    server_name: str  # the contract's: the writing service's ``server_id``
    service_instance: str | None = None  # which start of it (service-owned; None: unknown)


@dataclass(frozen=True, slots=True)
class Status:
    """What a workstation shows for one practice database."""

    status: StatusWord
    tooltip: str
    last_checkin_at: datetime | None
    two_services: tuple[str, ...] = ()  # who, when two services check in here (``who``)

    @property
    def running(self) -> bool:
        """Whether the indicator is steady."""
        return self.status == "running"


@dataclass(frozen=True, slots=True)
class DatabaseStatus:
    """One database's name and status, as every view shows it."""

    name: str
    status: Status

    def as_json(self) -> dict[str, str | None]:
        """The contract's JSON object: ``name``, ``status``, ``tooltip``, ``last_checkin_at``."""
        last = self.status.last_checkin_at
        return {
            "name": self.name,
            "status": self.status.status,
            "tooltip": self.status.tooltip,
            "last_checkin_at": None if last is None else last.isoformat() + "Z",
        }


def status_of(newest_first: Sequence[CheckIn], now: datetime, grace: timedelta) -> Status:
    """Return the status from check-ins (newest first) and the database server's ``now``.

    - No check-in: not available.
    - Two services serve the database (not available, naming both):
      - check-ins from two ``server_name``s within one interval of the newest (the
        contract's rule; ``server_name`` is the ``server_id``, the same for every start
        of one service, so a restart never trips it);
      - or check-ins of one ``server_name`` from two ``service_instance``s taking turns
        within two intervals of the newest: A, then B, then A again (two hosts given
        the same ``server_id``). A start that follows another (a restart: the old one's
        check-ins stop) never takes turns with it, so it is not reported, while two
        services running side by side are seen at every check-in, with no gap in which
        the status flaps back to running.
    - Now past the newest ``next_checkin_due_at`` plus ``grace``: not available, saying
      since when nothing was heard.
    - Newest not ok: not available, with its ``summary``.
    - Otherwise running.

    Only the newest check-in and those within two intervals of it matter; pass at least
    those (a handful of the newest rows is plenty).
    """
    if not newest_first:
        return Status("not_available", NEVER_TOOLTIP, None)
    newest = newest_first[0]
    interval = max(newest.next_checkin_due_at - newest.checked_in_at, timedelta(0))
    names = _servers_within(newest_first, newest.checked_in_at - interval)
    if len(names) < 2:
        names = _taking_turns(newest_first, newest.checked_in_at - 2 * interval)
    if len(names) > 1:
        listed = " and ".join(names)
        return Status(
            "not_available",
            f"Two email services are serving this database: {listed}",
            newest.checked_in_at,
            names,
        )
    if now > newest.next_checkin_due_at + grace:
        from events.describe import describe_duration  # here: ``status`` starts faster

        return Status(
            "not_available",
            f"Nothing heard from the email service since {_when(newest.checked_in_at)} "
            f"({describe_duration(now - newest.checked_in_at)} ago)",
            newest.checked_in_at,
        )
    if not newest.ok:
        return Status(
            "not_available", newest.summary.strip() or FAULT_TOOLTIP, newest.checked_in_at
        )
    return Status("running", RUNNING_TOOLTIP, newest.checked_in_at)


def _servers_within(newest_first: Sequence[CheckIn], since: datetime) -> tuple[str, ...]:
    names: list[str] = []
    for checkin in newest_first:
        if checkin.checked_in_at < since:
            break
        if checkin.server_name not in names:
            names.append(checkin.server_name)
    return tuple(sorted(names))


def who(checkin: CheckIn) -> str:
    """Return how a check-in names its writer to people: ``server_name (instance)``. Pure."""
    if checkin.service_instance is None:
        return checkin.server_name
    return f"{checkin.server_name} ({checkin.service_instance})"


def _taking_turns(newest_first: Sequence[CheckIn], since: datetime) -> tuple[str, ...]:
    """Return who wrote the check-ins since ``since`` (``who``) if one start of a
    service comes back after another (two writing side by side); else ``()``."""
    window = [c for c in newest_first if c.checked_in_at >= since]
    done: set[tuple[str, str | None]] = set()
    current: tuple[str, str | None] | None = None
    for checkin in reversed(window):  # oldest first
        key = (checkin.server_name, checkin.service_instance)
        if key == current:
            continue
        if key in done:
            return tuple(sorted({who(c) for c in window}))
        if current is not None:
            done.add(current)
        current = key
    return ()


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
