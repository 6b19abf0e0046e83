"""The check-in tables, ``email_service_checkins`` and ``email_service_diagnostics``.

The service writes them (one check-in per check-in interval, with its diagnostic lines);
workstations, ``email-service status`` and the status page read them. Every time here is
naive UTC from the database server's clock (``practice_schema.utcnow()``), never this
machine's, so a workstation with a wrong clock still judges lateness right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Insert, Select, insert, null, select
from sqlalchemy.exc import DBAPIError

from actors.practice_schema import email_service_checkins as checkins
from actors.practice_schema import email_service_diagnostics as diagnostics
from actors.practice_schema import utcnow
from actors.statements import SERVER, constant, statement
from supervisor.status_rule import CheckIn

NEWEST_CHECKINS = 10
"""Check-ins the status rule looks at: the newest and any within two intervals of it."""


@dataclass(frozen=True, slots=True)
class DiagnosticRow:
    """One line of a check-in's diagnostic log."""

    logged_at: datetime
    level: str
    component: str
    message: str


@dataclass(frozen=True, slots=True)
class NewCheckIn:
    """A check-in to write: what the self-test found, and when the next one is due."""

    ok: bool
    summary: str
    interval: timedelta  # next_checkin_due_at = the server's now + interval
    server_name: str  # the contract's: the service's ``server_id``
    service_version: str
    lines: Sequence[tuple[str, str, str]] = ()  # (level, component, message)
    service_instance: str | None = None  # which start of the service (``host pid N start W``)


_SERVER_NOW = constant("server.now", select(utcnow()), target=SERVER)


def server_now(conn: Connection) -> datetime:
    """Return the database server's current time, naive UTC."""
    value = conn.execute(_SERVER_NOW).scalar_one()
    if isinstance(value, str):  # SQLite returns the text it computed
        return datetime.fromisoformat(value[:26])
    assert isinstance(value, datetime)
    return value.replace(tzinfo=None)


def newest_checkins(conn: Connection, limit: int = NEWEST_CHECKINS) -> list[CheckIn]:
    """Return the newest check-ins, newest first.

    A database made by an older version may lack the service-owned ``service_instance``
    column until the service's start-up adds it; a workstation reading it then gets the
    rows without (each one's instance unknown) rather than an error.
    """
    try:
        rows = conn.execute(_newest(limit)).all()
    except DBAPIError:
        conn.rollback()
        rows = conn.execute(_newest_without_instance(limit)).all()
    return [CheckIn(r[0], r[1], bool(r[2]), r[3] or "", r[4], r[5]) for r in rows]


_COLUMNS = (
    checkins.c.checked_in_at,
    checkins.c.next_checkin_due_at,
    checkins.c.ok,
    checkins.c.summary,
    checkins.c.server_name,
)


@statement("checkins.newest", NEWEST_CHECKINS)
def _newest(limit: int) -> Select[Any]:
    """The newest ``limit`` check-ins, newest first, with the start that wrote each."""
    return (
        select(*_COLUMNS, checkins.c.service_instance)
        .order_by(checkins.c.checked_in_at.desc(), checkins.c.id.desc())
        .limit(limit)
    )


@statement("checkins.newest_without_instance", NEWEST_CHECKINS)
def _newest_without_instance(limit: int) -> Select[Any]:
    """The same, from a table an older version made (no ``service_instance`` yet)."""
    return (
        select(*_COLUMNS, null())
        .order_by(checkins.c.checked_in_at.desc(), checkins.c.id.desc())
        .limit(limit)
    )


_NEWEST_FAILING = constant(
    "checkins.newest_failing",
    select(checkins.c.id)
    .where(checkins.c.ok == False)  # noqa: E712 (SQL, not Python)
    .order_by(checkins.c.checked_in_at.desc(), checkins.c.id.desc())
    .limit(1),
)


_LINE_COLUMNS = (
    diagnostics.c.logged_at,
    diagnostics.c.level,
    diagnostics.c.component,
    diagnostics.c.message,
)
"""What a diagnostic line shows, in ``DiagnosticRow``'s order."""


@statement("checkins.lines", 12, 50)
def _lines(checkin_id: int, limit: int) -> Select[Any]:
    """One check-in's diagnostic lines, oldest first."""
    return (
        select(*_LINE_COLUMNS)
        .where(diagnostics.c.checkin_id == checkin_id)
        .order_by(diagnostics.c.id)
        .limit(limit)
    )


@statement("checkins.lines_after", 12, 50)
def _lines_after(checkin_id: int, limit: int) -> Select[Any]:
    """The newest ``limit`` diagnostic lines of the check-ins after ``checkin_id``, newest
    first (through the lines' check-in index)."""
    return (
        select(*_LINE_COLUMNS)
        .where(diagnostics.c.checkin_id > checkin_id)
        .order_by(diagnostics.c.checkin_id.desc(), diagnostics.c.id.desc())
        .limit(limit)
    )


def diagnostic_log(conn: Connection, limit: int = 50) -> list[DiagnosticRow]:
    """Return the diagnostic log a workstation shows when its indicator is clicked, oldest
    line first: the lines of the newest failing check-in, then those of the check-ins
    after it (all ok: the recovery line, warnings such as an outbox row refused as written),
    at most ``limit`` of each, the newest ones. With no failing check-in, the newest
    ``limit`` lines of any."""
    checkin_id = conn.execute(_NEWEST_FAILING).scalar_one_or_none()
    failure: list[Any] = []
    if checkin_id is not None:
        failure = list(conn.execute(_lines(checkin_id, limit)).all())
    later = conn.execute(_lines_after(checkin_id or 0, limit)).all()
    rows = failure + list(reversed(later))
    return [DiagnosticRow(r.logged_at, r.level, r.component, r.message) for r in rows]


def write_checkin(conn: Connection, new: NewCheckIn) -> int:
    """Insert one check-in and its diagnostic lines (in the caller's transaction).

    ``checked_in_at`` and ``next_checkin_due_at`` come from the database server's clock.
    Returns the check-in's id.
    """
    now = server_now(conn)
    result = conn.execute(_insert_checkin(now, new))
    key = result.inserted_primary_key
    assert key is not None
    checkin_id = int(key[0])
    if new.lines:
        conn.execute(
            _INSERT_LINES,
            [
                {
                    "checkin_id": checkin_id,
                    "logged_at": now,
                    "level": level,
                    "component": component,
                    "message": message,
                }
                for level, component, message in new.lines
            ],
        )
    return checkin_id


_SAMPLE_CHECKIN = NewCheckIn(
    False,
    "Mail cannot be sent",
    timedelta(minutes=15),
    "PRACTICE-SRV",
    "0.1.0",
    (),
    "practice-srv pid 812 start 3f9a1c2e",
)


@statement("checkins.insert", datetime(2026, 1, 5, 8, 0), _SAMPLE_CHECKIN)
def _insert_checkin(now: datetime, new: NewCheckIn) -> Insert:
    """One check-in, at ``now`` (the server's clock, read first)."""
    return insert(checkins).values(
        checked_in_at=now,
        next_checkin_due_at=now + new.interval,
        ok=new.ok,
        summary=new.summary,
        server_name=new.server_name,
        service_version=new.service_version,
        service_instance=new.service_instance,
    )


_INSERT_LINES = constant(
    "checkins.insert_lines",
    insert(diagnostics),
    params=[
        {
            "checkin_id": 12,
            "logged_at": datetime(2026, 1, 5, 8, 0),
            "level": "error",
            "component": "smtp",
            "message": "The mail server refused the password",
        }
    ],
)
