"""The command reader: turns rows of ``email_service_commands`` into supervisor messages.

It runs outside every mailbox (a mailbox cannot be trusted to read the command that
restarts it). It reads each served database's unhandled rows through that database's
shared engine, claims them (exactly once) and tells the supervisor one
``RestartCommand`` per database however many rows asked: a storm of clicks is one
restart.

Polling a thousand databases costs CPU even when nobody asks for anything, so each
database is read every ``idle_poll_seconds`` while it stays quiet, and every
``poll_seconds`` after a command, the interval doubling after each empty read
(``next_interval``). A database is first read at the tick after it is watched (commands
may wait from before the start). The actor ticks every ``poll_seconds`` and reads the
databases that are due.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import pykka
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from actors import commands_table
from actors.messages import RestartCommand
from actors.periodic import PeriodicActor
from actors.scheduler import Scheduler
from events.clock import Clock

log = logging.getLogger(__name__)


class Watch(NamedTuple):
    """Start reading commands of ``db`` (its engine comes from ``CommandReaderDeps.engine``)."""

    db: str


class Unwatch(NamedTuple):
    """Stop reading commands of ``db``."""

    db: str


@dataclass(frozen=True)
class CommandReaderDeps:
    """What the command reader is given."""

    clock: Clock
    scheduler: Scheduler
    poll_seconds: float
    supervisor: pykka.ActorRef[Any]
    engine: Callable[[str], Engine]  # db -> its shared engine
    idle_poll_seconds: float | None = None  # the longest interval; None: poll_seconds
    on_restart: Callable[[str], None] = lambda _db: None  # a person asked to restart ``db``
    on_failed: Callable[[str], None] = lambda _error: None  # it died (ChildCrashed)


def source_of(requested_by: str) -> str:
    """Return where a command came from: ``cli``, ``http``, ``setup`` or ``workstation``."""
    prefix = requested_by.split(":", 1)[0]
    return prefix if prefix in ("cli", "http", "setup") else "workstation"


def next_interval(current: float, found: bool, base: float, ceiling: float) -> float:
    """Return a database's next poll interval: ``base`` after a command, else doubled.

    Never below ``base`` nor above ``max(base, ceiling)``. Pure.
    """
    if found:
        return base
    return max(base, min(ceiling, current * 2))


def in_use(engine: Engine) -> bool:
    """Return whether someone holds a connection of ``engine``'s pool right now.

    The reader then waits for the next tick rather than open a second connection to the
    same database (on SQLite each holds about 150 KB, and opening one costs more than the
    read itself).
    """
    pool = engine.pool
    return isinstance(pool, QueuePool) and pool.checkedout() > 0


@dataclass
class _Polled:
    interval: float
    due: float  # monotonic seconds


class CommandReaderActor(PeriodicActor):
    """Polls the served databases' command tables."""

    def __init__(self, deps: CommandReaderDeps) -> None:
        super().__init__(deps.scheduler)
        self._deps = deps
        self._base = deps.poll_seconds
        self._ceiling = max(deps.poll_seconds, deps.idle_poll_seconds or deps.poll_seconds)
        self._watched: dict[str, _Polled] = {}

    def handle(self, message: Any) -> Any:
        if isinstance(message, Watch):
            # Read at the next tick (commands may wait from before the start), then
            # as a quiet database until one comes.
            now = self._deps.clock.monotonic()
            self._watched.setdefault(message.db, _Polled(self._ceiling, now))
        elif isinstance(message, Unwatch):
            self._watched.pop(message.db, None)
        else:
            return super().handle(message)
        return None

    def failed(self, error: str) -> None:
        self._deps.on_failed(error)

    def tick(self) -> float:
        now = self._deps.clock.monotonic()
        for db, polled in list(self._watched.items()):
            if polled.due > now:
                continue
            found = False
            try:
                engine = self._deps.engine(db)
                if in_use(engine):
                    continue  # its mailbox is at work: read at the next tick instead
                found = self._read(db, engine)
            except (SQLAlchemyError, LookupError) as exc:
                # The mailbox's self-test reports an unreachable database; here, try later.
                log.debug("reading commands of %s failed: %s", db, exc)
            polled.interval = next_interval(polled.interval, found, self._base, self._ceiling)
            polled.due = now + polled.interval
        return self._base

    def _read(self, db: str, engine: Engine) -> bool:
        """Handle ``db``'s pending commands; return whether there were any."""
        rows = commands_table.pending(engine)
        if not rows:
            return False
        now = self._deps.clock.now()
        for row in rows:
            if row.command != commands_table.RESTART:
                commands_table.claim(engine, [row.id], now, f"unknown command {row.command!r}")
        restarts = [r for r in rows if r.command == commands_table.RESTART]
        if not restarts:
            return True
        outcome = "restarting the email service for this database"
        if len(restarts) > 1:
            outcome += f" ({len(restarts)} requests, one restart)"
        won = commands_table.claim(engine, [r.id for r in restarts], now, outcome)
        if won:
            first = next(r for r in restarts if r.id == won[0])
            self._deps.on_restart(db)
            self._deps.supervisor.tell(
                RestartCommand(db, source_of(first.requested_by), first.requested_by, tuple(won))
            )
        return True
