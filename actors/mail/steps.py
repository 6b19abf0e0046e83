"""The mailbox's work steps built from one incarnation's ``MailWork`` and ``CheckInWriter``.

Order matters (``actors.mailbox_work``): ``MailCheck`` adds the mail servers to the
self-test, ``CheckInStep`` writes the check-in from its result, then ``OutboxStep`` and
``InboxStep`` do the mail. The inbox waits in IDLE for at most ``IDLE_SLICE_SECONDS``
and never past the outbox's next turn, so check-ins stay on time.
"""

from __future__ import annotations

from actors.checkin_writer import CheckInWriter
from actors.mail.work import SETTINGS_EVERY, MailWork
from actors.selftest import SelfTestResult, faults
from events.projections.health import DbHealth, HealthStatus
from events.types import Diagnostic

IDLE_SLICE_SECONDS = 5.0
"""The longest the inbox waits in IDLE before the mailbox looks at its other steps."""

NEVER = 3600.0
"""``run``'s answer for a step with nothing to do on its own (it acts in the self-test)."""


class MailCheck:
    """The self-test's mail part: SMTP, IMAP and SMS as the practice has them enabled."""

    def __init__(self, mail: MailWork) -> None:
        self._mail = mail

    def check(self) -> tuple[tuple[str, ...], tuple[Diagnostic, ...]]:
        return self._mail.check()

    def run(self) -> float:
        return NEVER

    def close(self) -> None:
        self._mail.close()


class CheckInStep:
    """Writes the check-in of each self-test, fenced by the incarnation."""

    def __init__(self, writer: CheckInWriter, incarnation: int) -> None:
        self._writer = writer
        self._incarnation = incarnation

    def report(self, result: SelfTestResult) -> tuple[Diagnostic, ...]:
        failed = faults(result.diagnostics)
        if any(d.component == "database" for d in failed):
            self._writer.unreachable()
            return ()
        health = (
            DbHealth(HealthStatus.FAILING, last_failure=result.diagnostics)
            if failed
            else DbHealth(HealthStatus.RUNNING)
        )
        warnings = () if failed else result.diagnostics  # a failure's lines hold them
        if self._writer.write(health, incarnation=self._incarnation, warnings=warnings):
            return ()
        message = f"the practice database does not answer: {self._writer.last_error}"
        if self._writer.server_full:  # the server's slots, not this database: say only that
            message = self._writer.last_error
        return (Diagnostic("database", "error", message),)

    def run(self) -> float:
        return NEVER

    def close(self) -> None:
        pass


class OutboxStep:
    """Sends what is due, every ``mail.outbox_poll_seconds`` (at once while batches are full)."""

    def __init__(self, mail: MailWork) -> None:
        self._mail = mail

    def run(self) -> float:
        return self._mail.run_outbox()

    def close(self) -> None:
        pass


class InboxStep:
    """Imports new mail; with IDLE it waits for news in slices between the other steps."""

    def __init__(self, mail: MailWork) -> None:
        self._mail = mail

    def run(self) -> float:
        wait = min(IDLE_SLICE_SECONDS, self._mail.outbox_due_in())
        again = self._mail.run_inbox(wait)
        # Incoming mail off, or its settings not read yet (a new incarnation whose database
        # was locked at its first round): look again with the settings. Sleeping until
        # NEVER here left a restarted mailbox importing nothing for an hour (the soak saw
        # it after a 20 s lock).
        return SETTINGS_EVERY if again is None else again

    def close(self) -> None:
        pass
