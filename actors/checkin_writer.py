"""Writes a database's check-in rows: what its self-test found, every check-in interval.

The content is ``events.projections.checkin.checkin_of`` of the database's health, the
same pure function for a live mailbox (its self-test's result) and for a crashed,
restarting or given-up one (``actors.checkin_projector``). Times come from the database
server's clock (the contract's rule), so a workstation with a wrong clock judges right.

A live incarnation's check-in is fenced: it is one ``INSERT ... SELECT`` that copies
nothing unless the fence row (``email_service_mailbox``) still holds the incarnation, so a
plain check-in costs the practice database one write per interval and a replaced
incarnation cannot write one. A check-in with diagnostic lines (a failure, a recovery)
is one short transaction instead: fence check, check-in, lines.

A writer's memory of an outage starts with what the database itself says: on its first
write it reads this server's newest check-in there (any start of it: ``server_name`` is
the ``server_id``; which start wrote a row is its ``service_instance``). If it failed,
the outage started at the oldest failed one since the last ok one; if it is late (the
database's clock is past its ``next_checkin_due_at`` plus ``grace_seconds``: the service
was dead or hung, and nobody wrote anything), the outage started when that check-in said
the next was due. So the first ok check-in of a new incarnation (after a crash, a restart
of the mailbox or of the whole process, a kill or a hang) still carries the recovery line.
A writer that finds its own last check-in longer ago than an interval plus the grace (the
whole process was paused, or its thread hung and woke) asks the database again before it
writes. This costs one read per writer, not per check-in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Delete,
    Engine,
    Insert,
    Select,
    String,
    Unicode,
    UnicodeText,
    bindparam,
    delete,
    false,
    func,
    insert,
    select,
    true,
)
from sqlalchemy.exc import SQLAlchemyError

from actors import checkins_table, practice_db
from actors.checkins_table import NewCheckIn
from actors.practice_schema import SINGLE_ROW_ID, utcnow, utcnow_plus
from actors.practice_schema import email_service_checkins as checkins
from actors.practice_schema import email_service_diagnostics as diagnostics
from actors.practice_schema import email_service_mailbox as fence
from actors.server_budget import ServerFullError
from actors.statements import constant, driver_form, statement
from events.clock import Clock
from events.projections.checkin import CheckInContent, CheckInMemory, checkin_of
from events.projections.health import DbHealth
from events.types import Diagnostic
from supervisor.discovery import error_line


class CheckInWriter:
    """Check-ins for one database, remembering outages between them (for the recovery line)."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        *,
        server_name: str,
        service_version: str,
        service_instance: str | None = None,
        interval_seconds: float,
        clock: Clock,
        url: str = "",
        on_written: Callable[[], None] = lambda: None,
        keep_days: float | None = None,
        first_prune_after: float = 0.0,
        grace_seconds: float = 0.0,
    ) -> None:
        """``server_name``: the contract's column, the service's ``server_id``;
        ``service_instance``: which start of it writes (``instance_lock.service_instance``)."""
        self._engine = engine
        self._server_name = server_name
        self._instance = service_instance
        self._recall_params = {"server_id": server_name}
        self._grace = timedelta(seconds=grace_seconds)
        self._version = service_version
        self._interval = timedelta(seconds=interval_seconds)
        self._clock = clock
        self._url = url
        self.last_error = ""
        """Why the last write failed ("" when it did not), one line, passwords masked."""
        self.server_full = False
        """Whether it failed because the database server had no free connection for it."""
        self._on_written = on_written
        self._memory = CheckInMemory()
        self._recalled = False  # whether the database was asked about an earlier outage
        self._keep_days = keep_days
        self._first_prune_after = first_prune_after
        self._prune_due: float | None = None  # monotonic; set at the first write
        self._last_write: float | None = None  # monotonic: when the last check-in landed

    def unreachable(self) -> None:
        """Note that the database did not answer (no check-in can be written now)."""
        if self._memory.unavailable_since is None:
            since = self._clock.now().astimezone(UTC).replace(tzinfo=None)
            self._memory = CheckInMemory(since)

    def write(
        self,
        health: DbHealth,
        *,
        incarnation: int | None,
        warnings: tuple[Diagnostic, ...] = (),
    ) -> bool:
        """Write the check-in ``health`` calls for; return False when the database does not
        answer (``last_error`` says how; the outage is remembered for the recovery line).

        ``incarnation``: fence the write with it (raises ``StaleIncarnationError`` when a
        newer one holds the database); None for the projector's unfenced check-ins.
        ``warnings``: a passed self-test's warning lines, written as the check-in's lines.
        """
        late = self._interval + self._grace
        if (
            self._last_write is not None
            and self._clock.monotonic() - self._last_write > late.total_seconds()
        ):
            self._recalled = False  # the process was paused or this thread hung: ask again
        try:
            engine = self._engine()
            if not self._recalled:
                self._recall(engine)
                self._recalled = True
            guess = self._clock.now().astimezone(UTC).replace(tzinfo=None)
            content, memory = checkin_of(health, self._memory, guess, warnings)
            if incarnation is not None and not content.lines:
                self._fenced_plain(engine, content, incarnation)
            else:
                with engine.connect() as conn:
                    now = checkins_table.server_now(conn)
                content, memory = checkin_of(health, self._memory, now, warnings)
                self._with_lines(engine, content, incarnation)
        except SQLAlchemyError as exc:
            self.last_error = error_line(exc, self._url)
            self.server_full = isinstance(exc, ServerFullError)
            self.unreachable()
            return False
        self.last_error = ""
        self.server_full = False
        self._memory = memory
        self._last_write = self._clock.monotonic()
        self._on_written()
        self._prune_now_and_then(engine)
        return True

    def _prune_now_and_then(self, engine: Engine) -> None:
        """Once an hour, delete check-ins older than ``keep_days`` and their lines; the first
        time ``first_prune_after`` seconds after the first write (the service spreads it
        over the hour, so a thousand mailboxes starting together do not all prune then)."""
        if self._keep_days is None:
            return
        now = self._clock.monotonic()
        if self._prune_due is None:
            self._prune_due = now + self._first_prune_after
        if now < self._prune_due:
            return
        self._prune_due = now + PRUNE_EVERY_SECONDS
        # A failure leaves the old rows for the next hour; the check-in itself was written.
        with contextlib.suppress(SQLAlchemyError):
            prune_checkins(engine, self._keep_days)

    def _recall(self, engine: Engine) -> None:
        # Since when this server's check-ins here have failed: the oldest failed one after
        # its newest ok one, when its newest one failed (server times, like the rows').
        # The first question is asked by every mailbox that starts: compiled once for the
        # process; the rest only after a failure, not worth a place in any SQL cache.
        sql, params = driver_form("checkin.newest_ok", engine.dialect, self._recall_params)
        with practice_db.one_read(engine) as conn:
            row = conn.exec_driver_sql(sql, params).first()
        if row is None:
            return
        if row[0]:
            self._recall_gap(engine, row[1])
            return
        params = self._recall_params
        with engine.execution_options(compiled_cache=None).connect() as conn:
            last_ok = conn.execute(_last_ok(params)).scalar_one_or_none()
            since = conn.execute(_first_failed(params, last_ok)).scalar_one_or_none()
        known = self._memory.unavailable_since
        if since is not None and (known is None or since < known):
            self._memory = CheckInMemory(since)

    def _recall_gap(self, engine: Engine, due: object) -> None:
        """The newest check-in was ok: the database was served since, unless it is late."""
        with practice_db.one_read(engine) as conn:
            now = checkins_table.server_now(conn)
        if isinstance(due, str):  # SQLite through the driver: the stored text
            due = datetime.fromisoformat(due[:26])
        if not isinstance(due, datetime):
            return
        due = due.replace(tzinfo=None)
        if now > due + self._grace and self._memory.unavailable_since is None:
            self._memory = CheckInMemory(due)

    def _fenced_plain(self, engine: Engine, content: CheckInContent, incarnation: int) -> None:
        params = {
            "ok": content.ok,
            "summary": content.summary,
            "server_name": self._server_name,
            "service_version": self._version,
            "service_instance": self._instance,
            "holder": incarnation,
        }
        sql, values = driver_form(
            "checkin.fenced_plain", engine.dialect, params, self._interval.total_seconds()
        )
        # A check-in a power cut takes back only makes the status look older: no fsync.
        with practice_db.one_statement(engine, durable=False) as conn:
            written = conn.exec_driver_sql(sql, values).rowcount
        if written != 1:
            with engine.begin() as conn:
                practice_db.check_incarnation(conn, incarnation)  # raises when replaced

    def _with_lines(self, engine: Engine, content: CheckInContent, incarnation: int | None) -> None:
        new = NewCheckIn(
            content.ok,
            content.summary,
            self._interval,
            self._server_name,
            self._version,
            content.lines,
            self._instance,
        )
        with engine.begin() as conn:
            if incarnation is not None:
                practice_db.check_incarnation(conn, incarnation)
            checkins_table.write_checkin(conn, new)


