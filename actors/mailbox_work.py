"""What a mailbox runs every tick: a list of work steps sharing the database's engine.

The mailbox knows none of its steps' business. It builds them once per incarnation,
in its first message, from a ``WorkContext`` (the database, the incarnation, the
shared engine, the clock and the fenced append). Each step runs at its own pace: its
``run`` returns the seconds until its next round, and the mailbox ticks when the
soonest step is due and runs, in order, every step that is. All run in the mailbox's
thread. The first step is always the self-test (``SelfTestWork``, every check-in
interval); the mail steps (outbox, inbox, SMS) follow it.

A step's faults that it can name (a server that refuses, a database that does not
answer) are events it appends; only a bug raises, and a raise crashes the mailbox (let
it crash). A step never disposes of the engine: the supervisor's ``EngineRegistry``
owns it and keeps it across restarts of the mailbox.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sqlalchemy import Engine

from actors import progress
from actors.selftest import SelfTest, SelfTestResult, faults
from events.clock import Clock
from events.types import Diagnostic, Event, SelfTestFailed, SelfTestPassed


@dataclass(frozen=True)
class WorkContext:
    """What every step of one incarnation is given."""

    db: str
    incarnation: int
    engine: Callable[[], Engine]
    """The database's shared engine, made on first use (in the caller's thread)."""
    append: Callable[[Sequence[Event]], None]
    """Append events to the database's stream through the incarnation fence.

    Returns at once (the store's writer commits in order); raises
    ``actors.fence.StaleIncarnationError`` when this incarnation was abandoned. The
    mailbox checks each append's outcome at its next tick (a failed append crashes it).
    """
    clock: Clock
    flush: Callable[[], None] = lambda: None
    """Wait until every event this incarnation appended is committed (raises the error
    of one that failed). For the few places where an action must not run before its
    event is durable: the outbox resends an uncertain message only after the log holds
    ``MessageDeliveryUncertain`` for it, so a kill can never leave an unrecorded
    duplicate."""
    must_yield: Callable[[], bool] = lambda: False
    """Whether the self-test (and so the check-in) is due: a long round of work (a batch
    of slow messages) stops at its next safe point and asks to run again at once, so the
    check-in never waits behind it."""
    record: Callable[[Sequence[Event]], None] = lambda _events: None
    """Append events for the record even after this incarnation was replaced: only for
    facts its committed transactions made true (``IncarnationRegistry.record``)."""


class Work(Protocol):
    """One periodic step of a mailbox; runs in the mailbox's thread."""

    def run(self) -> float:
        """Do one round of this step's work, append what happened; return the seconds
        until its next round (a step may shorten it while it has a backlog)."""
        ...

    def close(self) -> None:
        """Release what the step holds (its own connections; never the shared engine)."""
        ...


@runtime_checkable
class SelfTestPart(Protocol):
    """A step that adds components to the self-test (the mail servers)."""

    def check(self) -> tuple[tuple[str, ...], tuple[Diagnostic, ...]]:
        """Check this step's components; return what was checked and what is wrong."""
        ...


@runtime_checkable
class SelfTestReport(Protocol):
    """A step told each self-test's result (the check-in writer)."""

    def report(self, result: SelfTestResult) -> tuple[Diagnostic, ...]:
        """Act on the result (write the check-in); return what went wrong doing so (the
        database did not take the write); raise only for a fenced write."""
        ...


MakeWork = Callable[[WorkContext], Sequence[Work]]
"""Builds an incarnation's steps after its self-test (the mail steps)."""


def no_work(_context: WorkContext) -> Sequence[Work]:
    """The default ``MakeWork``: a mailbox that only runs its self-test."""
    return ()


class SelfTestWork:
    """Runs the self-test and appends ``SelfTestPassed`` (with its warnings, if any) or
    ``SelfTestFailed`` (any other diagnostic; its lines hold the warnings too).

    ``SelfTestPassed`` is appended on every check-in even when nothing changed: the
    check-ins are a projection of these events (DESIGN decision 4).
    """

    def __init__(
        self,
        selftest: SelfTest,
        context: WorkContext,
        every: float,
        steps: Sequence[Work] = (),
    ) -> None:
        self._selftest = selftest
        self._context = context
        self._every = every
        self._parts = [s for s in steps if isinstance(s, SelfTestPart)]
        self._reports = [s for s in steps if isinstance(s, SelfTestReport)]

    def run(self) -> float:
        result = self._selftest.run()
        progress.beat()  # the database part is done; the mail part's waits follow
        if not result.diagnostics:  # the database answers: check the rest
            components, diagnostics = list(result.components), list(result.diagnostics)
            for part in self._parts:
                checked, found = part.check()
                components.extend(checked)
                diagnostics.extend(found)
            result = SelfTestResult(tuple(components), tuple(diagnostics))
        for report in self._reports:
            found = report.report(result)
            if found:
                result = SelfTestResult(result.components, (*result.diagnostics, *found))
        incarnation = self._context.incarnation
        event: Event = (
            SelfTestFailed(incarnation, result.diagnostics)
            if faults(result.diagnostics)
            else SelfTestPassed(incarnation, result.components, result.diagnostics)
        )
        self._context.append([event])
        return self._every

    def close(self) -> None:
        self._selftest.close()
