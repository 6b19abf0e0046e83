"""The outbox: queued ``email_messages`` rows claimed, sent and recorded (DESIGN decision 7).

``Outbox`` runs in its mailbox actor's thread and blocks on the practice database and the
senders. Every write transaction calls ``check_incarnation`` first and lets its
``StaleIncarnationError`` propagate (the mailbox is then abandoned), so an older
incarnation can neither claim a row nor put one more message on the wire: the fence is
checked in the very commit that records each message's ``wire_at``. The one exception:
the answers the server already gave to messages it had on the wire are stored even
after the replacement (``_settle_after_replacement``), guarded by the row's claim.

A row's life: ``queued`` -> claimed by its own compare-and-swap (``queued`` -> ``sending``,
exactly one row changed, ``claimed_incarnation`` = ours, ``wire_at`` cleared; a batch's
claims share one transaction) -> its Message-ID fixed, in that transaction, if it has none
-> given to the sender of its channel, whose ``on_wire`` commits ``wire_at``
before the point of no return -> ``sent`` (``folder='sent'``, ``sent_at``), back to
``queued`` with ``attempts + 1`` and a backed-off ``next_attempt_at`` (``retry``; also
``uncertain`` when the sender resends those), or ``failed`` in the outbox folder with
``last_error``. Refused recipients of a partly accepted message go to
``refused_recipients``. Rows of a channel without a sender stay queued.

One commit per message: a row's outcome is stored, after its reply, in the same fenced
transaction that commits the next row's ``wire_at`` (or, for the batch's last row or
when no ``on_wire`` follows, in one transaction at the end of the batch). So a crash
between a reply and that commit leaves the answered row in ``sending`` with its
``wire_at``: uncertain, resent with the same Message-ID; at most one row per crash is
uncertain, as before. Where the database returns the rows an UPDATE changed (SQLite,
PostgreSQL, SQL Server), a batch is claimed by one UPDATE whose WHERE holds each row's
``status = 'queued'``, returning exactly the rows it swapped; elsewhere row by row. A
batch uses one database connection, and its events are emitted once, at its end.

Stored times (``wire_at``, ``sent_at``, ``next_attempt_at``) come from the database
server's clock (``practice_schema.utcnow()``; ``next_attempt_at`` is the server's now plus
the delay), so they compare with the practice software's times and "due" is judged by the
same clock. The injected ``clock`` gives practice-local time for the send window and
monotonic time for the throttle.

``recover()`` runs once at start: rows left in ``sending`` by an older incarnation either
never reached the server (``wire_at`` NULL: back to ``queued``, no duplicate) or may have
(``wire_at`` set: ``MessageDeliveryUncertain``, then resent with the same Message-ID when
the channel's sender ``resend_uncertain``, else ``failed`` with a ``last_error`` saying it
may have been delivered).

Events are emitted after the transaction that made them true has committed (the
sending events of a batch together, when the batch ends or fails).

A batch is bounded by time as well as by count: after each message it asks
``must_yield`` (the mailbox's self-test is due) and, if so, stores what was answered,
puts the rows it claimed and did not send back in the queue (``queued``, untouched
otherwise: no attempt counted) and returns with ``yielded`` set, so the caller runs
again at once after the check-in. Fifty messages to a server that takes a second each
never hold a check-in up. Each message beats (``actors.progress``) once answered.
"""

from __future__ import annotations

import contextlib
import logging
import random as random_module
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from email.errors import MessageError
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    Select,
    Update,
    bindparam,
    func,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import NullType

from actors import progress
from actors.fence import StaleIncarnationError
from actors.mail import backoff, compose
from actors.mail.outbox_row import (
    OutboxItem,
    RowProblem,
    read_attempts,
    read_outbox_row,
    recipients_text,
)
from actors.mail.recipients import settle
from actors.mail.send_window import SendWindowError, is_open, next_open, parse_window
from actors.mail.sender import OutgoingMessage, RecipientResult, Sender, SendOutcome
from actors.mail.settings import EmailSettings
from actors.mail.throttle import SendLog, allowance, next_allowed
from actors.practice_db import check_incarnation
from actors.practice_schema import email_messages, utcnow
from actors.statements import SERVER, constant, statement
from config.settings import MailSettings
from events.clock import Clock
from events.types import Event, MessageDeliveryUncertain, MessageSendFailed, MessageSent