_PLAIN_SAMPLE = {
    "ok": True,
    "summary": "The email service is operating normally",
    "server_name": "PRACTICE-SRV",
    "service_version": "0.1.0",
    "service_instance": "practice-srv pid 812 start 3f9a1c2e",
    "holder": 3,
}
_RECALL_SAMPLE = {"server_id": "PRACTICE-SRV"}


@statement("checkin.fenced_plain", 15.0 * 60, params=_PLAIN_SAMPLE)
def _plain_insert(interval_seconds: float) -> Insert:
    """The fenced one-statement check-in: copies nothing unless ``:holder`` holds the fence.

    Both times come from the server's clock in the statement itself (no read first); built
    once per writer, with bound values, so the database's compiled-statement cache serves it.
    """
    values = select(
        utcnow(),
        utcnow_plus(interval_seconds),
        bindparam("ok", type_=Boolean()),
        bindparam("summary", type_=UnicodeText()),
        bindparam("server_name", type_=Unicode()),
        bindparam("service_version", type_=String()),
        bindparam("service_instance", type_=Unicode()),
    ).where(fence.c.id == SINGLE_ROW_ID, fence.c.incarnation == bindparam("holder"))
    return insert(checkins).from_select(
        [
            checkins.c.checked_in_at,
            checkins.c.next_checkin_due_at,
            checkins.c.ok,
            checkins.c.summary,
            checkins.c.server_name,
            checkins.c.service_version,
            checkins.c.service_instance,
        ],
        values,
    )


