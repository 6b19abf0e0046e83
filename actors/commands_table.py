"""The ``email_service_commands`` table: workstations and the command line ask, we answer.

Each row is handled exactly once. The service marks it handled (``mark_handled``:
``handled_at`` from the database server's clock, and ``outcome``) only after the
``RestartRequested`` that carries its id is durable in the event log; a crash in between
leaves the row to be read again, and a row whose event is already in the log is then
just marked (``actors.command_reader``). The mark is a compare-and-swap (``handled_at``
still empty → set), so two readers never both answer one row.

The service's own ways to ask (the status page's button, ``email-service restart``) add
a row only when none is waiting (``request_restart_once``): one transaction that takes a
lock every such request takes, then looks and inserts, so 200 clicks at once leave one
waiting row on every kind of database. Workstations insert rows their own way; many
waiting rows still make one restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, Integer, bindparam, func, insert, select, text, update

from actors.practice_db import driver_form, one_read, one_statement
from actors.practice_schema import email_service_commands as commands
from actors.practice_schema import utcnow

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


def mark_handled(engine: Engine, ids: Sequence[int], outcome: str) -> int:
    """Mark these rows handled now (the database server's clock) with ``outcome``, unless
    someone already did; return how many rows this call marked."""
    if not ids:
        return 0
    with engine.begin() as conn:
        marked = conn.execute(
            update(commands)
            .where(commands.c.id.in_(list(ids)), commands.c.handled_at.is_(None))
            .values(handled_at=utcnow(), outcome=outcome)
        ).rowcount
    return int(marked)


def request_restart(engine: Engine, requested_by: str) -> int:
    """Insert a restart command, as a workstation does; return its id."""
    with engine.begin() as conn:
        result = conn.execute(insert(commands).values(command=RESTART, requested_by=requested_by))
        key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


_WAITING = (
    select(commands.c.id)
    .where(commands.c.handled_at.is_(None), commands.c.command == RESTART)
    .order_by(commands.c.id)
    .limit(1)
    # SQL Server: hold a range lock that a second request's same read waits for.
    .with_hint(commands, "WITH (UPDLOCK, HOLDLOCK)", dialect_name="mssql")
)

_PG_LOCK_KEY = 0x454D4C53_434D4453  # "EMLSCMDS": advisory locks are per database
_MARIADB_LOCK = "CONCAT('email_service_commands:', SHA1(DATABASE()))"  # <= 64 characters


def request_restart_once(engine: Engine, requested_by: str) -> tuple[int, bool]:
    """Insert a restart command unless one is waiting; return ``(id, coalesced)``.

    ``coalesced`` is True when an unhandled restart row was already there (its id is
    returned, nothing is inserted). Requests running at once are serialized by a lock
    each takes first: SQLite's write lock (``BEGIN IMMEDIATE``), a transaction-scoped
    advisory lock on PostgreSQL, a named lock on MySQL/MariaDB (``GET_LOCK``, released
    after the commit), a range lock on SQL Server (``UPDLOCK, HOLDLOCK``).
    """
    name = engine.dialect.name
    if name == "sqlite":
        # Our own BEGIN, not the engine's deferred one: the write lock comes first, so
        # the look below sees every committed row (a deferred reader's snapshot would
        # not) and a second request waits for it (busy_timeout).
        with one_statement(engine) as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                found = _insert_unless_waiting(conn, requested_by)
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
        return found
    if name in ("mysql", "mariadb"):
        with engine.connect() as conn:
            got = conn.execute(text(f"SELECT GET_LOCK({_MARIADB_LOCK}, 10)")).scalar()
            if got != 1:
                raise TimeoutError("another restart request held its lock for 10 s")
            try:
                found = _insert_unless_waiting(conn, requested_by)
                conn.commit()
            finally:
                conn.rollback()
                conn.execute(text(f"SELECT RELEASE_LOCK({_MARIADB_LOCK})"))
                conn.commit()
        return found
    with engine.begin() as conn:
        if name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
        return _insert_unless_waiting(conn, requested_by)


def _insert_unless_waiting(conn: Connection, requested_by: str) -> tuple[int, bool]:
    waiting = conn.execute(_WAITING).scalar_one_or_none()
    if waiting is not None:
        return int(waiting), True
    key = conn.execute(
        insert(commands).values(command=RESTART, requested_by=requested_by)
    ).inserted_primary_key
    assert key is not None
    return int(key[0]), False


def outcome_of(engine: Engine, command_id: int) -> tuple[datetime | None, str | None]:
    """Return ``(handled_at, outcome)`` of one command."""
    with engine.connect() as conn:
        row = conn.execute(
            select(commands.c.handled_at, commands.c.outcome).where(commands.c.id == command_id)
        ).one()
    return row.handled_at, row.outcome
