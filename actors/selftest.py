"""The self-test a mailbox runs every check-in interval, as an interface.

The mailbox does not know what it tests: it is given a ``SelfTest`` and turns its
answer into ``SelfTestPassed`` or ``SelfTestFailed``. A check that finds a fault
(a database that does not answer, a mail server that refuses a login) returns
diagnostics; only a bug raises, and a raise crashes the mailbox (let it crash).

A diagnostic at level ``warning`` is not a fault: it is said in the check-in's lines while
the self-test passes and the light stays steady (an outbox row refused as written is that
row's problem, ``actors.mail.refused_rows``). Every other level fails the self-test.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from events.types import Diagnostic

WARNING = "warning"
"""The level of a diagnostic that is said without failing the self-test."""


def faults(diagnostics: tuple[Diagnostic, ...]) -> tuple[Diagnostic, ...]:
    """The diagnostics that fail a self-test: all but its warnings."""
    return tuple(d for d in diagnostics if d.level != WARNING)


class SelfTestResult(NamedTuple):
    """What was checked, and what was wrong (nothing: it passed)."""

    components: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...]


class SelfTest(Protocol):
    """One database's self-test; runs in the mailbox's thread."""

    def run(self) -> SelfTestResult:
        """Check each enabled component; return what was checked and what failed."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
