"""The mailbox actor: one per eligible practice database, one incarnation per start.

It builds its work steps in its first message (``Init``; see ``PeriodicActor``): the
self-test first (every ``checkin_seconds``), then whatever ``make_work`` adds (the
mail steps), all sharing the database's engine (``actors.mailbox_work``). Each tick
runs the steps that are due, in order, and asks for the next tick when the soonest
step is due again. Its events go
through the ``IncarnationRegistry`` without waiting for the commit: the store's writer
commits them in order, and the next tick checks that they were committed (a failed
append crashes the mailbox). Once the supervisor has moved on to a newer incarnation,
this one's writes are refused (``StaleIncarnationError``) and it stops itself.

Progress: the mailbox beats (``actors.progress``) at every tick and after every step,
and what its steps run beats at every server reply and message; the watchdog reads the
beats to tell a busy mailbox from a hung one. A step that runs long (a batch to a slow
server) stops when the self-test falls due (``WorkContext.must_yield``), so the
check-in is never late behind it.

The actor runs on a daemon thread: a mailbox waiting on a server (at most its timeout)
or hung cannot keep the process from exiting once ``serve`` has stopped the tree. What
it was doing is in the practice database's committed transactions, which is all a
kill leaves too, and the design survives a kill (DESIGN decision 7).

Work arrives by ``tell``, so an unexpected exception kills the actor; ``on_failure``
(in the actor's thread) fences this incarnation out, tells the supervisor at once with
the ``MailboxCrashed`` event for it to append ahead of its decision (or appends it
itself when the supervisor is gone), and only then closes its steps, so the
replacement is not kept waiting on them.
"""

from __future__ import annotations

import logging
import traceback as tb_module
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pykka
from sqlalchemy import Engine

from actors import progress
from actors.fence import IncarnationRegistry, StaleIncarnationError
from actors.mailbox_work import MakeWork, SelfTestWork, Work, WorkContext, no_work
from actors.messages import MailboxFailed
from actors.periodic import PeriodicActor
from actors.scheduler import Scheduler
from actors.selftest import SelfTest
from events.clock import Clock, SystemClock
from events.store import PendingAppend
from events.types import Event, MailboxCrashed

log = logging.getLogger(__name__)

COALESCE_SECONDS = 0.5
"""A tick also runs the steps due within this much of it, rather than wake again for them.

Each step keeps its own period from the tick that ran it, so timers that fire a little
late drift the steps apart: with the self-test every 15 s and the outbox's idle look every
30 s, a mailbox woke 1.6 times per check-in instead of once. Running a step up to half a
second early harms nothing (a check-in earlier than due, an outbox poll a little sooner),
and every wake of a thousand mailbox threads costs the process CPU."""

FLUSH_TIMEOUT_SECONDS = 10.0
"""How long ``flush`` waits for the log; longer means the log is stuck (a crash). Never
more than half the hang limit (``checkin_seconds``), like every other wait."""

TRACEBACK_LIMIT = 4000
"""Characters of traceback kept in ``MailboxCrashed`` (its tail: where it broke)."""


def no_engine(db: str) -> Engine:
    """The default engine source: none (a tree without an ``EngineRegistry``, in tests)."""
    raise LookupError(f"no engine is registered for {db!r}")


@dataclass(frozen=True)
class MailboxDeps:
    """What a mailbox is given; every part is shared and thread-safe."""

    registry: IncarnationRegistry
    scheduler: Scheduler
    checkin_seconds: float
    supervisor: pykka.ActorRef[Any]
    make_selftest: Callable[[str, int], SelfTest]  # (db, incarnation) -> its self-test
    engine: Callable[[str], Engine] = no_engine  # db -> its shared engine
    make_work: MakeWork = no_work  # the steps after the self-test
    clock: Clock = field(default_factory=SystemClock)


def scrub_traceback(
    exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
) -> str:
    """Return a trimmed traceback: where each frame was, and the error; no values, no source.

    Without local values (which could hold secrets) and without source lines: looking
    those up (and the position markers under them) costs a third of a millisecond, on
    the path between a crash and its replacement. Chained errors follow, as Python
    prints them. The tail of ``TRACEBACK_LIMIT`` characters is kept (where it broke).
    """
    parts: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen and len(seen) < 5:
        seen.add(id(exc))
        frames = [
            f'  File "{frame.f_code.co_filename}", line {lineno}, in {frame.f_code.co_name}\n'
            for frame, lineno in tb_module.walk_tb(tb)
        ]
        block = ["Traceback (most recent call last):\n", *frames] if frames else []
        block.extend(tb_module.format_exception_only(type(exc), exc))
        parts[:0] = block
        cause = exc.__cause__
        context = None if exc.__suppress_context__ else exc.__context__
        link = cause if cause is not None else context
        if link is not None:
            parts[:0] = [
                "\nThe above exception was the direct cause of the following exception:\n\n"
                if cause is not None
                else "\nDuring handling of the above exception, another exception occurred:\n\n"
            ]
        exc, tb = link, link.__traceback__ if link is not None else None
    if not parts and exc_type is not None:
        parts = tb_module.format_exception_only(exc_type, None)
    return "".join(parts)[-TRACEBACK_LIMIT:]