UNCERTAIN_RESENT = (
    "delivery uncertain: the connection was lost after the message was sent and before "
    "the server's reply; sent again with the same Message-ID"
)
UNCERTAIN_HELD = (
    "delivery uncertain: the message may have been delivered (the connection was lost "
    "after it was sent); not sent again automatically, check before retrying"
)
_MESSAGE_ID_MAX = 255  # email_messages.message_id is String(255)
SERVER_FAULT = "server"
"""``retry_cause`` of a row whose last attempt failed because the server could not be used
(``SendOutcome.server == "fault"``): the service's problem, not the message's."""
MESSAGE_FAULT = "message"
"""``retry_cause`` of a row the server put off for its own sake (a 4xx for it)."""
_ROW_ERRORS = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError, MessageError)
_ERROR_MAX = 2000  # last_error is long text; a line this long is read by no one

log = logging.getLogger(__name__)

RetryDelay = Callable[[int, float], float]


class _WireCall:
    """``on_wire`` for one message, remembering whether it was called and whether it
    raised (an exception from it is the fence's or the database's, never the row's)."""

    def __init__(self, on_wire: Callable[[], None]) -> None:
        self._on_wire = on_wire
        self.called = False
        self.raised = False

    def __call__(self) -> None:
        self.called = True
        try:
            self._on_wire()
        except BaseException:
            self.raised = True
            raise


class RowTakenError(Exception):
    """Raised when a claimed row stopped being ours while sending (someone else moved it);
    the outbox then skips the row and sends nothing more of it."""


@dataclass(frozen=True, slots=True)
class _Claimed:
    message: OutgoingMessage
    channel: str
    earlier: tuple[RecipientResult, ...] = ()  # the row's recipient_status


@dataclass(frozen=True, slots=True)
class _Replied:
    """A row whose sender has answered and whose outcome is not stored yet."""

    message: OutgoingMessage
    sender: Sender
    outcome: SendOutcome
    earlier: tuple[RecipientResult, ...] = ()


_m = email_messages
# Every column as the driver returns it, without SQLAlchemy's result processing: a row the
# practice software wrote with a value of another type (text in raw, a date in a format
# SQLite keeps as text) is read by ``read_outbox_row`` and refused on its own, instead of
# failing the whole batch's claim.
_AS_STORED = tuple(type_coerce(column, NullType()).label(column.name) for column in _m.c)
_OURS = (
    _m.c.id == bindparam("b_id"),
    _m.c.status == "sending",
    _m.c.claimed_incarnation == bindparam("b_incarnation"),
)
# Built once: the hot path runs these with bound values only (SQLAlchemy caches the SQL).
_OURS_SAMPLE = {"b_id": 41, "b_incarnation": 7}
_OUTCOME_SAMPLE = {
    **_OURS_SAMPLE,
    "b_attempts": 1,
    "b_error": None,
    "b_refused": None,
    "b_recipients": "ann@example.org sent",
}
_WIRE = constant(
    "outbox.wire", update(_m).where(*_OURS).values(wire_at=utcnow()), params=_OURS_SAMPLE
)
_SENT = constant(
    "outbox.sent",
    update(_m)
    .where(*_OURS)
    .values(
        folder="sent",
        status="sent",
        sent_at=utcnow(),
        attempts=bindparam("b_attempts"),
        next_attempt_at=None,
        last_error=bindparam("b_error"),
        event_pending=True,  # until its event is durable (outcome_events)
        refused_recipients=bindparam("b_refused"),
        recipient_status=bindparam("b_recipients"),
        retry_cause=None,
    ),
    params=_OUTCOME_SAMPLE,
)
_RETRY = constant(
    "outbox.retry",
    update(_m)
    .where(*_OURS)
    .values(
        status="queued",
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        wire_at=None,
        last_error=bindparam("b_error"),
        event_pending=True,  # until its event is durable (outcome_events)
        refused_recipients=bindparam("b_refused"),
        recipient_status=bindparam("b_recipients"),
        retry_cause=bindparam("b_cause"),
    ),
    params={**_OUTCOME_SAMPLE, "b_next": datetime(2026, 1, 5, 8, 30), "b_cause": SERVER_FAULT},
)
_FAILED = constant(
    "outbox.failed",
    update(_m)
    .where(*_OURS)
    .values(
        status="failed",
        attempts=bindparam("b_attempts"),
        next_attempt_at=None,
        last_error=bindparam("b_error"),
        event_pending=True,  # until its event is durable (outcome_events)
        refused_recipients=bindparam("b_refused"),
        recipient_status=bindparam("b_recipients"),
        retry_cause=None,
    ),
    params=_OUTCOME_SAMPLE,
)
_RELEASE = constant(
    "outbox.release",
    update(_m).where(*_OURS, _m.c.wire_at.is_(None)).values(status="queued"),
    params=_OURS_SAMPLE,
)
_SET_MESSAGE_ID = constant(
    "outbox.set_message_id",
    update(_m)
    .where(_m.c.id == bindparam("b_id"), _m.c.message_id.is_(None))
    .values(message_id=bindparam("b_message_id")),
    params=[{"b_id": 41, "b_message_id": "<a1@practice.example>"}],
)
_NOW = constant("outbox.server_now", select(utcnow()), target=SERVER)
_RETRY_NOW = constant(
    "outbox.retry_now",
    update(_m)
    .where(
        _m.c.folder == "outbox",
        _m.c.status == "queued",
        _m.c.retry_cause == SERVER_FAULT,
        _m.c.next_attempt_at > utcnow(),
    )
    .values(next_attempt_at=None),
)


