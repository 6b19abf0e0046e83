"""The ``email_service_commands`` table: workstations and the command line ask, we answer.

Each row is handled exactly once: the service claims it with a compare-and-swap
(``handled_at`` still empty → set), so two readers, or a reader restarted half way,
never act on one row twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Integer, bindparam, insert, select, update

from actors.practice_db import driver_form, one_read
from actors.practice_schema import email_service_commands as commands

RESTART = "restart"


@dataclass(frozen=True, slots=True)
class CommandRow:
    """An unhandled command."""

    id: int
    command: str
    requested_by: str


# Built once: the command reader runs it for every served database, all day long.
_PENDING = (
    select(commands.c.id, commands.c.command, commands.c.requested_by)
    .where(commands.c.handled_at.is_(None))
    .order_by(commands.c.id)
    .limit(bindparam("limit", type_=Integer))
)


def pending(engine: Engine, limit: int = 100) -> list[CommandRow]:
    """Return unhandled commands, oldest first."""
    sql, params = driver_form(_PENDING, "pending", engine.dialect, {"limit": limit})
    with one_read(engine) as conn:
        rows = conn.exec_driver_sql(sql, params).all()
    return [CommandRow(r.id, (r.command or "").strip().lower(), r.requested_by or "") for r in rows]


def claim(engine: Engine, ids: Sequence[int], now: datetime, outcome: str) -> list[int]:
    """Mark these rows handled unless someone already did; return the ids this call won."""
    won = []
    naive = now.replace(tzinfo=None) if now.tzinfo else now
    with engine.begin() as conn:
        for command_id in ids:
            changed = conn.execute(
                update(commands)
                .where(commands.c.id == command_id, commands.c.handled_at.is_(None))
                .values(handled_at=naive, outcome=outcome)
            ).rowcount
            if changed == 1:
                won.append(command_id)
    return won


def request_restart(engine: Engine, requested_by: str) -> int:
    """Insert a restart command, as a workstation does; return its id."""
    with engine.begin() as conn:
        result = conn.execute(insert(commands).values(command=RESTART, requested_by=requested_by))
        key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def outcome_of(engine: Engine, command_id: int) -> tuple[datetime | None, str | None]:
    """Return ``(handled_at, outcome)`` of one command."""
    with engine.connect() as conn:
        row = conn.execute(
            select(commands.c.handled_at, commands.c.outcome).where(commands.c.id == command_id)
        ).one()
    return row.handled_at, row.outcome