def _mine(params: dict[str, str] | None = None) -> ColumnElement[bool]:
    """This server's check-ins, any start of it: ``server_name`` is its ``server_id``."""
    server_id: Any = bindparam("server_id", type_=Unicode())
    if params is not None:
        server_id = params["server_id"]
    mine: ColumnElement[bool] = checkins.c.server_name == server_id
    return mine


_NEWEST_OK = constant(
    "checkin.newest_ok",
    select(checkins.c.ok, checkins.c.next_checkin_due_at)
    .where(_mine())
    .order_by(checkins.c.checked_in_at.desc(), checkins.c.id.desc())
    .limit(1),
    params=_RECALL_SAMPLE,
)
"""Whether this server's newest check-in here was ok, and when the next was due
(``_recall``'s first question)."""


@statement("checkin.last_ok", _RECALL_SAMPLE)
def _last_ok(params: dict[str, str]) -> Select[Any]:
    """When this server's newest ok check-in here was."""
    t = checkins
    return select(func.max(t.c.checked_in_at)).where(_mine(params), t.c.ok == true())


@statement("checkin.first_failed", _RECALL_SAMPLE, datetime(2026, 1, 5, 8, 30))
def _first_failed(params: dict[str, str], last_ok: datetime | None) -> Select[Any]:
    """When this server's oldest failed check-in here after ``last_ok`` was."""
    t = checkins
    first = select(func.min(t.c.checked_in_at)).where(_mine(params), t.c.ok == false())
    return first if last_ok is None else first.where(t.c.checked_in_at > last_ok)


PRUNE_EVERY_SECONDS = 3600.0
"""How often a writer deletes check-ins past their keeping time."""


def prune_checkins(engine: Engine, keep_days: float) -> int:
    """Delete check-ins older than ``keep_days`` (by the server's clock) and their diagnostic
    lines, in one transaction; return how many check-ins went."""
    with engine.execution_options(compiled_cache=None).begin() as conn:
        conn.execute(_prune_diagnostics(keep_days))
        return int(conn.execute(_prune_checkins(keep_days)).rowcount)


@statement("checkin.prune_diagnostics", 30.0)
def _prune_diagnostics(keep_days: float) -> Delete:
    """The diagnostic lines of check-ins older than ``keep_days``."""
    cutoff = utcnow_plus(-keep_days * 86_400)
    old = select(checkins.c.id).where(checkins.c.checked_in_at < cutoff)
    return delete(diagnostics).where(diagnostics.c.checkin_id.in_(old))


@statement("checkin.prune", 30.0)
def _prune_checkins(keep_days: float) -> Delete:
    """Check-ins older than ``keep_days`` (their lines go first: ``_prune_diagnostics``)."""
    return delete(checkins).where(checkins.c.checked_in_at < utcnow_plus(-keep_days * 86_400))