@statement("outbox.stuck", 7)
def _stuck(incarnation: int) -> Select[Any]:
    """Rows left in ``sending`` by this incarnation or an older one (``recover``)."""
    m = email_messages
    return select(
        m.c.id,
        m.c.channel,
        m.c.message_id,
        m.c.wire_at,
        type_coerce(m.c.attempts, NullType()).label("attempts"),
    ).where(
        m.c.folder == "outbox",
        m.c.status == "sending",
        or_(m.c.claimed_incarnation.is_(None), m.c.claimed_incarnation <= incarnation),
    )


@statement("outbox.unstick", 41, {"status": "queued", "attempts": 2, "last_error": "x"})
def _unstick(row_id: int, values: dict[str, Any]) -> Update:
    """Settle one row ``recover`` found in ``sending``."""
    m = email_messages
    return update(m).where(m.c.id == row_id, m.c.status == "sending").values(**values)


@statement("outbox.due", ["email", "sms"], 20)
def _due(channels: list[str], count: int) -> Select[Any]:
    """Up to ``count`` due rows of these channels, oldest first (the server's clock)."""
    m = email_messages
    return (
        select(m.c.id)
        .where(
            m.c.folder == "outbox",
            m.c.status == "queued",
            m.c.channel.in_(channels),
            or_(m.c.next_attempt_at.is_(None), m.c.next_attempt_at <= utcnow()),
        )
        .order_by(m.c.id)
        .limit(count)
    )


@statement(
    "outbox.claim_returning", 7, [41, 42], backends=frozenset({"sqlite", "postgresql", "mssql"})
)
def _claim_returning(incarnation: int, row_ids: list[int]) -> Update:
    """Claim these rows (``queued`` -> ``sending``), returning each row claimed as stored."""
    m = email_messages
    return (
        update(m)
        .where(m.c.folder == "outbox", m.c.status == "queued", m.c.id.in_(row_ids))
        .values(status="sending", claimed_incarnation=incarnation, wire_at=None)
        .returning(*_AS_STORED)
    )


@statement("outbox.claim_one", 7, 41)
def _claim_one(incarnation: int, row_id: int) -> Update:
    """Claim one row (where the database cannot return the rows an UPDATE changed)."""
    m = email_messages
    return (
        update(m)
        .where(m.c.folder == "outbox", m.c.status == "queued", m.c.id == row_id)
        .values(status="sending", claimed_incarnation=incarnation, wire_at=None)
    )


@statement("outbox.claimed_rows", [41, 42])
def _claimed_rows(row_ids: list[int]) -> Any:
    """The rows just claimed, as stored."""
    return select(*_AS_STORED).where(email_messages.c.id.in_(row_ids))


@statement("outbox.message_id_taken", "<a1@practice.example>", 41)
def _message_id_taken(message_id: str, row_id: int) -> Select[Any]:
    """How many other rows carry ``message_id``."""
    m = email_messages
    return select(func.count()).where(m.c.message_id == message_id, m.c.id != row_id)


@statement("outbox.give_message_id", 41, "<a1@practice.example>")
def _give_message_id(row_id: int, message_id: str) -> Update:
    """Give a row without one its Message-ID."""
    m = email_messages
    return update(m).where(m.c.id == row_id, m.c.message_id.is_(None)).values(message_id=message_id)


