"""The check-in projector: failed check-ins for databases whose mailbox is not running.

A running mailbox writes its own check-ins (``actors.mail.steps.CheckInStep``). One that
crashed, is waiting for its restart, was found hung or was given up cannot, yet its
workstations must flash for the right reason (DESIGN decision 4). This actor follows the
event log (from the start-up memory's position), folds each database's health
(``events.projections.health``) and, every check-in interval, writes a failed check-in
that says so into each such database, with the same pure content rule as the mailbox
(``events.projections.checkin``). A database that does not answer is skipped until it
does (the outage is remembered for the recovery line); one no longer served has no engine
and is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from actors.checkin_writer import CheckInWriter
from actors.engines import UnknownDatabaseError
from actors.periodic import PeriodicActor
from actors.scheduler import Scheduler
from events.clock import Clock
from events.projections.health import HEALTH_TYPES, DbHealth, HealthStatus, apply_health
from events.projections.memory import ServiceMemory
from events.store import EventStore
from events.types import db_of

log = logging.getLogger(__name__)

NOT_RUNNING = frozenset({HealthStatus.CRASHED, HealthStatus.RESTARTING, HealthStatus.GAVE_UP})
"""The states in which nobody else writes the database's check-ins."""

_TYPE_NAMES = frozenset(t.__name__ for t in HEALTH_TYPES)


@dataclass(frozen=True)
class CheckInProjectorDeps:
    """What the projector is given."""

    store: EventStore
    clock: Clock
    scheduler: Scheduler
    every_seconds: float
    engine: Callable[[str], Engine]  # raises UnknownDatabaseError for a database not served
    server_name: str  # the contract's column: the service's server_id
    service_version: str
    on_written: Callable[[str], None] = lambda _db: None
    on_failed: Callable[[str], None] = lambda _error: None  # it died (ChildCrashed)
    service_instance: str | None = None  # this start of the service (check-ins' column)


class CheckInProjectorActor(PeriodicActor):
    """Follows the log; writes failed check-ins for mailboxes that cannot."""

    def __init__(self, deps: CheckInProjectorDeps, memory: ServiceMemory | None = None) -> None:
        """``memory``: what start-up read (``events.snapshot.read_memory``); the projector
        follows the log from its ``last_seq`` with its health, instead of from the start."""
        super().__init__(deps.scheduler)
        self._deps = deps
        self._after = 0 if memory is None else memory.last_seq
        self._health: dict[str, DbHealth] = {} if memory is None else dict(memory.view.health)
        self._writers: dict[str, CheckInWriter] = {}

    def failed(self, error: str) -> None:
        self._deps.on_failed(error)

    def tick(self) -> float:
        self._follow()
        for db, health in self._health.items():
            if health.status in NOT_RUNNING:
                self._write(db, health)
        return self._deps.every_seconds

    def _follow(self) -> None:
        store = self._deps.store
        for chunk in store.read_chunks(self._after):
            wanted = [row for row in chunk if row[3] in _TYPE_NAMES]
            for r in store.codec.decode_chunks([wanted]):
                db = db_of(r.stream)
                if db is not None:
                    self._health[db] = apply_health(self._health.get(db, DbHealth()), r)
            self._after = chunk[-1][0]

    def _write(self, db: str, health: DbHealth) -> None:
        d = self._deps
        writer = self._writers.get(db)
        if writer is None:
            writer = CheckInWriter(
                lambda: d.engine(db),
                server_name=d.server_name,
                service_version=d.service_version,
                service_instance=d.service_instance,
                interval_seconds=d.every_seconds,
                clock=d.clock,
                on_written=lambda: d.on_written(db),
            )
            self._writers[db] = writer
        try:
            writer.write(health, incarnation=None)
        except UnknownDatabaseError:
            self._writers.pop(db, None)  # no longer served: nothing to say there
