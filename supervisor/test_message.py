"""A test message through a practice's ordinary outbox, and what became of it.

``queue_test_message`` inserts one email row in ``email_messages`` exactly as the practice
software queues mail (``folder='outbox'``, ``status='queued'``, no Message-ID: the service
fixes it), so the running service sends it the way it sends the practice's own mail: same
settings, same connection, same retries. ``wait_for_outcome`` watches that row until the
service has sent it, failed it, or the wait is over, and ``describe`` puts the result in
words for people. ``mail send-test`` and the Email Setup Wizard's last question use these.

Nothing here talks to a mail server: if the service is not running, the message stays
queued and the outcome says so.
"""

from __future__ import annotations

import shlex
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Insert, Select, insert, select

from actors.practice_db import make_engine
from actors.practice_schema import email_messages, email_service_commands
from actors.statements import constant, statement
from supervisor.human_time import local_sentence, local_text

POLL_SECONDS = 0.5
DB_TIMEOUT_SECONDS = 10.0

State = Literal["sent", "failed", "queued", "gone"]


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """What the row says when the wait ended."""

    row_id: int
    state: State
    to: str
    message_id: str | None = None
    attempts: int = 0
    last_error: str | None = None
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None
    waited: float = 0.0


def queue_test_message(url: str, to: str, practice_name: str, from_address: str) -> int:
    """Queue the test message to ``to`` in the outbox of the database at ``url``; return
    its row id. Raises SQLAlchemy's errors as they are."""
    now = local_text(datetime.now().astimezone())
    host = socket.gethostname()
    body = (
        f"This is a test message from the Practice Email Service for {practice_name}, "
        f"queued on {host} at {now}.\n\n"
        "It went out through the practice's own outbox and mail server, like every "
        "appointment reminder: if you can read it, the practice's email works.\n"
    )
    engine = make_engine(url, timeout=DB_TIMEOUT_SECONDS, pooled=False)
    try:
        with engine.begin() as conn:
            subject = f"Test message from the Practice Email Service ({practice_name})"
            queued = _queue(from_address, to, subject, body)
            key = conn.execute(queued).inserted_primary_key
    finally:
        engine.dispose()
    assert key is not None
    return int(key[0])


_WAITING = constant(
    "test_message.waiting_restart",
    select(email_service_commands.c.id)
    .where(
        email_service_commands.c.handled_at.is_(None),
        email_service_commands.c.command == "restart",
    )
    .limit(1),
)
"""A restart command still waiting (no lock: a poll, outside any transaction)."""


@statement(
    "test_message.queue",
    "reception@practice.example",
    "ann@example.org",
    "Test message from the Practice Email Service (Riverside Dental)",
    "This is a test message.",
)
def _queue(from_address: str, to: str, subject: str, body: str) -> Insert:
    """The test message, into the outbox."""
    return insert(email_messages).values(
        folder="outbox",
        channel="email",
        status="queued",
        from_addr=from_address,
        to_addrs=to,
        subject=subject,
        body_text=body,
    )


@statement("test_message.outcome", 41)
def _outcome(row_id: int) -> Select[Any]:
    """Where the test message is, and what became of it."""
    m = email_messages.c
    return select(
        m.folder,
        m.status,
        m.message_id,
        m.attempts,
        m.last_error,
        m.sent_at,
        m.next_attempt_at,
    ).where(m.id == row_id)


def wait_for_restart(
    url: str,
    wait_seconds: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> bool:
    """Wait until no ``restart`` command of the database at ``url`` is waiting (the service
    took up settings just saved); return whether that happened within ``wait_seconds``.
    A test message queued before would race the old settings."""
    waiting = _WAITING
    started = monotonic()
    engine = make_engine(url, timeout=DB_TIMEOUT_SECONDS, pooled=False)
    try:
        while True:
            with engine.connect() as conn:
                if conn.execute(waiting).first() is None:
                    return True
            if monotonic() - started >= wait_seconds:
                return False
            sleep(POLL_SECONDS)
    finally:
        engine.dispose()


def wait_for_outcome(
    url: str,
    row_id: int,
    to: str,
    wait_seconds: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> TestOutcome:
    """Watch row ``row_id`` until it is ``sent`` or ``failed`` or ``wait_seconds`` have
    passed; return what it says then (``queued`` still waiting, ``gone`` deleted or
    moved by someone)."""
    query = _outcome(row_id)
    started = monotonic()
    engine = make_engine(url, timeout=DB_TIMEOUT_SECONDS, pooled=False)
    try:
        while True:
            with engine.connect() as conn:
                row = conn.execute(query).first()
            waited = monotonic() - started
            if row is None or row.folder not in ("outbox", "sent"):
                return TestOutcome(row_id, "gone", to, waited=waited)
            state: State = "queued"
            if row.status in ("sent", "failed"):
                state = row.status
            if state != "queued" or waited >= wait_seconds:
                return TestOutcome(
                    row_id,
                    state,
                    to,
                    row.message_id,
                    int(row.attempts or 0),
                    row.last_error,
                    row.sent_at,
                    row.next_attempt_at,
                    waited,
                )
            sleep(min(POLL_SECONDS, max(wait_seconds - waited, 0.0)))
    finally:
        engine.dispose()


def describe(outcome: TestOutcome, server: str, db: str) -> list[str]:
    """The outcome in words for people: what the mail server (``server``, ``host:port``)
    answered, and what to do next (commands name the database ``db``)."""
    o = outcome
    if o.state == "sent":
        return [
            f"Sent: the mail server {server} accepted the test message to {o.to} at "
            f"{local_text(o.sent_at)} (message {o.row_id}, Message-ID {o.message_id}).",
            "If it does not arrive, look in the recipient's spam folder, then at the "
            "provider's own log for that Message-ID.",
        ]
    if o.state == "failed":
        return [
            f"Failed: the test message to {o.to} was not sent (message {o.row_id}).",
            f"The service recorded: {local_sentence(o.last_error or 'no reason given')}",
            "Correct the settings with `email-service setup`, then send another test.",
        ]
    if o.state == "gone":
        return [f"The test message (message {o.row_id}) was moved out of the outbox meanwhile."]
    lines = [f"Still queued after {o.waited:.0f} s: the test message (message {o.row_id}) "]
    if o.attempts and o.last_error:
        lines[0] += (
            f"was tried {o.attempts} time(s); the mail server answered: "
            f"{local_sentence(o.last_error)}"
        )
        if o.next_attempt_at is not None:
            lines.append(f"The service tries again at {local_text(o.next_attempt_at)}.")
    else:
        lines[0] += "has not been tried yet."
        lines.append(
            "Is the email service running and serving this database? `email-service status` "
            "shows it."
        )
    lines.append(
        "It stays in the outbox and goes out when the service can send it; "
        f"`email-service mail move {o.row_id} --to deleted --db {shlex.quote(db)}` withdraws it."
    )
    return lines
