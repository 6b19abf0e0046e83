"""The event types: frozen, versioned records of every state change.

An event is a frozen dataclass whose fields are the facts of one change. Its wire
name is the class name and its schema version is the class attribute ``VERSION``.
Once a version has been written to a log its field list (names, order, types) never
changes: a new shape is a new version, and ``events.codec`` upcasts old records.

Which database an event concerns is not a field: it is the event's stream
(``stream_for(db)``); service-wide events go to ``SERVICE_STREAM``. When an event
happened is the store's ``recorded_at``, taken from the store's injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

SERVICE_STREAM = "service"
_DB_PREFIX = "db:"


def stream_for(db: str) -> str:
    """Return the stream name of one practice database's events."""
    return _DB_PREFIX + db


def db_of(stream: str) -> str | None:
    """Return the database a stream belongs to, or None for a service-wide stream."""
    return stream[len(_DB_PREFIX) :] if stream.startswith(_DB_PREFIX) else None


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event type; never written itself."""

    VERSION: ClassVar[int] = 1


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One line of a self-test's diagnostic log (never holds a secret)."""

    component: str  # database / smtp / imap / sms / service
    level: str  # info / warning / error
    message: str


# --- the service's life -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceStarted(Event):
    """The server process started and its supervision tree is being built."""

    server_id: str
    service_version: str
    pid: int


@dataclass(frozen=True, slots=True)
class ServiceStopping(Event):
    """The server process was asked to stop (signal or command) and is stopping."""

    reason: str


# --- discovery ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DatabaseDiscovered(Event):
    """A practice database is eligible: the service serves it from now on."""

    practice_name: str
    reason: str


@dataclass(frozen=True, slots=True)
class DatabaseIgnored(Event):
    """A database on the server is not served (no practice table, or not eligible)."""

    reason: str


@dataclass(frozen=True, slots=True)
class DatabaseLost(Event):
    """A database that was served vanished or stopped being eligible."""

    reason: str


# --- mailboxes ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MailboxStarted(Event):
    """A mailbox actor started for the stream's database, as incarnation N."""

    incarnation: int


@dataclass(frozen=True, slots=True)
class MailboxStopped(Event):
    """A mailbox actor was stopped on purpose (shutdown, restart, database lost)."""

    incarnation: int
    reason: str


@dataclass(frozen=True, slots=True)
class MailboxCrashed(Event):
    """A mailbox actor died of an unexpected exception (let it crash)."""

    incarnation: int
    error: str
    traceback: str


@dataclass(frozen=True, slots=True)
class RestartScheduled(Event):
    """The supervisor decided to start the next incarnation after ``delay`` seconds."""

    delay: float
    cause: str
    attempt: int


@dataclass(frozen=True, slots=True)
class MailboxGaveUp(Event):
    """Too many restarts within the window: retried only at the slowest cadence."""

    restarts: int
    within_seconds: float
    retry_in: float


# --- health -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SelfTestPassed(Event):
    """Incarnation N's self-test passed for the components it checked.

    ``warnings`` (v2): what the check-in says without failing, at level ``warning``: each
    outbox row refused since the last self-test as its own problem (its id, subject and
    cause; ``actors.mail.work``). The light stays steady: a bad row is that row's problem.
    """

    VERSION: ClassVar[int] = 2

    incarnation: int
    components: tuple[str, ...]
    warnings: tuple[Diagnostic, ...] = ()  # v2


@dataclass(frozen=True, slots=True)
class SelfTestFailed(Event):
    """Incarnation N's self-test failed; the diagnostics say what and why."""

    incarnation: int
    diagnostics: tuple[Diagnostic, ...]


@dataclass(frozen=True, slots=True)
class CheckInMissed(Event):
    """The watchdog saw no self-test from incarnation N for ``overdue_seconds``."""

    incarnation: int
    overdue_seconds: float


@dataclass(frozen=True, slots=True)
class CheckInWritten(Event):
    """A check-in row was written into the practice database (projection progress)."""

    checkin_id: int
    ok: bool
    up_to_seq: int


# --- commands -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestartRequested(Event):
    """Someone asked to restart the database's mailbox (cli, http or workstation)."""

    source: str
    requested_by: str
    command_id: int | None


# --- mail ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageSent(Event):
    """An outbox row was accepted by the SMTP server."""

    VERSION: ClassVar[int] = 2

    incarnation: int
    row_id: int
    message_id: str
    recipients: int
    recovered: bool = False  # v2: appended at a start, from the row, after a kill


