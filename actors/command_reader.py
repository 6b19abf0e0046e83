"""The command reader: turns rows of ``email_service_commands`` into supervisor messages.

It runs outside every mailbox (a mailbox cannot be trusted to read the command that
restarts it). Every ``poll_seconds`` it reads each served database's unhandled rows,
claims them (exactly once) and tells the supervisor one ``RestartCommand`` per
database however many rows asked: a storm of clicks is one restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NamedTuple

import pykka
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from actors import commands_table, practice_db
from actors.messages import Init, Ping, RestartCommand, Tick
from actors.scheduler import Scheduler, Timer, tell_later
from events.clock import Clock

log = logging.getLogger(__name__)


class Watch(NamedTuple):
    """Start reading commands of ``db`` at ``url``."""

    db: str
    url: str


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


def source_of(requested_by: str) -> str:
    """Return where a command came from: ``cli``, ``http`` or ``workstation``."""
    prefix = requested_by.split(":", 1)[0]
    return prefix if prefix in ("cli", "http") else "workstation"


class CommandReaderActor(pykka.ThreadingActor):
    """Polls the served databases' command tables."""

    def __init__(self, deps: CommandReaderDeps) -> None:
        super().__init__()
        self._deps = deps
        self._engines: dict[str, Engine] = {}
        self._timer: Timer | None = None

    def on_start(self) -> None:
        self.actor_ref.tell(Init())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Ping):
            return True
        if isinstance(message, Watch):
            if message.db not in self._engines:
                self._engines[message.db] = practice_db.make_engine(message.url, timeout=5.0)
        elif isinstance(message, Unwatch):
            engine = self._engines.pop(message.db, None)
            if engine is not None:
                engine.dispose()
        elif isinstance(message, Init | Tick):
            self._poll()
            self._timer = tell_later(
                self._deps.scheduler, self._deps.poll_seconds, self.actor_ref, Tick()
            )
        else:
            return super().on_receive(message)
        return None

    def _poll(self) -> None:
        for db, engine in list(self._engines.items()):
            try:
                self._read(db, engine)
            except SQLAlchemyError as exc:
                # The mailbox's self-test reports an unreachable database; here, try later.
                log.debug("reading commands of %s failed: %s", db, exc)

    def _read(self, db: str, engine: Engine) -> None:
        rows = commands_table.pending(engine)
        if not rows:
            return
        now = self._deps.clock.now()
        unknown = [r.id for r in rows if r.command != commands_table.RESTART]
        for row in rows:
            if row.id in unknown:
                commands_table.claim(engine, [row.id], now, f"unknown command {row.command!r}")
        restarts = [r for r in rows if r.command == commands_table.RESTART]
        if not restarts:
            return
        outcome = "restarting the email service for this database"
        if len(restarts) > 1:
            outcome += f" ({len(restarts)} requests, one restart)"
        won = commands_table.claim(engine, [r.id for r in restarts], now, outcome)
        if won:
            first = next(r for r in restarts if r.id == won[0])
            self._deps.supervisor.tell(
                RestartCommand(db, source_of(first.requested_by), first.requested_by, tuple(won))
            )

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for engine in self._engines.values():
            engine.dispose()
