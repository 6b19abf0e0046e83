"""A base for actors that do one thing every so often: the mailbox, the watchdog, the reader.

pykka has no timers. A ``PeriodicActor`` tells itself ``Init`` from ``on_start`` (the
fallible set-up runs in that first message, never in ``on_start``, where a failure is
silent), answers ``Ping`` with ``True``, runs ``tick`` on ``Init`` and on every ``Tick``
(``run_now`` on ``RunNow``), and asks its scheduler for the next ``Tick`` after the delay
that returns (None: no more ticks), replacing any tick still pending. The pending timer
is cancelled in ``on_stop`` and in ``on_failure``, which then calls ``failed`` with the
error on one line: the supervisor's children report their crash there
(``ChildCrashed``). Everything runs in the actor's own thread.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import pykka

from actors.errors import one_line_error
from actors.messages import Init, Ping, RunNow, Tick
from actors.scheduler import Scheduler, Timer, tell_later


class PeriodicActor(pykka.ThreadingActor):
    """Init, Ping, and a self-rescheduling Tick; subclasses fill in ``setup`` and ``tick``."""

    def __init__(self, scheduler: Scheduler) -> None:
        super().__init__()
        self._scheduler = scheduler
        self._timer: Timer | None = None

    def setup(self) -> None:
        """Do the fallible set-up (first message). Default: nothing."""

    def tick(self) -> float | None:
        """Do the periodic work; return the seconds until the next tick, or None for none."""
        raise NotImplementedError

    def run_now(self) -> float | None:
        """Do all the periodic work now, due or not. Default: ``tick``."""
        return self.tick()

    def handle(self, message: Any) -> Any:
        """Handle any other message. Default: pykka's (proxy calls, unknown messages)."""
        return super().on_receive(message)

    def on_start(self) -> None:
        self.actor_ref.tell(Init())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Ping):
            return True
        if isinstance(message, Init):
            self.setup()
            self._run_tick()
            return None
        if isinstance(message, Tick):
            self._run_tick()
            return None
        if isinstance(message, RunNow):
            self._run_tick(now=True)
            return None
        return self.handle(message)

    def _run_tick(self, *, now: bool = False) -> None:
        delay = self.run_now() if now else self.tick()
        self.cancel_timer()
        if delay is not None:
            self._timer = tell_later(self._scheduler, delay, self.actor_ref, Tick())

    def cancel_timer(self) -> None:
        """Cancel the pending tick, if any."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def on_stop(self) -> None:
        self.cancel_timer()

    def on_failure(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel_timer()
        self.failed(one_line_error(exc))

    def failed(self, error: str) -> None:
        """Report that this actor died of ``error`` (its thread, after pykka logged it).

        Default: nothing. Must not raise.
        """