def describe_error(exc: BaseException | None) -> str:
    """Return ``Type: message`` on one line."""
    if exc is None:
        return "unknown error"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class MailboxActor(PeriodicActor):
    """Serves one practice database as one incarnation."""

    use_daemon_thread = True  # see the module docstring

    def __init__(self, db: str, incarnation: int, deps: MailboxDeps) -> None:
        super().__init__(deps.scheduler)
        self.db = db
        self.incarnation = incarnation
        self._deps = deps
        self._work: list[Work] = []
        self._due: list[float] = []  # monotonic time each step is due
        self._appended: list[PendingAppend] = []  # not yet seen committed

    def setup(self) -> None:
        d = self._deps
        progress.install(self._beat)
        context = WorkContext(
            self.db,
            self.incarnation,
            self._engine,
            self._append,
            d.clock,
            self._flush,
            must_yield=self._selftest_due,
            record=self._record,
        )
        selftest = d.make_selftest(self.db, self.incarnation)
        steps = list(d.make_work(context))
        self._work = [SelfTestWork(selftest, context, d.checkin_seconds, steps), *steps]
        self._due = [d.clock.monotonic()] * len(self._work)  # every step runs at once

    def tick(self) -> float | None:
        clock = self._deps.clock
        now = clock.monotonic()
        try:
            self._beat()
            self._confirm_appends()
            for i, step in enumerate(self._work):
                if self._due[i] <= now + COALESCE_SECONDS:
                    self._due[i] = now + step.run()
                    self._beat()
        except StaleIncarnationError:
            # Replaced while we were busy or hung: stop quietly, the successor serves.
            log.info("%s incarnation %d was replaced; stopping", self.db, self.incarnation)
            self.stop()
            return None
        return max(0.0, min(self._due) - clock.monotonic())

    def run_now(self) -> float | None:
        self._due = [self._deps.clock.monotonic()] * len(self._work)
        return self.tick()

    def _engine(self) -> Engine:
        return self._deps.engine(self.db)

    def _beat(self) -> None:
        self._deps.registry.beat(self.db, self.incarnation)

    def _selftest_due(self) -> bool:
        return bool(self._due) and self._deps.clock.monotonic() >= self._due[0]

    def _record(self, events: Sequence[Event]) -> None:
        self._appended.append(self._deps.registry.record(self.db, events))

    def _append(self, events: Sequence[Event]) -> None:
        self._appended.append(self._deps.registry.append(self.db, self.incarnation, events))

    def _flush(self) -> None:
        """Wait for this incarnation's appends to be committed (see ``WorkContext.flush``)."""
        timeout = min(FLUSH_TIMEOUT_SECONDS, self._deps.checkin_seconds)
        for pending in self._appended:
            pending.result(timeout=timeout)  # raises its error: let it crash
        self._appended = []

    def _confirm_appends(self) -> None:
        """Raise the error of an earlier append that failed; forget those committed."""
        waiting = []
        for pending in self._appended:
            if pending.done():
                pending.result()  # raises the append's error: let it crash
            else:
                waiting.append(pending)
        self._appended = waiting

    def on_failure(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel_timer()
        error = describe_error(exc)
        crashed = MailboxCrashed(self.incarnation, error, scrub_traceback(exc_type, exc, tb))
        registry = self._deps.registry
        registry.abandon(self.db, self.incarnation)  # fenced out before anyone hears of it
        failed = MailboxFailed(self.db, self.incarnation, "crashed", error, (crashed,))
        try:
            # The supervisor appends the crash, then its decision: in that order in the
            # log, and the log's writer is not woken twice on the way to the replacement.
            self._deps.supervisor.tell(failed)
        except pykka.ActorDeadError:
            log.error("the supervisor is gone; %s crashed: %s", self.db, error)
            registry.abandon(self.db, self.incarnation, [crashed])
        self._close_work()
        progress.install(None)

    def on_stop(self) -> None:
        super().on_stop()
        self._close_work()
        progress.install(None)

    def _close_work(self) -> None:
        for step in self._work:
            try:
                step.close()
            except Exception:  # closing a broken connection may fail; nothing to do
                log.debug("closing a step of %s failed", self.db, exc_info=True)
        self._work = []
