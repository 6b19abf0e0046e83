"""The check-in's warning lines for outbox rows refused as written. Pure.

A row the practice software wrote so that it cannot be sent (``raw`` that is no message,
no recipient, a value of the wrong kind: ``actors.mail.outbox_row``) is failed on its own
with the reason in ``last_error``, and the other rows keep flowing. The next check-in
names it in a diagnostic line at level ``warning`` (its id, its subject escaped and cut to
80 characters, the cause), and the light stays steady: a bad row is that row's problem,
not the service's. At most ``MAX_NAMED`` rows are named per check-in; one more line
counts the rest.

The same for the inbox: a message parked (too large for the database, or one that stopped
the importer ``mail.poison_limit`` times: ``MessageParked``) is named in a warning line of
component ``imap`` with its row's id and subject (or its UID when it could not be stored)
and the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from actors.mail.outbox_row import RowProblem, shown_subject
from actors.selftest import WARNING
from events.types import Diagnostic, MessageParked

MAX_NAMED = 10
"""Rows named one by one in one check-in's lines; more are counted in one line."""


def _component(channel: str) -> str:
    return "sms" if channel == "sms" else "smtp"


def refused_lines(refused: Sequence[tuple[RowProblem, str]]) -> tuple[Diagnostic, ...]:
    """One warning line per refused ``(problem, channel)``, in the order they were
    refused, at most ``MAX_NAMED``, then one line counting the others."""
    lines = [
        Diagnostic(
            _component(channel),
            WARNING,
            f"{problem.describe()}; it was not sent (failed with this reason), the other "
            "messages go on",
        )
        for problem, channel in refused[:MAX_NAMED]
    ]
    rest = refused[MAX_NAMED:]
    if rest:
        lines.append(
            Diagnostic(
                _component(rest[0][1]),
                WARNING,
                f"{len(rest)} more outbox row(s) were refused as written and failed; "
                "`email-service mail list --folder outbox --status failed` lists them",
            )
        )
    return tuple(lines)


def parked_lines(parked: Sequence[tuple[MessageParked, str]]) -> tuple[Diagnostic, ...]:
    """One warning line per parked ``(event, subject)`` (the subject of its row, "" when
    there is none), at most ``MAX_NAMED``, then one line counting the others."""
    lines = []
    for event, subject in parked[:MAX_NAMED]:
        where = (
            f"inbox message UID {event.uid}"
            if event.row_id is None
            else f"inbox row {event.row_id} ({shown_subject(subject)})"
        )
        lines.append(Diagnostic("imap", WARNING, f"{where}: {event.reason}"))
    rest = parked[MAX_NAMED:]
    if rest:
        lines.append(
            Diagnostic(
                "imap",
                WARNING,
                f"{len(rest)} more inbox message(s) were parked; they are left on the IMAP "
                "server and their rows' last_error says why",
            )
        )
    return tuple(lines)
