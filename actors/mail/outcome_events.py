"""Mail outcome events that converge to the practice database's truth after a kill.

The practice database is the truth about mail: a row is ``sent``, ``failed``, queued
again after a failed attempt, or ``received``. Each outcome is committed there first and
its event (``MessageSent``, ``MessageSendFailed``, ``MessageReceived``) is appended to the
service's log afterwards, once per batch; a kill in between would leave the row without
its event for ever. So the commit of every outcome also sets the row's ``event_pending``,
and:

- once the event is durable in the log, ``clear`` sets it back to NULL (one statement per
  batch, by row id);
- at the start of each incarnation, ``recover`` appends the event of every row still
  marked (read through the column's index, never by reading the log), marked
  ``recovered=True``, waits until they are durable and clears the marks.

So after a kill the log lacks an outcome event at most until the next start of that
database's mailbox; a recovered event carries the row's state at that start (a row
retried and then sent meanwhile gets only its ``MessageSent``). A power cut that takes
back a ``clear`` (it does not wait for the disk) makes the next start append that
event a second time, marked recovered.

Runs in the mailbox's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, Update, select, update

from actors import practice_db
from actors.practice_schema import email_messages
from actors.statements import constant, statement
from events.types import (
    Event,
    MessageParked,
    MessageReceived,
    MessageSendFailed,
    MessageSent,
)

_m = email_messages
_IN_CHUNK = 500


def row_ids(events: Iterable[Event]) -> list[int]:
    """The rows whose outcome ``events`` record (their marks can be cleared once the
    events are durable)."""
    found: list[int | None] = [
        e.row_id
        for e in events
        if isinstance(e, MessageSent | MessageSendFailed | MessageReceived | MessageParked)
    ]
    return [row_id for row_id in found if row_id is not None]


def _count(addresses: str | None) -> int:
    return len([a for a in (addresses or "").split(",") if a.strip()])


def event_for_row(row: Any, incarnation: int) -> Event | None:
    """The outcome event a marked row is owed, from its current state (pure); None for a
    row in no outcome state (being sent again: its next outcome marks it anew)."""
    message_id = row.message_id or ""
    if row.status == "received":
        return MessageReceived(
            incarnation,
            row.id,
            message_id,
            int(row.imap_uidvalidity or 0),
            int(row.imap_uid or 0),
            recovered=True,
        )
    if row.status == "sent":
        recipients = _count(row.to_addrs) + _count(row.cc_addrs) - _count(row.refused_recipients)
        return MessageSent(incarnation, row.id, message_id, max(recipients, 1), recovered=True)
    if row.status in ("failed", "queued"):
        return MessageSendFailed(
            incarnation,
            row.id,
            message_id,
            row.last_error or "",
            permanent=row.status == "failed",
            recovered=True,
        )
    return None


@statement("outcome_events.clear", [41, 42])
def _clear(ids: list[int]) -> Update:
    """Mark rows as having their event in the log."""
    return update(_m).where(_m.c.id.in_(ids)).values(event_pending=None)


_OWED = constant(
    "outcome_events.owed",
    select(
        _m.c.id,
        _m.c.status,
        _m.c.message_id,
        _m.c.to_addrs,
        _m.c.cc_addrs,
        _m.c.refused_recipients,
        _m.c.last_error,
        _m.c.imap_uidvalidity,
        _m.c.imap_uid,
    )
    .where(_m.c.event_pending.is_not(None))
    .order_by(_m.c.id),
)
"""The rows whose event is still owed, oldest first."""


def clear(engine: Engine, ids: Sequence[int]) -> None:
    """Mark the rows ``ids`` as having their event in the log. Call only once the events
    are durable. Does not wait for the disk (see the module docstring)."""
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = sorted(set(ids[start : start + _IN_CHUNK]))
        with practice_db.one_statement(engine, durable=False) as conn:
            conn.execute(_clear(chunk))


def recover(
    engine: Engine,
    incarnation: int,
    emit: Callable[[Sequence[Event]], None],
    flush: Callable[[], None],
) -> int:
    """Append the events still owed (see the module docstring); return how many."""
    with practice_db.one_read(engine) as conn:
        rows = conn.execute(_OWED).all()
    events = [e for e in (event_for_row(r, incarnation) for r in rows) if e is not None]
    if not events:
        return 0
    emit(events)
    flush()
    clear(engine, row_ids(events))
    return len(events)
