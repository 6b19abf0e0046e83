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

from sqlalchemy import Connection, insert, select

from actors.practice_schema import email_service_checkins as checkins
from actors.practice_schema import email_service_diagnostics as diagnostics
from actors.practice_schema import utcnow
from supervisor.status_rule import CheckIn

NEWEST_CHECKINS = 10
"""Check-ins the status rule looks at: the newest and any within one interval of it."""


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
    server_name: str
    service_version: str
    lines: Sequence[tuple[str, str, str]] = ()  # (level, component, message)


def server_now(conn: Connection) -> datetime:
    """Return the database server's current time, naive UTC."""
    value = conn.execute(select(utcnow())).scalar_one()
    if isinstance(value, str):  # SQLite returns the text it computed
        return datetime.fromisoformat(value[:26])
    assert isinstance(value, datetime)
    return value.replace(tzinfo=None)


def newest_checkins(conn: Connection, limit: int = NEWEST_CHECKINS) -> list[CheckIn]:
    """Return the newest check-ins, newest first."""
    rows = conn.execute(
        select(
            checkins.c.checked_in_at,
            checkins.c.next_checkin_due_at,
            checkins.c.ok,
            checkins.c.summary,
            checkins.c.server_name,
        )
        .order_by(checkins.c.checked_in_at.desc(), checkins.c.id.desc())
        .limit(limit)
    ).all()
    return [
        CheckIn(r.checked_in_at, r.next_checkin_due_at, bool(r.ok), r.summary or "", r.server_name)
        for r in rows
    ]


def diagnostic_log(conn: Connection, limit: int = 50) -> list[DiagnosticRow]:
    """Return the diagnostic log a workstation shows when its indicator is clicked, oldest
    line first: the lines of the newest failing check-in, then those of the check-ins
    after it (all ok: the recovery line, warnings such as an outbox row refused as written),
    at most ``limit`` of each, the newest ones. With no failing check-in, the newest
    ``limit`` lines of any."""
    failing = (
        select(checkins.c.id)
        .where(checkins.c.ok == False)  # noqa: E712 (SQL, not Python)
        .order_by(checkins.c.checked_in_at.desc(), checkins.c.id.desc())
        .limit(1)
    )
    checkin_id = conn.execute(failing).scalar_one_or_none()
    columns = (
        diagnostics.c.logged_at,
        diagnostics.c.level,
        diagnostics.c.component,
        diagnostics.c.message,
    )
    failure: list[Any] = []
    # Through the lines' check-in index: the lines of check-ins after the failing one.
    later = (
        select(*columns)
        .where(diagnostics.c.checkin_id > (checkin_id or 0))
        .order_by(diagnostics.c.checkin_id.desc(), diagnostics.c.id.desc())
        .limit(limit)
    )
    if checkin_id is not None:
        failure = list(
            conn.execute(
                select(*columns)
                .where(diagnostics.c.checkin_id == checkin_id)
                .order_by(diagnostics.c.id)
                .limit(limit)
            ).all()
        )
    rows = failure + list(reversed(conn.execute(later).all()))
    return [DiagnosticRow(r.logged_at, r.level, r.component, r.message) for r in rows]


def write_checkin(conn: Connection, new: NewCheckIn) -> int:
    """Insert one check-in and its diagnostic lines (in the caller's transaction).

    ``checked_in_at`` and ``next_checkin_due_at`` come from the database server's clock.
    Returns the check-in's id.
    """
    now = server_now(conn)
    result = conn.execute(
        insert(checkins).values(
            checked_in_at=now,
            next_checkin_due_at=now + new.interval,
            ok=new.ok,
            summary=new.summary,
            server_name=new.server_name,
            service_version=new.service_version,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    checkin_id = int(key[0])
    if new.lines:
        conn.execute(
            insert(diagnostics),
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