@dataclass(frozen=True, slots=True)
class MessageSendFailed(Event):
    """Sending an outbox row failed; ``permanent`` for a 5xx, else it is retried."""

    VERSION: ClassVar[int] = 2

    incarnation: int
    row_id: int
    message_id: str
    error: str
    permanent: bool
    recovered: bool = False  # v2: appended at a start, from the row, after a kill


@dataclass(frozen=True, slots=True)
class MessageDeliveryUncertain(Event):
    """A crash fell between the final '.' and the reply: the row is resent as is."""

    incarnation: int
    row_id: int
    message_id: str


@dataclass(frozen=True, slots=True)
class MessageReceived(Event):
    """A message was imported from IMAP into the inbox."""

    VERSION: ClassVar[int] = 2

    incarnation: int
    row_id: int
    message_id: str
    uidvalidity: int
    uid: int
    recovered: bool = False  # v2: appended at a start, from the row, after a kill


@dataclass(frozen=True, slots=True)
class InboxSynced(Event):
    """The inbox import mark advanced to ``(uidvalidity, last_uid)``."""

    incarnation: int
    uidvalidity: int
    last_uid: int


@dataclass(frozen=True, slots=True)
class MessageParked(Event):
    """A message that stopped the importer ``poison_limit`` times was parked: stored raw
    as row ``row_id`` with the reason in its ``last_error``, or, when even that failed,
    skipped (``row_id`` None) and left on the server. The import moved past it."""

    incarnation: int
    uidvalidity: int
    uid: int
    row_id: int | None
    reason: str


# --- the log itself -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogPruned(Event):
    """Retention deleted ``count`` old events, none past ``up_to_seq`` (covered by the
    stored start-up state) and none recorded at or after ``before`` (the newest cutoff)."""

    count: int
    before: datetime
    up_to_seq: int


# --- the supervisor's other children (service stream) ---------------------------------


@dataclass(frozen=True, slots=True)
class ChildCrashed(Event):
    """A child of the supervisor that is not a mailbox failed: ``child`` is ``watchdog``,
    ``commands`` (the command reader), ``checkins`` (the check-in projector),
    ``scheduler`` (the timer thread) or ``http`` (the status page's server, also when it
    cannot listen on ``http.listen``); ``error`` is one line, without secrets."""

    child: str
    error: str


@dataclass(frozen=True, slots=True)
class ChildRestartScheduled(Event):
    """The supervisor will start ``child`` again after ``delay`` s; ``attempt`` counts its
    restarts within ``supervision.within_seconds`` (the mailboxes' policy, counted per
    child). Past ``max_restarts`` the process exits for the service manager to restart
    it, except for ``http``, which goes on retrying every ``backoff_max_seconds``."""

    child: str
    delay: float
    attempt: int


@dataclass(frozen=True, slots=True)
class MessageSkipped(Event):
    """A fetched message was not stored because the same bytes are stored already
    (row ``duplicate_of``; a re-import after a changed UIDVALIDITY, or a second copy in
    the folder). It is left on the server, whatever ``imap_after_import`` says."""

    incarnation: int
    uidvalidity: int
    uid: int
    message_id: str
    duplicate_of: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class InboxConnectionLost(Event):
    """The open IMAP connection failed (``error``: one line, no secrets), e.g. the server
    or a network device dropped it. The next poll connects again; a server that stays
    away then shows in the self-test, not as more of these."""

    incarnation: int
    error: str


@dataclass(frozen=True, slots=True)
class OutboxBackoffCleared(Event):
    """A restart a person asked for made ``rows`` queued outbox rows due at once: their last
    attempt failed because the server could not be used (``retry_cause`` ``server``), so
    they no longer wait out their back-off. Rows the server put off for their own sake
    keep theirs. Appended by the new incarnation, once, when it cleared any."""

    incarnation: int
    rows: int


EVENT_TYPES: tuple[type[Event], ...] = (
    ServiceStarted,
    ServiceStopping,
    DatabaseDiscovered,
    DatabaseIgnored,
    DatabaseLost,
    MailboxStarted,
    MailboxStopped,
    MailboxCrashed,
    RestartScheduled,
    MailboxGaveUp,
    SelfTestPassed,
    SelfTestFailed,
    CheckInMissed,
    CheckInWritten,
    RestartRequested,
    MessageSent,
    MessageSendFailed,
    MessageDeliveryUncertain,
    MessageReceived,
    InboxSynced,
    MessageParked,
    LogPruned,
    ChildCrashed,
    ChildRestartScheduled,
    MessageSkipped,
    InboxConnectionLost,
    OutboxBackoffCleared,
)
