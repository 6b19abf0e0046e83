"""The inbox: new mail from the practice's IMAP folder into ``email_messages`` (DESIGN 7).

``Inbox.poll`` imports every new message in batches. For each batch it

1. fetches the messages (``BODY.PEEK[]``);
2. records the batch's first UID as ``pending_uid`` in ``email_service_inbox`` (a
   committed write, fenced by the incarnation), counting ``pending_attempts`` when the same
   UID was left pending by an earlier incarnation: that one died importing it;
3. parses them (``actors.mail.parse``) and, in ONE transaction fenced by the incarnation,
   inserts the rows (``folder='inbox'``, ``status='received'``) and advances the folder's
   ``(uidvalidity, last_uid)`` with a compare-and-swap, clearing ``pending_uid``;
4. appends ``MessageReceived`` per row and ``InboxSynced`` for the batch;
5. only then applies ``imap_after_import`` on the server.

Steps 1 and 2 of the next batch overlap this one: its FETCH is sent before this batch is
parsed and stored (the server reads and sends it meanwhile; it is read after this
batch's commit), and its first UID is noted pending in this batch's transaction, so
only a poll's first batch needs a commit of its own before it is parsed. The
after-import action of a batch follows its commit, once the next FETCH has been read.

So a crash before the commit imports the batch again (nothing was stored); a crash after
it never imports it again. A crash between the commit and the after-import action leaves
those messages on the server: the next session applies the action to every message at or
below ``last_uid`` that has a row here (``delete`` and ``move`` catch up; a server without
MOVE may then hold a second copy in the target folder if the crash fell between its COPY
and its delete).

Messages are de-duplicated by what identifies them, never by a header a sender can reuse:
within one UIDVALIDITY a UID above the mark is new by construction, and a message whose
bytes are already stored (``raw_sha256``: a re-import after a changed UIDVALIDITY, which
restarts the folder from UID 0, or a second copy in the folder) is skipped, with a
``MessageSkipped`` event, and left on the server whatever ``imap_after_import`` says. A
different message reusing a stored Message-ID is stored under a Message-ID derived from
its bytes, with a note in ``last_error`` (``docs/mail.md``).

A message larger than the practice database takes is cut to fit, or parked (stored
without ``raw`` and left on the server; ``actors.mail.storage_limits``). A message whose
import killed ``mail.poison_limit`` incarnations is parked: stored raw,
unparsed, with a ``last_error`` saying why; if even that fails it is skipped and left on
the server; either way the mark moves past it and ``MessageParked`` is appended. After an
incarnation died mid-batch, the next ``batch_size`` UIDs are imported one at a time, so a
poison message is found and parked after at most ``poison_limit + 1`` deaths.

Runs on its mailbox actor's thread. IMAP and network failures raise ``ImapError`` (one line,
no secrets; the session is dropped and the next ``poll`` reconnects); a newer incarnation
makes every write raise ``StaleIncarnationError``; database errors propagate as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Select,
    Update,
    func,
    insert,
    inspect,
    select,
    update,
)

from actors.mail import raw_blob
from actors.mail.imap_session import FetchedMessage, ImapSession
from actors.mail.parse import (
    PROBLEM_MAX,
    ParsedMessage,
    derived_message_id,
    parse_message,
    raw_digest,
)
from actors.mail.settings import EmailSettings
from actors.mail.storage_limits import (
    ColumnLimit,
    FittedRow,
    StorageLimits,
    cut_text,
    fit_row,
    read_limits,
)
from actors.practice_db import StaleIncarnationError, check_incarnation
from actors.practice_schema import email_messages, email_service_inbox, patients
from actors.statements import constant, statement
from config.settings import MailSettings
from events.clock import Clock
from events.types import Event, InboxSynced, MessageParked, MessageReceived, MessageSkipped

log = logging.getLogger(__name__)

FETCH_BATCH = 100
"""Messages fetched, stored and committed together."""
_IN_CHUNK = 500  # values per SQL IN (...) list: well inside every backend's limit

Emit = Callable[[Sequence[Event]], None]
OpenSession = Callable[[EmailSettings, MailSettings, Clock, bool], ImapSession]


class InboxConflictError(RuntimeError):
    """Raised when the import mark changed under this importer (another one is running)."""


@dataclass(frozen=True, slots=True)
class Mark:
    """The folder's row of ``email_service_inbox``."""

    uidvalidity: int | None
    last_uid: int
    incarnation: int
    pending_uid: int | None
    pending_attempts: int


