"""The command reader: turns rows of ``email_service_commands`` into supervisor messages.

It runs outside every mailbox (a mailbox cannot be trusted to read the command that
restarts it). It reads each served database's unhandled rows through that database's
shared engine and tells the supervisor one ``RestartCommand`` per database however many
rows asked: a storm of clicks is one restart. The rows are marked handled only when the
supervisor answers ``CommandsLogged`` and the ``RestartRequested`` events are durable:
a crash of anything in between leaves them unhandled, to be read again, and the
supervisor, which knows every command id in the log, logs none twice and just answers
(handled exactly once). While a database's rows wait for that answer the database is
not read again, for at most ``IN_FLIGHT_SECONDS``.

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
from actors.messages import CommandsLogged, RestartCommand
from actors.periodic import PeriodicActor
from actors.scheduler import Scheduler
from events.clock import Clock

log = logging.getLogger(__name__)

IN_FLIGHT_SECONDS = 60.0
"""How long rows told to the supervisor wait for its answer before they are read again
(it does not answer for a database it stopped serving meanwhile)."""

DURABLE_WAIT_SECONDS = 30.0
"""How long the reader waits for the supervisor's append to commit before it fails."""

RESTART_OUTCOME = "restarting the email service for this database"


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


@dataclass(frozen=True)
class _InFlight:
    """Rows told to the supervisor, waiting for ``CommandsLogged``."""

    ids: tuple[int, ...]
    outcome: str
    since: float  # monotonic seconds


class CommandReaderActor(PeriodicActor):
    """Polls the served databases' command tables."""

    def __init__(self, deps: CommandReaderDeps) -> None:
        super().__init__(deps.scheduler)
        self._deps = deps
        self._base = deps.poll_seconds
        self._ceiling = max(deps.poll_seconds, deps.idle_poll_seconds or deps.poll_seconds)
        self._watched: dict[str, _Polled] = {}
        self._in_flight: dict[str, _InFlight] = {}

    def handle(self, message: Any) -> Any:
        if isinstance(message, Watch):
            # Read at the next tick (commands may wait from before the start), then
            # as a quiet database until one comes.
            now = self._deps.clock.monotonic()
            self._watched.setdefault(message.db, _Polled(self._ceiling, now))
        elif isinstance(message, Unwatch):
            self._watched.pop(message.db, None)
            self._in_flight.pop(message.db, None)
        elif isinstance(message, CommandsLogged):
            self._logged(message)
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
            flight = self._in_flight.get(db)
            if flight is not None and now - flight.since < IN_FLIGHT_SECONDS:
                continue  # its rows wait for the supervisor's answer
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
        """Tell the supervisor about ``db``'s pending commands; return whether there were any."""
        rows = commands_table.pending(engine)
        if not rows:
            return False
        for row in rows:
            if row.command != commands_table.RESTART:
                commands_table.mark_handled(engine, [row.id], f"unknown command {row.command!r}")
        restarts = [r for r in rows if r.command == commands_table.RESTART]
        if not restarts:
            return True
        outcome = RESTART_OUTCOME
        if len(restarts) > 1:
            outcome += f" ({len(restarts)} requests, one restart)"
        ids = tuple(r.id for r in restarts)
        self._in_flight[db] = _InFlight(ids, outcome, self._deps.clock.monotonic())
        first = restarts[0]
        self._deps.on_restart(db)
        self._deps.supervisor.tell(
            RestartCommand(
                db,
                source_of(first.requested_by),
                first.requested_by,
                ids,
                reply_to=self.actor_ref,
                requesters=tuple(r.requested_by for r in restarts),
            )
        )
        return True

    def _logged(self, message: CommandsLogged) -> None:
        """Mark the rows handled once their events are durable (a failed append: crash)."""
        flight = self._in_flight.get(message.db)
        if flight is None or flight.ids != message.command_ids:
            return  # no longer watched, or an answer to rows given up on and read again
        del self._in_flight[message.db]
        if message.durable is not None:
            message.durable.result(timeout=DURABLE_WAIT_SECONDS)
        try:
            commands_table.mark_handled(self._deps.engine(message.db), flight.ids, flight.outcome)
        except (SQLAlchemyError, LookupError) as exc:
            # Read again at its next poll; their events are logged, so they are only marked.
            log.warning("marking commands of %s handled failed: %s", message.db, exc)