class Outbox:
    """Sends one practice database's due outbox rows; see the module docstring.

    ``senders`` maps a channel (``"email"``, ``"sms"``) to its ``Sender``; ``emit`` appends
    events (called from this thread); ``local_zone`` is the server's local time zone (the
    practice's time for the send window); ``random`` draws Message-IDs and jitter;
    ``retry_delay(attempts, jitter)`` is the backoff in seconds; ``must_yield`` says when a
    batch should stop early (see the module docstring).
    """

    def __init__(
        self,
        engine: Engine,
        incarnation: int,
        settings: EmailSettings,
        mail: MailSettings,
        senders: Mapping[str, Sender],
        emit: Callable[[Sequence[Event]], None],
        clock: Clock,
        local_zone: tzinfo,
        *,
        random: random_module.Random | None = None,
        retry_delay: RetryDelay = backoff.retry_delay,
        durable: Callable[[], None] = lambda: None,
        must_yield: Callable[[], bool] = lambda: False,
    ) -> None:
        self._engine = engine
        self._incarnation = incarnation
        self._settings = settings
        self._mail = mail
        self._senders = dict(senders)
        self._emit = emit
        self._clock = clock
        self._local_zone = local_zone
        self._random = random or random_module.Random()
        self._retry_delay = retry_delay
        self._durable = durable  # waits until what ``emit`` appended is committed
        self._must_yield = must_yield
        self.yielded = False
        """Whether the last ``send_due`` stopped early for the self-test (more may be due)."""
        self._send_log = SendLog()
        self._replied: list[_Replied] = []
        self._stored: list[Event] = []  # events of committed outcomes, not yet emitted
        self._refused_in_claim = 0  # rows the last claim failed as written (RowProblem)
        self._refused_rows: list[tuple[RowProblem, str]] = []  # (problem, channel), committed
        self.held = ""
        """Why the outbox is holding mail right now ("" when it is not): read it for the
        self-test's diagnostics (sending off, a bad send window, outside the window,
        the throttle)."""
        self.resume_at: datetime | None = None
        """When a held outbox may send again (aware UTC), or None (not held, or unknown)."""

    def use_settings(
        self, settings: EmailSettings, senders: Mapping[str, Sender] | None = None
    ) -> None:
        """Take the practice's changed settings and, when given, new senders (built from
        them by the caller; the old ones are closed between batches already)."""
        self._settings = settings
        if senders is not None:
            self._senders = dict(senders)

    # --- recovery ---------------------------------------------------------------------

    def recover(self) -> int:
        """Settle rows an earlier incarnation left in ``sending``; return how many.

        Call it once, before this incarnation's first ``send_due``. It settles every row in
        ``sending`` claimed by an incarnation up to and including this one's number: a
        process killed before its ``MailboxStarted`` reached the log gives its successor
        the same number, and that process's rows must not stay ``sending`` for ever;
        nothing of this incarnation's own is in flight yet.

        Rows without ``wire_at`` never reached the server: back to ``queued``. Rows with it
        may have been delivered: ``MessageDeliveryUncertain`` is appended and made durable
        (``durable``) BEFORE the row is requeued for its resend, so a kill in between
        leaves the row as it was (the next recovery says it again) and never a resend
        the log does not mark.
        """
        with self._engine.begin() as conn:
            check_incarnation(conn, self._incarnation)
            rows = conn.execute(_stuck(self._incarnation)).all()
        uncertain = [
            MessageDeliveryUncertain(
                incarnation=self._incarnation, row_id=row.id, message_id=row.message_id or ""
            )
            for row in rows
            if row.wire_at is not None
        ]
        if uncertain:
            self._emit(uncertain)
            self._durable()
        failed: list[Event] = []
        with self._engine.begin() as conn:
            check_incarnation(conn, self._incarnation)
            for row in rows:
                if row.wire_at is None:
                    conn.execute(_unstick(row.id, {"status": "queued"}))
                    continue
                sender = self._senders.get(row.channel)
                if sender is not None and sender.resend_uncertain:
                    resend = {
                        "status": "queued",
                        "attempts": read_attempts(row.attempts) + 1,
                        "next_attempt_at": None,
                        "wire_at": None,
                        "last_error": UNCERTAIN_RESENT,
                    }
                    conn.execute(_unstick(row.id, resend))
                else:
                    held = {
                        "status": "failed",
                        "attempts": read_attempts(row.attempts) + 1,
                        "last_error": UNCERTAIN_HELD,
                        "event_pending": True,
                    }
                    conn.execute(_unstick(row.id, held))
                    failed.append(self._failed_event(row.id, row.message_id, UNCERTAIN_HELD, True))
        if failed:
            self._emit(failed)
        return len(rows)

    def retry_now(self) -> int:
        """Make due at once every queued row that waits only because the server could not
        be used (``retry_cause`` ``server``); return how many. For a restart a person asked
        for, typically after mending the server or its settings: those rows would otherwise
        wait out a back-off of up to an hour. A row the server put off for its own sake
        (a 4xx for it) keeps its wait. One statement under the fence.
        """
        with self._engine.begin() as conn:
            check_incarnation(conn, self._incarnation)
            return int(conn.execute(_RETRY_NOW).rowcount)

    # --- sending ----------------------------------------------------------------------

    def send_due(self, limit: int | None = None) -> int:
        """Send up to ``limit`` (default ``mail.outbox_batch``) due rows; return how many
        rows were handled (sent, retried or failed).

        Nothing is claimed when sending is off, the send window is bad or closed, or the
        throttle is spent: ``held`` and ``resume_at`` say why and until when. Fewer than
        ``limit`` means there is nothing more to do now. Each sender used is closed at
        the end (one connection per batch).
        """
        limit = self._mail.outbox_batch if limit is None else limit
        self.yielded = False
        allowed = self._allowed_now()
        count = min(limit, allowed)
        if count <= 0:
            return 0
        handled = 0
        used: set[str] = set()
        # One connection for the batch (its transactions are short; none stays open
        # while the mail server is waited for, except the commit of wire_at itself).
        with self._engine.connect() as conn:
            try:
                claimed_rows = self._claim(conn, self._due_ids(conn, count))
                handled += self._refused_in_claim
                for index, claimed in enumerate(claimed_rows):
                    if index and self._must_yield():
                        self.yielded = True
                        self._store_replies(conn)
                        self._release(conn, [c.message.row_id for c in claimed_rows[index:]])
                        break
                    used.add(claimed.channel)
                    handled += 1
                    self._deliver(conn, claimed)
                    progress.beat()
                self._store_replies(conn)
            except BaseException:
                # Store what was answered before the failure if the database still lets
                # us; a row left unstored is settled by the next incarnation's recover().
                with contextlib.suppress(Exception):
                    if conn.in_transaction():
                        conn.rollback()
                    self._store_replies(conn)
                with contextlib.suppress(Exception):
                    self._emit_stored()
                raise
            finally:
                for channel in used:
                    self._senders[channel].close()
        self._emit_stored()
        if self._settings.max_per_minute > 0 and handled:
            # Once per batch (the batch was already cut to the allowance); an unlimited
            # practice keeps no log, which would grow with every message of the minute.
            self._send_log = self._send_log.record(self._clock.monotonic(), handled)
        if 0 < allowed == handled < limit:
            self._hold_for_throttle()
        return handled

    def _allowed_now(self) -> int:
        """How many rows may go now; sets ``held``/``resume_at`` when none may."""
        self.held, self.resume_at = "", None
        if not self._senders:
            self.held = "no way of sending is set up (no SMTP server, no SMS gateway)"
            return 0
        if not self._settings.sending_enabled:
            self.held = "sending is turned off (email_settings.sending_enabled)"
            return 0
        try:
            window = parse_window(self._settings.send_window)
        except SendWindowError as exc:
            self.held = f"{exc}; mail waits in the outbox until it is corrected"
            return 0
        now = self._clock.now()
        local = now.astimezone(self._local_zone)
        if not is_open(window, local):
            self.held = f"outside the send window {window.text!r}; mail waits until it opens"
            self.resume_at = next_open(window, local).astimezone(now.tzinfo)
            return 0
        allowed = allowance(self._settings.max_per_minute, self._send_log, self._clock.monotonic())
        if allowed == 0:
            self._hold_for_throttle()
        return allowed

    def _hold_for_throttle(self) -> None:
        mono = self._clock.monotonic()
        wait = next_allowed(self._settings.max_per_minute, self._send_log, mono) - mono
        if wait > 0:
            limit = self._settings.max_per_minute
            self.held = f"max_per_minute ({limit}) reached; the next message may go shortly"
            self.resume_at = self._clock.now() + timedelta(seconds=wait)

    def _due_ids(self, conn: Connection, count: int) -> list[int]:
        """Return up to ``count`` due rows of channels with a sender, oldest first.

        "Due" by the database server's clock. A row retried during this batch is not
        among them, so it waits for a later batch even with no backoff.
        """
        if count <= 0:
            return []
        with conn.begin():
            return list(conn.execute(_due(sorted(self._senders), count)).scalars())

    def _claim(self, conn: Connection, row_ids: Sequence[int]) -> list[_Claimed]:
        """Claim each row by compare-and-swap (``queued`` -> ``sending``; a row someone
        else changed since it was read is left out), all in one transaction under the
        fence, and fix their Message-IDs in it too. Returns the rows claimed, in order.

        Where the database can return the rows an UPDATE changed (SQLite, PostgreSQL,
        SQL Server), one UPDATE of the batch's ids with ``status = 'queued'`` in its WHERE
        swaps each row on its own condition and returns exactly the rows it changed;
        elsewhere (MySQL, MariaDB) each row gets its own UPDATE, checked for one row
        changed. One transaction for the batch: the claims are durable before anything is
        sent, and a crash leaves the unsent ones in ``sending`` without ``wire_at``, which
        ``recover`` puts back in the queue.
        """
        self._refused_in_claim = 0
        if not row_ids:
            return []
        incarnation = self._incarnation
        with conn.begin():
            check_incarnation(conn, incarnation)
            rows: dict[int, RowMapping] = {}
            if conn.dialect.update_returning:
                found = conn.execute(_claim_returning(incarnation, list(row_ids)))
                rows = {row.id: row._mapping for row in found.all()}
            else:
                ours = [
                    i for i in row_ids if conn.execute(_claim_one(incarnation, i)).rowcount == 1
                ]
                if ours:
                    found = conn.execute(_claimed_rows(ours))
                    rows = {row.id: row._mapping for row in found.all()}
            claimed: list[_Claimed] = []
            new_ids: list[dict[str, Any]] = []
            refused: list[Event] = []
            problems: list[tuple[RowProblem, str]] = []
            for row_id in row_ids:
                row = rows.get(row_id)
                if row is None:
                    continue
                item = read_outbox_row(dict(row))
                if isinstance(item, RowProblem):
                    refused.append(self._refuse(conn, row_id, item))
                    problems.append((item, str(row.get("channel") or "email").strip().lower()))
                    continue
                for note in item.notes:
                    log.info("outbox row %s: %s", row_id, note)
                message_id = item.message_id
                if message_id is None and item.raw is not None:
                    message_id = self._fix_message_id(conn, item)
                elif message_id is None:
                    message_id = self._new_message_id(item)
                    new_ids.append({"b_id": row_id, "b_message_id": message_id})
                claimed.append(
                    _Claimed(self._outgoing(item, message_id), item.channel, item.recipients)
                )
            if new_ids:
                conn.execute(_SET_MESSAGE_ID, new_ids)
        self._stored += refused  # committed: emitted with the batch's other events
        self._refused_rows += problems
        self._refused_in_claim = len(refused)
        return claimed

    def take_refused(self) -> list[tuple[RowProblem, str]]:
        """The rows failed as written since the last call (each with its channel), for the
        check-in's warning lines (``actors.mail.work``)."""
        taken, self._refused_rows = self._refused_rows, []
        return taken

    def _refuse(self, conn: Connection, row_id: int, problem: RowProblem) -> Event:
        """Fail a claimed row that cannot be sent as written (in the claim's transaction);
        return its event. The other rows of the batch go on."""
        error = f"not sent: {problem.reason}"[:_ERROR_MAX]
        log.warning("%s; failed, the other messages go on", problem.describe())
        conn.execute(
            _FAILED,
            {
                "b_id": row_id,
                "b_incarnation": self._incarnation,
                "b_attempts": problem.attempts + 1,
                "b_error": error,
                "b_refused": None,
                "b_recipients": None,
            },
        )
        return self._failed_event(row_id, None, error, True)

    def _new_message_id(self, item: OutboxItem) -> str:
        domain = compose.domain_of(self._settings.from_address or item.from_addr)
        return compose.make_message_id(domain, self._random)

    def _fix_message_id(self, conn: Connection, item: OutboxItem) -> str:
        """Give the row its Message-ID: ``raw``'s own when it has a free one, else a new one."""
        try:
            message_id = compose.raw_message_id(item.raw) if item.raw is not None else None
        except _ROW_ERRORS:  # a header block the parser cannot take: the row gets a new one
            message_id = None
        if message_id is not None and (
            len(message_id) > _MESSAGE_ID_MAX
            or not message_id.isascii()
            or conn.execute(_message_id_taken(message_id, item.row_id)).scalar_one()
        ):
            message_id = None  # unusable or already another row's: raw still carries its own
        if message_id is None:
            message_id = self._new_message_id(item)
        conn.execute(_give_message_id(item.row_id, message_id))
        return message_id

    def _outgoing(self, item: OutboxItem, message_id: str) -> OutgoingMessage:
        return OutgoingMessage(
            row_id=item.row_id,
            channel=item.channel,
            message_id=message_id,
            from_addr=item.from_addr.strip() or self._default_from(),
            to_addrs=item.to_addrs,
            cc_addrs=item.cc_addrs,
            subject=item.subject,
            body_text=item.body_text,
            body_html=item.body_html,
            raw=item.raw,
            attempts=item.attempts,
            skip=item.done,
        )

    def _default_from(self) -> str:
        address = self._settings.from_address
        name = compose.clean_header_text(self._settings.from_name)
        if not address or not name:
            return address
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{address}>'

    def _deliver(self, conn: Connection, claimed: _Claimed) -> None:
        """Send one claimed row; its outcome is stored with the next commit (see
        ``_on_wire``) or by ``_store_replies`` at the end of the batch."""
        message = claimed.message
        sender = self._senders[claimed.channel]
        wire = _WireCall(lambda: self._on_wire(conn, message.row_id))
        try:
            outcome = sender.send(message, wire)
        except RowTakenError:
            return
        except _ROW_ERRORS as exc:
            if wire.raised or isinstance(exc, (SQLAlchemyError, StaleIncarnationError)):
                raise  # the database or the fence: the mailbox's problem, not this row's
            # An error of the kind a message's own content causes (a bug it triggers must
            # not stop the practice's other mail): the row is settled, named in the log.
            # Others (RuntimeError, MemoryError, ...) still crash the mailbox.
            log.exception("outbox row %s failed while being sent", message.row_id)
            words = f"{type(exc).__name__}: {exc}"[:500]
            if wire.called:
                outcome = SendOutcome("uncertain", f"the service failed after sending ({words})")
            else:
                outcome = SendOutcome(
                    "failed", f"the service could not send this message ({words})"
                )
        self._replied.append(_Replied(message, sender, outcome, claimed.earlier))

    def _on_wire(self, conn: Connection, row_id: int) -> None:
        """Commit ``wire_at`` for a row we hold, together with the outcomes of the rows
        answered since the last commit (usually the previous row's), in one transaction
        under the fence (their events are emitted at the end of the batch). Raise
        ``RowTakenError`` (after the commit) if the row is no longer ours.

        So a message costs one commit: "row k sent" rides with "row k+1 on the wire".
        Row k's outcome is still stored only after its reply, and a crash before this
        commit leaves row k in ``sending`` with its own ``wire_at``: uncertain, resent
        with the same Message-ID by the next incarnation (DESIGN decision 7).
        """
        replied = self._replied
        try:
            with conn.begin():
                check_incarnation(conn, self._incarnation)
                events = self._record(conn, replied)
                changed = conn.execute(
                    _WIRE, {"b_id": row_id, "b_incarnation": self._incarnation}
                ).rowcount
        except StaleIncarnationError:
            self._settle_after_replacement(conn)  # no wire_at: this row never goes out
            raise
        self._replied = []
        self._stored += events
        if changed != 1:
            raise RowTakenError(f"outbox row {row_id} was changed by someone else while sending")

    def _release(self, conn: Connection, row_ids: Sequence[int]) -> None:
        """Put claimed rows that were never given to a sender back in the queue (one
        transaction under the fence). A crash before it leaves them in ``sending``
        without ``wire_at``, which ``recover`` requeues the same way."""
        with conn.begin():
            check_incarnation(conn, self._incarnation)
            conn.execute(
                _RELEASE, [{"b_id": i, "b_incarnation": self._incarnation} for i in row_ids]
            )

    def _store_replies(self, conn: Connection) -> None:
        """Store the outcomes not stored yet (one transaction under the fence)."""
        replied = self._replied
        if not replied:
            return
        try:
            with conn.begin():
                check_incarnation(conn, self._incarnation)
                events = self._record(conn, replied)
        except StaleIncarnationError:
            self._settle_after_replacement(conn)
            raise
        self._replied = []
        self._stored += events

    def _settle_after_replacement(self, conn: Connection) -> None:
        """Replaced after the server answered some rows: store those answers anyway.

        The one write an abandoned incarnation still makes, and only about mail it had
        already put on the wire: each UPDATE still requires the row to be in this
        incarnation's claim (``sending``, ``claimed_incarnation`` ours), so a row the
        successor has settled or claimed since is left alone; what is stored is what
        the server said. Without it a message delivered just before the replacement
        would look uncertain to the successor and go out a second time.
        """
        replied, self._replied = self._replied, []
        if not replied:
            return
        with conn.begin():
            self._stored += self._record(conn, replied)

    def _emit_stored(self) -> None:
        """Emit the events of the outcomes committed so far (once per batch: each emit
        wakes the event log's writer, which would otherwise commit once per message)."""
        events, self._stored = self._stored, []
        if events:
            self._emit(events)

    def _record(self, conn: Connection, replied: Sequence[_Replied]) -> list[Event]:
        """Store what became of each answered row (in the caller's fenced transaction);
        return the events to emit once it has committed."""
        events: list[Event] = []
        for reply in replied:
            events += self._record_one(conn, reply)
        return events

    def _record_one(self, conn: Connection, reply: _Replied) -> list[Event]:
        message, sender, outcome = reply.message, reply.sender, reply.outcome
        attempts = message.attempts + 1
        kind, detail = outcome.kind, outcome.detail
        events: list[Event] = []
        if kind == "uncertain":
            events.append(
                MessageDeliveryUncertain(
                    incarnation=self._incarnation,
                    row_id=message.row_id,
                    message_id=message.message_id,
                )
            )
            if sender.resend_uncertain:
                kind, detail = "retry", f"{UNCERTAIN_RESENT} ({detail})"
            else:
                kind, detail = "failed", f"{UNCERTAIN_HELD} ({detail})"
        settled = settle(
            "sent" if kind == "sent" else "retry" if kind == "retry" else "failed",
            detail,
            reply.earlier,
            outcome.recipients,
            attempts,
            backoff.MAX_ATTEMPTS,
        )
        kind, detail = settled.kind, settled.detail
        refused = settled.refused if settled.recipients else outcome.refused
        values: dict[str, Any] = {
            "b_id": message.row_id,
            "b_incarnation": self._incarnation,
            "b_attempts": attempts,
            "b_error": detail[:_ERROR_MAX] or None,
            "b_refused": ", ".join(refused) or None,
            "b_recipients": recipients_text(settled.recipients),
        }
        if kind == "retry":
            now = conn.execute(_NOW).scalar_one()
            delay = self._retry_delay(attempts, self._random.random())
            cause = SERVER_FAULT if outcome.server == "fault" else MESSAGE_FAULT
            conn.execute(
                _RETRY, {**values, "b_next": now + timedelta(seconds=delay), "b_cause": cause}
            )
        else:
            conn.execute(_SENT if kind == "sent" else _FAILED, values)
        delivered = settled.newly_sent
        if not outcome.recipients and kind == "sent":  # a sender that does not tell (SMS)
            delivered = max(len(message.to_addrs) + len(message.cc_addrs) - len(refused), 1)
        if delivered:
            events.append(
                MessageSent(
                    incarnation=self._incarnation,
                    row_id=message.row_id,
                    message_id=message.message_id,
                    recipients=delivered,
                )
            )
        if kind != "sent" or not delivered:
            # A retry or failure; or the row is settled as sent with its last recipients
            # given up (they had nothing delivered this time).
            events.append(
                self._failed_event(message.row_id, message.message_id, detail, kind != "retry")
            )
        return events

    def _failed_event(
        self, row_id: int, message_id: str | None, error: str, permanent: bool
    ) -> MessageSendFailed:
        return MessageSendFailed(
            incarnation=self._incarnation,
            row_id=row_id,
            message_id=message_id or "",
            error=error,
            permanent=permanent,
        )