# --- the pure core --------------------------------------------------------------------


def start_uid(mark: Mark, uidvalidity: int) -> int:
    """Return the UID above which the folder is new: ``last_uid``, or 0 when the server's
    UIDVALIDITY differs from the stored one (everything is new, de-duplicated later)."""
    return mark.last_uid if mark.uidvalidity == uidvalidity else 0


def died_importing(mark: Mark, uidvalidity: int, incarnation: int) -> bool:
    """Whether an earlier incarnation left a UID pending in this UIDVALIDITY: it died."""
    return (
        mark.pending_uid is not None
        and mark.uidvalidity == uidvalidity
        and mark.incarnation != incarnation
    )


Decision = tuple[Literal["try", "park"], int]


def attempt_decision(
    mark: Mark, uidvalidity: int, uid: int, incarnation: int, poison_limit: int
) -> Decision:
    """Decide what to do with ``uid`` before importing it: ``("try", attempts)`` with the
    attempt count to record, or ``("park", attempts)`` when ``attempts`` incarnations
    already died on it and that reaches ``poison_limit``."""
    same = mark.pending_uid == uid and mark.uidvalidity == uidvalidity
    if not same:
        return ("try", 1)
    if mark.incarnation == incarnation:
        return ("try", max(1, mark.pending_attempts))  # our own retry, not a death
    if mark.pending_attempts >= poison_limit:
        return ("park", mark.pending_attempts)
    return ("try", mark.pending_attempts + 1)


@dataclass(frozen=True, slots=True)
class Planned:
    """A fetched message to store: its parse (Message-ID made unique where needed, with
    a note in ``problem``) and the SHA-256 of its bytes."""

    fetched: FetchedMessage
    parsed: ParsedMessage
    digest: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """A fetched message not stored: its bytes are stored already (as row
    ``duplicate_of``, or, None, by an earlier message of the same batch)."""

    uid: int
    message_id: str
    digest: str
    duplicate_of: int | None


def plan_rows(
    batch: Sequence[tuple[FetchedMessage, ParsedMessage, str]],
    stored_digests: Mapping[str, int],
    stored_ids: Mapping[str, int],
) -> tuple[list[Planned], list[Skipped]]:
    """Split a batch of ``(fetched, parsed, digest)`` into rows to insert and messages
    skipped, de-duplicating by content (the digest), never by the Message-ID header.

    ``stored_digests`` maps the batch's digests already stored to their row ids;
    ``stored_ids`` the batch's Message-IDs (and derived ones) already stored. A message
    whose bytes are stored (or came earlier in the batch) is skipped. A different message
    whose Message-ID is taken is stored under ``derived_message_id`` of its bytes, with a
    note saying so (its own header stays in ``raw``)."""
    digests: dict[str, int | None] = dict(stored_digests)
    taken: dict[str, int | None] = dict(stored_ids)
    keep: list[Planned] = []
    skipped: list[Skipped] = []
    for fetched, parsed, digest in batch:
        derived = derived_message_id(fetched.raw, digest)
        if digest in digests:
            skipped.append(Skipped(fetched.uid, parsed.message_id, digest, digests[digest]))
            continue
        if parsed.message_id in taken and derived in taken:
            # A row without a digest (stored before digests were) holding these bytes.
            skipped.append(Skipped(fetched.uid, parsed.message_id, digest, taken[derived]))
            continue
        if parsed.message_id in taken:
            note = (
                f"the Message-ID {parsed.message_id} is already used by another stored "
                f"message; stored as {derived} (the message's own header is in raw)"
            )
            problem = "; ".join(p for p in (parsed.problem, note) if p)[:PROBLEM_MAX]
            parsed = replace(parsed, message_id=derived, problem=problem)
        digests[digest] = None
        taken[parsed.message_id] = None
        keep.append(Planned(fetched, parsed, digest))
    return keep, skipped


