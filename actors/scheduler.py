"""Timers for actors (pykka has none): run a callable after a delay.

Actors never sleep; they ask a scheduler to tell them a message later. The service
uses ``ThreadScheduler`` (one thread, real monotonic time); tests use
``FakeScheduler``, which fires what is due when the test moves its fake clock.
Callbacks run on the scheduler's thread (or the test's), so they must be quick:
in practice they are ``actor_ref.tell(message)``, made safe by ``tell_later``.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import pykka

from actors.errors import one_line_error
from events.clock import FakeClock

log = logging.getLogger(__name__)


class Timer:
    """A scheduled call; ``cancel()`` stops it from running if it has not yet."""

    __slots__ = ("cancelled", "due", "fn")

    def __init__(self, due: float, fn: Callable[[], None]) -> None:
        self.due = due
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler(Protocol):
    """What actors ask of time."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        """Run ``fn`` once, ``delay`` seconds from now (0: as soon as possible)."""
        ...

    def close(self) -> None:
        """Drop every pending call and stop."""
        ...


def tell_later(scheduler: Scheduler, delay: float, ref: pykka.ActorRef[Any], message: Any) -> Timer:
    """Tell ``ref`` the ``message`` after ``delay`` s; a dead actor is not an error."""

    def deliver() -> None:
        # A dead actor is fine: it stopped or crashed, and its successor has its own timers.
        with contextlib.suppress(pykka.ActorDeadError):
            ref.tell(message)

    return scheduler.call_later(delay, deliver)


class _Heap:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()

    def push(self, timer: Timer) -> None:
        heapq.heappush(self._heap, (timer.due, next(self._order), timer))

    def pop_due(self, now: float) -> Timer | None:
        while self._heap and self._heap[0][0] <= now:
            timer = heapq.heappop(self._heap)[2]
            if not timer.cancelled:
                return timer
        return None

    def next_due(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def clear(self) -> None:
        self._heap.clear()


def _run(timer: Timer) -> None:
    try:
        timer.fn()
    except Exception:  # a timer must never take the scheduler down with it
        log.exception("a scheduled call failed")


COALESCE_SECONDS = 0.05
"""Timer slack: calls due a second or more from now are rounded up to this grid."""


def coalesced_due(now: float, delay: float, grid: float) -> float:
    """Return when a call ``delay`` seconds after ``now`` runs, on a ``grid`` of seconds.

    Calls due in less than a second (a restart, a retry) run on time; later ones (the
    mailboxes' check-ins, the readers' polls) are rounded up to the next multiple of
    ``grid``, so calls of many actors fall due together: the scheduler wakes once for
    them and their events share a commit. ``grid`` 0 turns this off. Pure.
    """
    due = now + max(0.0, delay)
    if grid <= 0 or delay < 1.0:
        return due
    return math.ceil(due / grid) * grid


class ThreadScheduler:
    """One daemon thread that runs calls when they are due (``time.monotonic``).

    Calls a second or more away are coalesced onto a ``coalesce_seconds`` grid (see
    ``coalesced_due``). If the thread dies (a ``BaseException`` out of a call, or a bug),
    ``on_died`` is called with the error from the dying thread, and ``restart`` starts a
    new thread on the same queue: no call is lost. ``answers`` checks that calls run.
    """

    def __init__(
        self,
        coalesce_seconds: float = COALESCE_SECONDS,
        on_died: Callable[[str], None] = lambda _error: None,
    ) -> None:
        self._grid = coalesce_seconds
        self._heap = _Heap()
        self._cond = threading.Condition()
        self._closed = False
        self.on_died = on_died
        self._thread = self._start_thread()

    def _start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self._main, name="scheduler", daemon=True)
        thread.start()
        return thread

    def _main(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the thread ends here: say so, once
            log.critical("the scheduler's thread died: %r", exc)
            self.on_died(one_line_error(exc))

    def restart(self) -> None:
        """Start a new thread if the old one died (the queue is kept); else nothing."""
        with self._cond:
            if self._closed or self._thread.is_alive():
                return
            self._thread = self._start_thread()

    def answers(self, timeout: float) -> bool:
        """Return whether the thread runs a call within ``timeout`` seconds."""
        ran = threading.Event()
        self.call_later(0.0, ran.set)
        return ran.wait(timeout)

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        timer = Timer(coalesced_due(time.monotonic(), delay, self._grid), fn)
        with self._cond:
            if not self._closed:
                earliest = self._heap.next_due()
                self._heap.push(timer)
                if earliest is None or timer.due < earliest:
                    self._cond.notify()  # otherwise the thread already wakes in time
        return timer

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                timer = self._heap.pop_due(time.monotonic())
                if timer is None:
                    due = self._heap.next_due()
                    self._cond.wait(None if due is None else max(0.0, due - time.monotonic()))
                    continue
            _run(timer)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
        self._thread.join(timeout=5)


class FakeScheduler:
    """Fires due calls when ``advance`` moves the fake clock; for tests."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._heap = _Heap()
        self._lock = threading.Lock()

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        timer = Timer(self.clock.monotonic() + max(0.0, delay), fn)
        with self._lock:
            self._heap.push(timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Move the clock forward, running every call that falls due, in order."""
        end = self.clock.monotonic() + seconds
        while True:
            with self._lock:
                due = self._heap.next_due()
                if due is None or due > end:
                    break
                timer = self._heap.pop_due(due)
            if due > self.clock.monotonic():
                self.clock.advance(due - self.clock.monotonic())
            if timer is not None:
                _run(timer)
        if end > self.clock.monotonic():
            self.clock.advance(end - self.clock.monotonic())

    def pending(self) -> int:
        """Return how many calls wait to run."""
        with self._lock:
            return sum(1 for _, _, t in self._heap._heap if not t.cancelled)

    def close(self) -> None:
        with self._lock:
            self._heap.clear()
