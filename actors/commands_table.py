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
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Integer,
    Select,
    Update,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)

from actors.practice_db import one_read, one_statement
from actors.practice_schema import email_service_commands as commands
from actors.practice_schema import utcnow
from actors.statements import SERVER, constant, driver_form, statement

RESTART = "restart"


@dataclass(frozen=True, slots=True)
class CommandRow:
    """An unhandled command."""

    id: int
    command: str
    requested_by: str


# Built once: the command reader runs it for every served database, all day long.
_PENDING = constant(
    "commands.pending",
    select(commands.c.id, commands.c.command, commands.c.requested_by)
    .where(commands.c.handled_at.is_(None))
    .order_by(commands.c.id)
    .limit(bindparam("limit", type_=Integer)),
    params={"limit": 100},
)


def pending(engine: Engine, limit: int = 100) -> list[CommandRow]:
    """Return unhandled commands, oldest first."""
    sql, params = driver_form("commands.pending", engine.dialect, {"limit": limit})
    with one_read(engine) as conn:
        rows = conn.exec_driver_sql(sql, params).all()
    return [CommandRow(r.id, (r.command or "").strip().lower(), r.requested_by or "") for r in rows]


def claim(engine: Engine, ids: Sequence[int], now: datetime, outcome: str) -> list[int]:
    """Mark these rows handled unless someone already did; return the ids this call won."""
    won = []
    naive = now.replace(tzinfo=None) if now.tzinfo else now
    with engine.begin() as conn:
        for command_id in ids:
            changed = conn.execute(_claim_one(command_id, naive, outcome)).rowcount
            if changed == 1:
                won.append(command_id)
    return won


def mark_handled(engine: Engine, ids: Sequence[int], outcome: str) -> int:
    """Mark these rows handled now (the database server's clock) with ``outcome``, unless
    someone already did; return how many rows this call marked."""
    if not ids:
        return 0
    with engine.begin() as conn:
        marked = conn.execute(_mark_handled(ids, outcome)).rowcount
    return int(marked)


@statement("commands.claim", 4, datetime(2026, 1, 5, 8, 0), "restarted")
def _claim_one(command_id: int, now: datetime, outcome: str) -> Update:
    """Mark one command handled at ``now`` unless someone already did."""
    return (
        update(commands)
        .where(commands.c.id == command_id, commands.c.handled_at.is_(None))
        .values(handled_at=now, outcome=outcome)
    )


@statement("commands.mark_handled", [4, 5, 6], "restarted")
def _mark_handled(ids: Sequence[int], outcome: str) -> Update:
    """Mark these commands handled now (the server's clock) unless someone already did."""
    return (
        update(commands)
        .where(commands.c.id.in_(list(ids)), commands.c.handled_at.is_(None))
        .values(handled_at=utcnow(), outcome=outcome)
    )


@statement("commands.insert_restart", "ALICE-PC")
def insert_restart(requested_by: str) -> Insert:
    """A restart command, as a workstation adds one."""
    return insert(commands).values(command=RESTART, requested_by=requested_by)


def request_restart(engine: Engine, requested_by: str) -> int:
    """Insert a restart command, as a workstation does; return its id."""
    with engine.begin() as conn:
        result = conn.execute(insert_restart(requested_by))
        key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


WAITING_RESTART = constant(
    "commands.waiting_restart",
    select(commands.c.id)
    .where(commands.c.handled_at.is_(None), commands.c.command == RESTART)
    .order_by(commands.c.id)
    .limit(1)
    # SQL Server: hold a range lock that a second request's same read waits for.
    .with_hint(commands, "WITH (UPDLOCK, HOLDLOCK)", dialect_name="mssql"),
)

_PG_LOCK_KEY = 0x454D4C53_434D4453  # "EMLSCMDS": advisory locks are per database
_MARIADB_LOCK = "CONCAT('email_service_commands:', SHA1(DATABASE()))"  # <= 64 characters

_SQLITE = frozenset({"sqlite"})
_MARIADB = frozenset({"mysql"})

BEGIN_IMMEDIATE = constant(
    "sqlite.begin_immediate",
    text("BEGIN IMMEDIATE"),
    target=SERVER,
    backends=_SQLITE,
    transaction=False,
)
"""SQLite: a transaction that takes the write lock first."""
ROLLBACK = constant("sqlite.rollback", text("ROLLBACK"), target=SERVER, backends=_SQLITE)
"""SQLite: end the transaction ``BEGIN IMMEDIATE`` started, undone."""
_GET_LOCK = constant(
    "commands.get_lock",
    text(f"SELECT GET_LOCK({_MARIADB_LOCK}, 10)"),
    target=SERVER,
    backends=_MARIADB,
)
_RELEASE_LOCK = constant(
    "commands.release_lock",
    text(f"SELECT RELEASE_LOCK({_MARIADB_LOCK})"),
    target=SERVER,
    backends=_MARIADB,
)
_PG_LOCK = constant(
    "commands.pg_lock",
    select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)),
    target=SERVER,
    backends=frozenset({"postgresql"}),
)


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
            conn.execute(BEGIN_IMMEDIATE)
            try:
                found = _insert_unless_waiting(conn, requested_by)
            except BaseException:
                conn.execute(ROLLBACK)
                raise
        return found
    if name in ("mysql", "mariadb"):
        with engine.connect() as conn:
            got = conn.execute(_GET_LOCK).scalar()
            if got != 1:
                raise TimeoutError("another restart request held its lock for 10 s")
            try:
                found = _insert_unless_waiting(conn, requested_by)
                conn.commit()
            finally:
                conn.rollback()
                conn.execute(_RELEASE_LOCK)
                conn.commit()
        return found
    with engine.begin() as conn:
        if name == "postgresql":
            conn.execute(_PG_LOCK)
        return _insert_unless_waiting(conn, requested_by)


def _insert_unless_waiting(conn: Connection, requested_by: str) -> tuple[int, bool]:
    waiting = conn.execute(WAITING_RESTART).scalar_one_or_none()
    if waiting is not None:
        return int(waiting), True
    key = conn.execute(insert_restart(requested_by)).inserted_primary_key
    assert key is not None
    return int(key[0]), False


def outcome_of(engine: Engine, command_id: int) -> tuple[datetime | None, str | None]:
    """Return ``(handled_at, outcome)`` of one command."""
    with engine.connect() as conn:
        row = conn.execute(_outcome(command_id)).one()
    return row.handled_at, row.outcome


@statement("commands.outcome", 4)
def _outcome(command_id: int) -> Select[Any]:
    """When one command was handled, and how."""
    return select(commands.c.handled_at, commands.c.outcome).where(commands.c.id == command_id)
