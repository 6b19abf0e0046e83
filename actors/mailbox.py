"""The mailbox actor: one per eligible practice database, one incarnation per start.

It does its fallible set-up in its first message (``Init``), never in ``on_start``
(pykka: a failure there is silent), then runs the self-test every
``checkin_seconds`` and appends the result. Work arrives by ``tell``, so an
unexpected exception kills the actor; ``on_failure`` (in the actor's thread)
fences this incarnation out, appends ``MailboxCrashed`` and tells the supervisor.
Its events go through the ``IncarnationRegistry``: once the supervisor has moved on
to a newer incarnation, this one's writes are refused and it stops itself.
"""

from __future__ import annotations

import logging
import traceback as tb_module
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pykka

from actors.fence import IncarnationRegistry, StaleIncarnationError
from actors.messages import Init, MailboxFailed, Ping, Tick
from actors.scheduler import Scheduler, Timer, tell_later
from actors.selftest import SelfTest
from events.types import MailboxCrashed, SelfTestFailed, SelfTestPassed

log = logging.getLogger(__name__)

TRACEBACK_LIMIT = 4000
"""Characters of traceback kept in ``MailboxCrashed`` (its tail: where it broke)."""


@dataclass(frozen=True)
class MailboxDeps:
    """What a mailbox is given; every part is shared and thread-safe."""

    registry: IncarnationRegistry
    scheduler: Scheduler
    checkin_seconds: float
    supervisor: pykka.ActorRef[Any]
    make_selftest: Callable[[str, int], SelfTest]  # (db, incarnation) -> its self-test


def scrub_traceback(
    exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
) -> str:
    """Return a trimmed traceback without local values (which could hold secrets)."""
    text = "".join(tb_module.format_exception(exc_type, exc, tb))
    return text[-TRACEBACK_LIMIT:]


def describe_error(exc: BaseException | None) -> str:
    """Return ``Type: message`` on one line."""
    if exc is None:
        return "unknown error"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class MailboxActor(pykka.ThreadingActor):
    """Serves one practice database as one incarnation."""

    def __init__(self, db: str, incarnation: int, deps: MailboxDeps) -> None:
        super().__init__()
        self.db = db
        self.incarnation = incarnation
        self._deps = deps
        self._selftest: SelfTest | None = None
        self._timer: Timer | None = None

    def on_start(self) -> None:
        self.actor_ref.tell(Init())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Ping):
            return True
        try:
            if isinstance(message, Init):
                self._selftest = self._deps.make_selftest(self.db, self.incarnation)
                self._run_selftest()
            elif isinstance(message, Tick):
                self._run_selftest()
            else:
                return super().on_receive(message)
        except StaleIncarnationError:
            # Replaced while we were busy or hung: stop quietly, the successor serves.
            log.info("%s incarnation %d was replaced; stopping", self.db, self.incarnation)
            self.stop()
        return None

    def _run_selftest(self) -> None:
        assert self._selftest is not None
        result = self._selftest.run()
        event = (
            SelfTestFailed(self.incarnation, result.diagnostics)
            if result.diagnostics
            else SelfTestPassed(self.incarnation, result.components)
        )
        self._deps.registry.append(self.db, self.incarnation, [event])
        self._timer = tell_later(
            self._deps.scheduler, self._deps.checkin_seconds, self.actor_ref, Tick()
        )

    def on_failure(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        error = describe_error(exc)
        self._cleanup()
        crashed = MailboxCrashed(self.incarnation, error, scrub_traceback(exc_type, exc, tb))
        self._deps.registry.abandon(self.db, self.incarnation, [crashed])
        try:
            self._deps.supervisor.tell(MailboxFailed(self.db, self.incarnation, "crashed", error))
        except pykka.ActorDeadError:
            log.error("the supervisor is gone; %s crashed: %s", self.db, error)

    def on_stop(self) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._selftest is not None:
            try:
                self._selftest.close()
            except Exception:  # closing a broken connection may fail; nothing to do
                log.debug("closing %s's self-test failed", self.db, exc_info=True)
