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

from events.describe import describe_duration

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
    server_name: str


@dataclass(frozen=True, slots=True)
class Status:
    """What a workstation shows for one practice database."""

    status: StatusWord
    tooltip: str
    last_checkin_at: datetime | None
    two_services: tuple[str, ...] = ()  # the server names, when two services check in here

    @property
    def running(self) -> bool:
        """Whether the indicator is steady."""
        return self.status == "running"


def status_of(newest_first: Sequence[CheckIn], now: datetime, grace: timedelta) -> Status:
    """Return the status from check-ins (newest first) and the database server's ``now``.

    - No check-in: not available.
    - Two services serve the database (not available, naming both): check-ins from two
      ``server_id``s within one interval of the newest (the contract's rule), or from two
      processes of one ``server_id`` (``server_name`` is ``server_id (host pid N)``,
      ``supervisor.instance_lock.instance_name``) taking turns within two intervals of
      the newest: A, then B, then A again. A process that follows another (a restart)
      never takes turns with it, so a restart is not mistaken for two services, while two
      services running side by side are seen at every check-in, with no gap in which
      the status flaps back to running.
    - Now past the newest ``next_checkin_due_at`` plus ``grace``: not available, saying
      since when nothing was heard.
    - Newest not ok: not available, with its ``summary``.
    - Otherwise running.

    Only the newest check-in and those within one interval of it matter; pass at least
    those (a handful of the newest rows is plenty).
    """
    if not newest_first:
        return Status("not_available", NEVER_TOOLTIP, None)
    newest = newest_first[0]
    interval = max(newest.next_checkin_due_at - newest.checked_in_at, timedelta(0))
    names = _servers_within(newest_first, newest.checked_in_at - interval)
    if len({server_id_of(n) for n in names}) < 2:
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


def server_id_of(server_name: str) -> str:
    """Return the ``server_id`` part of a check-in's ``server_name``. Pure."""
    return server_name.split(" (", 1)[0]


def _taking_turns(newest_first: Sequence[CheckIn], since: datetime) -> tuple[str, ...]:
    """Return the names of check-ins since ``since`` if some name comes back after another
    (two processes writing side by side); else ``()``."""
    window = [c for c in newest_first if c.checked_in_at >= since]
    done: set[str] = set()
    current: str | None = None
    for checkin in reversed(window):  # oldest first
        name = checkin.server_name
        if name == current:
            continue
        if name in done:
            return tuple(sorted({c.server_name for c in window}))
        if current is not None:
            done.add(current)
        current = name
    return ()


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