def split_batches(uids: Sequence[int], one_by_one: int, size: int) -> list[list[int]]:
    """Cut ``uids`` into batches of ``size``, the first ``one_by_one`` UIDs one at a time
    (after an importer died mid-batch, to find the message that killed it)."""
    batches: list[list[int]] = []
    position = 0
    while position < len(uids):
        step = 1 if position < one_by_one else size
        batches.append(list(uids[position : position + step]))
        position += step
    return batches


def normal_address(address: str) -> str:
    """How addresses are compared with ``patients.email``: trimmed, lower case."""
    return address.strip().lower()


def _naive_utc(now: datetime) -> datetime:
    return now if now.tzinfo is None else now.astimezone(UTC).replace(tzinfo=None)


def _chunks(values: Sequence[Any], size: int = _IN_CHUNK) -> list[Sequence[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _open_session(
    settings: EmailSettings, mail: MailSettings, clock: Clock, readonly: bool
) -> ImapSession:
    return ImapSession.open(settings, mail, clock, readonly=readonly)


# --- the shell --------------------------------------------------------------------------


class Inbox:
    """Imports one practice's IMAP folder; see the module docstring. One thread at a time."""

    def __init__(
        self,
        engine: Engine,
        incarnation: int,
        settings: EmailSettings,
        mail: MailSettings,
        emit: Emit,
        clock: Clock,
        *,
        batch_size: int = FETCH_BATCH,
        parse: Callable[[bytes], ParsedMessage] = parse_message,
        open_session: OpenSession = _open_session,
        must_yield: Callable[[], bool] = lambda: False,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._engine = engine
        self._incarnation = incarnation
        self._settings = settings
        self._mail = mail
        self._emit = emit
        self._clock = clock
        self._batch_size = batch_size
        self._parse = parse
        self._open_session = open_session
        self._session: ImapSession | None = None
        self._idle = False
        self._has_patients: bool | None = None
        self._limits: StorageLimits | None = None  # read at the first store
        self._folder = settings.imap_folder
        self._must_yield = must_yield
        self.yielded = False
        """Whether the last ``poll`` stopped between two batches because the mailbox's
        self-test fell due (``must_yield``): more is waiting, poll again at once."""

    # --- public -------------------------------------------------------------------------

    def poll(self, wait_seconds: float = 0.0) -> int:
        """Import everything new; return how many rows were stored. When nothing was new,
        wait in IDLE up to ``wait_seconds`` for news (without IDLE: one NOOP) and import
        what came. Connects first when there is no session."""
        self.yielded = False
        try:
            session = self._session or self._connect()
            count = self._import_new(session)
            if count == 0 and not self.yielded and wait_seconds > 0 and session.wait(wait_seconds):
                count = self._import_new(session)
            return count
        except BaseException:
            self.close()
            raise

    @property
    def connected(self) -> bool:
        """Whether a session is open (the last ``poll`` left a working connection)."""
        return self._session is not None

    @property
    def waits_in_idle(self) -> bool:
        """Whether ``poll(wait_seconds)`` waits in IDLE (the open session's server offers
        it): the caller may then poll again at once instead of after its own interval."""
        return self._session is not None and self._idle

    def close(self) -> None:
        """Drop the IMAP session (the next ``poll`` reconnects). Never raises."""
        session, self._session = self._session, None
        if session is not None:
            session.close()

    # --- connecting ---------------------------------------------------------------------

    def _connect(self) -> ImapSession:
        action = self._settings.imap_after_import
        session = self._open_session(self._settings, self._mail, self._clock, action == "keep")
        self._session = session
        self._idle = session.idle_supported
        target = self._settings.after_import_folder
        if target is not None:
            session.ensure_folder(target)
        self._catch_up(session)
        return session

    def _catch_up(self, session: ImapSession) -> None:
        """Apply the after-import action to stored messages still on the server (a crash
        fell between the commit and the action)."""
        if self._settings.imap_after_import == "keep":
            return
        mark = self._read_mark()
        if mark is None or mark.uidvalidity != session.uidvalidity or mark.last_uid < 1:
            return
        on_server = session.uids_up_to(mark.last_uid)
        stored: list[int] = []
        with self._engine.connect() as conn:
            for chunk in _chunks(on_server):
                stored += conn.execute(_stored_uids(session.uidvalidity, list(chunk))).scalars()
        if stored:
            log.info(
                "%s: applying %s to %d message(s) imported before a crash",
                self._folder,
                self._settings.imap_after_import,
                len(stored),
            )
            session.apply_after_import(sorted(stored), self._settings.imap_after_import)

    # --- importing ----------------------------------------------------------------------

    def _import_new(self, session: ImapSession) -> int:
        validity = session.uidvalidity
        mark = self._read_mark() or Mark(None, 0, 0, None, 0)
        last = start_uid(mark, validity)
        if mark.uidvalidity is not None and mark.uidvalidity != validity:
            log.warning(
                "%s: UIDVALIDITY changed from %d to %d; re-importing, skipping messages "
                "whose bytes are already stored",
                self._folder,
                mark.uidvalidity,
                validity,
            )
        uids = session.uids_after(last)
        one_by_one = self._batch_size if died_importing(mark, validity, self._incarnation) else 0
        batches = split_batches(uids, one_by_one, self._batch_size)
        action = self._settings.imap_after_import
        imported = 0
        # The next batch's FETCH is sent before this batch is stored, so the server reads
        # and sends it while the database works; the after-import action of a batch
        # follows its commit, once the next FETCH has been read (one command at a time).
        ahead = session.fetch_begin(batches[0]) if batches else None
        done: list[int] = []
        noted = False  # whether this batch's first UID was noted pending with the last one
        for index, batch in enumerate(batches):
            assert ahead is not None
            fetched = session.fetch_end(ahead)
            ahead = None
            session.apply_after_import(done, action)
            done = []
            decision, attempts = (
                ("try", 1) if noted else self._record_pending(validity, last, batch[0])
            )
            following = batches[index + 1] if index + 1 < len(batches) else None
            if following is not None and self._must_yield():
                # The self-test (and the check-in) is due: this batch is the last of this
                # round, the rest waits for the next (a weekend's mail, or a re-import
                # after UIDVALIDITY changed, must not hold the check-in back for minutes).
                following = None
                self.yielded = True
            noted = False
            if decision == "park":
                imported += self._park_batch(session, validity, last, batch, fetched, attempts)
            else:
                if following is not None:
                    ahead = session.fetch_begin(following)
                    noted = True
                pending = following[0] if following is not None else None
                count, done = self._store_batch(validity, last, batch, fetched, pending)
                imported += count
            last = batch[-1]
            if self.yielded:
                break
            if ahead is None and index + 1 < len(batches):
                ahead = session.fetch_begin(batches[index + 1])
        session.apply_after_import(done, action)
        return imported

    def _import_batch(
        self, session: ImapSession, validity: int, last: int, batch: Sequence[int]
    ) -> int:
        """Fetch, note as pending, store and act on one batch, without fetching ahead."""
        fetched = session.fetch(batch)
        decision, attempts = self._record_pending(validity, last, batch[0])
        if decision == "park":
            return self._park_batch(session, validity, last, batch, fetched, attempts)
        count, done = self._store_batch(validity, last, batch, fetched, None)
        session.apply_after_import(done, self._settings.imap_after_import)
        return count

    def _park_batch(
        self,
        session: ImapSession,
        validity: int,
        last: int,
        batch: Sequence[int],
        fetched: Sequence[FetchedMessage],
        attempts: int,
    ) -> int:
        """Park the batch's first UID, then import the rest of the batch."""
        first = fetched[0] if fetched and fetched[0].uid == batch[0] else None
        stored = self._park(session, validity, last, batch[0], first, attempts)
        rest = [u for u in batch if u != batch[0]]
        if rest:
            stored += self._import_batch(session, validity, batch[0], rest)
        return stored

    def _store_batch(
        self,
        validity: int,
        last: int,
        batch: Sequence[int],
        fetched: Sequence[FetchedMessage],
        pending: int | None,
    ) -> tuple[int, list[int]]:
        """Parse and store a fetched batch and advance the mark in one fenced transaction
        (noting ``pending``, the next batch's first UID, as pending in it); emit its
        events. Returns the rows stored and the UIDs now due their after-import action
        (the stored ones: a skipped message is never touched on the server)."""
        parsed = [
            (message, self._parse(message.raw), raw_digest(message.raw)) for message in fetched
        ]
        links = self._patient_links([p.from_addr for _, p, _ in parsed])
        received: list[Event] = []
        with self._engine.begin() as conn:
            check_incarnation(conn, self._incarnation)
            digests = self._stored_digests(conn, [d for _, _, d in parsed])
            ids = [p.message_id for _, p, _ in parsed]
            ids += [derived_message_id(m.raw, d) for m, _, d in parsed]
            rows, skipped = plan_rows(parsed, digests, self._row_ids(conn, ids))
            if self._limits is None:
                self._limits = read_limits(conn)
            fitted = [
                self._fitted(self._row(validity, r.fetched, r.parsed, r.digest, links))
                for r in rows
            ]
            if rows:
                # A large raw is written in pieces after the insert (actors.mail.raw_blob).
                to_insert, held = raw_blob.held_back(conn, [f.row for f in fitted])
                conn.execute(_INSERT_ROWS, to_insert)
                row_ids = self._row_ids(conn, [r.parsed.message_id for r in rows])
                for position, raw in held.items():
                    raw_blob.write_raw(conn, row_ids[rows[position].parsed.message_id], raw)
                received = [
                    MessageReceived(
                        self._incarnation,
                        row_ids[r.parsed.message_id],
                        r.parsed.message_id,
                        validity,
                        r.fetched.uid,
                    )
                    for r in rows
                ]
            if any(s.duplicate_of is None for s in skipped):
                found = self._stored_digests(conn, [s.digest for s in skipped])
                skipped = [replace(s, duplicate_of=found.get(s.digest)) for s in skipped]
            self._advance(conn, validity, last, batch[-1], pending)
        events = [*received, *(self._skipped_event(validity, s) for s in skipped)]
        parked = [(e, f) for e, f in zip(received, fitted, strict=True) if f.parked]
        for event, fit in parked:
            assert isinstance(event, MessageReceived)
            reason = f"UID {event.uid} too large for this database: " + "; ".join(fit.notes)
            log.warning("%s: %s", self._folder, reason)
            events.append(
                MessageParked(self._incarnation, validity, event.uid, event.row_id, reason)
            )
        self._emit([*events, InboxSynced(self._incarnation, validity, batch[-1])])
        # Skipped and parked messages stay on the server: only messages stored whole get
        # the after-import action.
        return len(rows), sorted(
            r.fetched.uid for r, f in zip(rows, fitted, strict=True) if not f.parked
        )

    def _fitted(self, row: dict[str, Any]) -> FittedRow:
        """``row`` fitted to the database's limits, its notes added to ``last_error``."""
        assert self._limits is not None
        fit = fit_row(row, self._limits)
        if not fit.notes:
            return fit
        note = "; ".join([*([fit.row["last_error"]] if fit.row["last_error"] else []), *fit.notes])
        limit = self._limits.columns.get("last_error", ColumnLimit())
        return replace(fit, row={**fit.row, "last_error": cut_text(note, limit)})

    def _skipped_event(self, validity: int, skipped: Skipped) -> MessageSkipped:
        reason = (
            f"UID {skipped.uid} (UIDVALIDITY {validity}) not imported: the same message "
            f"(SHA-256 {skipped.digest[:16]}…) is stored already as row {skipped.duplicate_of}; "
            "it is left on the server"
        )
        log.warning("%s: %s", self._folder, reason)
        return MessageSkipped(
            self._incarnation,
            validity,
            skipped.uid,
            skipped.message_id,
            skipped.duplicate_of,
            reason,
        )

    def _row(
        self,
        validity: int,
        message: FetchedMessage,
        parsed: ParsedMessage,
        digest: str,
        links: dict[str, int],
    ) -> dict[str, Any]:
        return {
            "folder": "inbox",
            "channel": "email",
            "status": "received",
            "message_id": parsed.message_id,
            "from_addr": parsed.from_addr,
            "to_addrs": parsed.to_addrs,
            "cc_addrs": parsed.cc_addrs,
            "subject": parsed.subject,
            "body_text": parsed.body_text,
            "body_html": parsed.body_html,
            "raw": message.raw,
            "patient_id": links.get(normal_address(parsed.from_addr)),
            "received_at": message.internaldate or _naive_utc(self._clock.now()),
            "imap_uidvalidity": validity,
            "imap_uid": message.uid,
            "last_error": parsed.problem or None,
            "raw_sha256": digest,
            "event_pending": True,  # until MessageReceived is durable (outcome_events)
        }

    # --- poison -------------------------------------------------------------------------

    def _park(
        self,
        session: ImapSession,
        validity: int,
        last: int,
        uid: int,
        message: FetchedMessage | None,
        attempts: int,
    ) -> int:
        reason = (
            f"parked: importing UID {uid} (UIDVALIDITY {validity}) stopped the importer "
            f"{attempts} times; stored raw without parsing"
        )
        row_id: int | None = None
        if message is not None:
            try:
                row_id = self._store_parked(validity, last, message, reason)
            except StaleIncarnationError:
                raise
            except Exception as exc:  # even storing it raw fails: skip it, keep it on the server
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                reason = (
                    f"skipped: importing UID {uid} (UIDVALIDITY {validity}) stopped the "
                    f"importer {attempts} times and storing it raw failed too "
                    f"({type(exc).__name__}: {first[:200]}); it stays on the server"
                )
        if row_id is None:
            with self._engine.begin() as conn:
                check_incarnation(conn, self._incarnation)
                self._advance(conn, validity, last, uid)
        log.error("%s: %s", self._folder, reason)
        if message is not None:
            self._emit(
                [
                    MessageParked(self._incarnation, validity, uid, row_id, reason),
                    InboxSynced(self._incarnation, validity, uid),
                ]
            )
        else:
            self._emit([InboxSynced(self._incarnation, validity, uid)])
        if row_id is not None:
            session.apply_after_import([uid], self._settings.imap_after_import)
        return 0 if row_id is None else 1

    def _store_parked(
        self, validity: int, last: int, message: FetchedMessage, reason: str
    ) -> int | None:
        digest = raw_digest(message.raw)
        message_id = derived_message_id(message.raw, digest)
        with self._engine.begin() as conn:
            check_incarnation(conn, self._incarnation)
            same = self._stored_digests(conn, [digest]) or self._row_ids(conn, [message_id])
            if same:
                self._advance(conn, validity, last, message.uid)
                return next(iter(same.values()))
            parked = {
                "message_id": message_id,
                "raw": message.raw,
                "received_at": message.internaldate or _naive_utc(self._clock.now()),
                "imap_uidvalidity": validity,
                "imap_uid": message.uid,
                "last_error": reason,
                "raw_sha256": digest,
            }
            conn.execute(_insert_parked(parked))
            row_id = self._row_ids(conn, [message_id])[message_id]
            self._advance(conn, validity, last, message.uid)
        return row_id

    # --- the database -------------------------------------------------------------------

    def _read_mark(self) -> Mark | None:
        with self._engine.connect() as conn:
            row = conn.execute(_read_mark(self._folder)).first()
        if row is None:
            return None
        return Mark(
            row.uidvalidity, row.last_uid, row.incarnation, row.pending_uid, row.pending_attempts
        )

    def _record_pending(self, validity: int, last: int, uid: int) -> Decision:
        """Durably note that ``uid`` is being imported (see ``attempt_decision``)."""
        with self._engine.begin() as conn:
            check_incarnation(conn, self._incarnation)
            row = conn.execute(_read_mark(self._folder)).first()
            if row is None:
                conn.execute(_first_mark(self._folder))
                mark = Mark(None, 0, 0, None, 0)
            else:
                mark = Mark(
                    row.uidvalidity,
                    row.last_uid,
                    row.incarnation,
                    row.pending_uid,
                    row.pending_attempts,
                )
            if start_uid(mark, validity) != last:
                raise InboxConflictError(
                    f"the import mark of {self._folder!r} moved while importing"
                )
            decision = attempt_decision(
                mark, validity, uid, self._incarnation, self._mail.poison_limit
            )
            if decision[0] == "try":
                pending = {
                    "uidvalidity": validity,
                    "last_uid": last,
                    "incarnation": self._incarnation,
                    "pending_uid": uid,
                    "pending_attempts": decision[1],
                    "updated_at": _naive_utc(self._clock.now()),
                }
                conn.execute(_set_pending(self._folder, pending))
        return decision

    def _advance(
        self,
        conn: Connection,
        validity: int,
        last: int,
        new_last: int,
        pending: int | None = None,
    ) -> None:
        """Move the mark from ``(validity, last)`` to ``new_last``; a compare-and-swap:
        exactly one row must change. The pending UID is cleared, or set to ``pending``
        (the next batch's first UID, one attempt, ours) so that the next batch needs no
        commit of its own before it is parsed."""
        moved = {
            "last_uid": new_last,
            "incarnation": self._incarnation,
            "pending_uid": pending,
            "pending_attempts": 0 if pending is None else 1,
            "updated_at": _naive_utc(self._clock.now()),
        }
        changed = conn.execute(_advance(self._folder, validity, last, moved)).rowcount
        if changed != 1:
            raise InboxConflictError(f"the import mark of {self._folder!r} moved while importing")

    def _stored_digests(self, conn: Connection, digests: Sequence[str]) -> dict[str, int]:
        """Map each of ``digests`` already stored (``raw_sha256``) to its row id."""
        found: dict[str, int] = {}
        for chunk in _chunks(sorted(set(digests))):
            for row_id, digest in conn.execute(_by_digest(list(chunk))):
                found.setdefault(digest, row_id)
        return found

    def _row_ids(self, conn: Connection, ids: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for chunk in _chunks(sorted(set(ids))):
            for row_id, message_id in conn.execute(_by_message_id(list(chunk))):
                out[message_id] = row_id
        return out

    def _patient_links(self, addresses: Sequence[str]) -> dict[str, int]:
        """Map each sender address that matches exactly one patient to that patient's id.

        ``patients`` is optional (and may be a view): without it, or when it cannot be
        read, nothing is linked and the import goes on.
        """
        wanted = sorted({normal_address(a) for a in addresses if a.strip()})
        if not wanted:
            return {}
        try:
            if self._has_patients is None:
                self._has_patients = inspect(self._engine).has_table(patients.name)
            if not self._has_patients:
                return {}
            matches: dict[str, set[int]] = {}
            with self._engine.connect() as conn:
                for chunk in _chunks(wanted):
                    for patient_id, address in conn.execute(_patients_of(list(chunk))):
                        matches.setdefault(address, set()).add(patient_id)
        except Exception as exc:  # a broken view must not stop mail coming in
            log.warning("patients cannot be read, mail is not linked: %s", exc)
            return {}
        return {a: next(iter(ids)) for a, ids in matches.items() if len(ids) == 1}


# --- the statements ------------------------------------------------------------------------

_SAMPLE_ROW: dict[str, Any] = {
    "folder": "inbox",
    "channel": "email",
    "status": "received",
    "message_id": "<r1@mail.example>",
    "from_addr": "ann@example.org",
    "to_addrs": "reception@practice.example",
    "cc_addrs": None,
    "subject": "Appointment",
    "body_text": "Can I come at ten?",
    "body_html": None,
    "raw": b"Subject: Appointment\r\n\r\nCan I come at ten?\r\n",
    "patient_id": None,
    "received_at": datetime(2026, 1, 5, 8, 0),
    "imap_uidvalidity": 3,
    "imap_uid": 17,
    "last_error": None,
    "raw_sha256": "0" * 64,
    "event_pending": True,
}
_INSERT_ROWS = constant("inbox.insert", insert(email_messages), params=[_SAMPLE_ROW])
"""A batch of imported messages (``Inbox._row``), one ``executemany``."""


@statement("inbox.stored_uids", 3, [17, 18])
def _stored_uids(validity: int, uids: list[int]) -> Select[Any]:
    """Which of ``uids`` are stored whole (a parked row has no raw: the server keeps the
    only full copy)."""
    m = email_messages
    return select(m.c.imap_uid).where(
        m.c.imap_uidvalidity == validity, m.c.imap_uid.in_(uids), m.c.raw.is_not(None)
    )


@statement(
    "inbox.insert_parked",
    {
        k: _SAMPLE_ROW[k]
        for k in (
            "message_id",
            "raw",
            "received_at",
            "imap_uidvalidity",
            "imap_uid",
            "last_error",
            "raw_sha256",
        )
    },
)
def _insert_parked(values: dict[str, Any]) -> Insert:
    """A message too large or too broken to import whole: its raw and why."""
    return insert(email_messages).values(
        folder="inbox", channel="email", status="received", event_pending=True, **values
    )


@statement("inbox.read_mark", "INBOX")
def _read_mark(folder: str) -> Select[Any]:
    """A folder's import mark."""
    table = email_service_inbox
    return select(table).where(table.c.folder == folder)


@statement("inbox.first_mark", "INBOX")
def _first_mark(folder: str) -> Insert:
    """A folder's first import mark."""
    return insert(email_service_inbox).values(folder=folder, last_uid=0, pending_attempts=0)


_MARK_SAMPLE = {
    "last_uid": 18,
    "incarnation": 7,
    "pending_uid": None,
    "pending_attempts": 0,
    "updated_at": datetime(2026, 1, 5, 8, 0),
}


@statement("inbox.set_pending", "INBOX", {**_MARK_SAMPLE, "uidvalidity": 3, "pending_uid": 19})
def _set_pending(folder: str, values: dict[str, Any]) -> Update:
    """Note the UID being imported (``attempt_decision``)."""
    table = email_service_inbox
    return update(table).where(table.c.folder == folder).values(**values)


@statement("inbox.advance", "INBOX", 3, 17, _MARK_SAMPLE)
def _advance(folder: str, validity: int, last: int, values: dict[str, Any]) -> Update:
    """Move a folder's mark on from ``(validity, last)`` (a compare-and-swap)."""
    table = email_service_inbox
    return (
        update(table)
        .where(table.c.folder == folder, table.c.uidvalidity == validity, table.c.last_uid == last)
        .values(**values)
    )


@statement("inbox.by_digest", ["0" * 64])
def _by_digest(digests: list[str]) -> Select[Any]:
    m = email_messages
    return select(m.c.id, m.c.raw_sha256).where(m.c.raw_sha256.in_(digests))


@statement("inbox.by_message_id", ["<r1@mail.example>"])
def _by_message_id(ids: list[str]) -> Select[Any]:
    m = email_messages
    return select(m.c.id, m.c.message_id).where(m.c.message_id.in_(ids))


@statement("inbox.patients_of", ["ann@example.org"])
def _patients_of(addresses: list[str]) -> Select[Any]:
    """The patients whose address (trimmed, lower case) is one of ``addresses``."""
    email = func.lower(func.trim(patients.c.email))
    return select(patients.c.id, email).where(email.in_(addresses))
