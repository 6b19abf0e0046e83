"""A mailbox's mail work, as steps of its incarnation: settings, outbox, inbox, probes.

``MailWork`` is built once per incarnation (in the mailbox's first message) and runs in the
mailbox's thread. It holds:

- the practice's ``EmailSettings``, read from ``email_settings`` at each check-in (a change
  made by the wizard or the practice software takes effect within one check-in);
- the ``Outbox`` (every ``mail.outbox_poll_seconds``, and again at once while a batch was
  full), with an SMTP sender and the SMS sender its settings call for;
- the ``Inbox`` when ``imap_enabled`` (it waits in IDLE for at most the time the mailbox
  gives it, so check-ins stay on time);
- the mail part of the self-test: each enabled component is checked on the probe policy
  (``actors.mail.probe_policy``): real traffic that succeeded counts as a pass, a probe
  connects at most once a minute per provider (``ProbeLimiter``, shared by the process).

Faults it can name become diagnostics in the self-test's result (and so ``SelfTestFailed``
events and failed check-ins); only a bug raises, and a raise crashes the mailbox.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from sqlalchemy import Engine, Select, func, select
from sqlalchemy.exc import SQLAlchemyError

from actors import practice_db, progress
from actors.fence import StaleIncarnationError
from actors.mail import imap_session, outcome_events, smtp_transport
from actors.mail.imap_session import ImapError, ImapSession
from actors.mail.inbox import Inbox
from actors.mail.inbox_progress import (
    InboxWatch,
    looked,
    passed,
    said,
    stall_after,
    stall_words,
    stalled_for,
)
from actors.mail.oauth import (
    DelegatedSource,
    OAuthEndpoints,
    TokenSource,
    TokenSources,
    save_refresh_token,
)
from actors.mail.outbox import Outbox
from actors.mail.outbox_row import RowProblem
from actors.mail.probe_policy import ProbeState, after_check, decide_probe
from actors.mail.refused_rows import parked_lines, refused_lines
from actors.mail.sender import OutgoingMessage, Sender, SendOutcome
from actors.mail.settings import EmailSettings, EmailSettingsError, read_settings_plain
from actors.mail.sign_in_expiry import expiry_diagnostic
from actors.mail.sms import (
    HttpGateway,
    HttpSmsSender,
    SmsGatewayError,
    parse_gateway,
    probe_gateway,
    sms_sender_for,
)
from actors.mail.smtp_transport import SmtpSender
from actors.mail.stored_secrets import NO_KEYS, Secrets, SecretUnreadable
from actors.practice_schema import email_messages
from actors.statements import constant, statement
from config import MailSettings
from config.secret_box import SecretError
from config.settings import OAuthSettings
from events.clock import Clock
from events.types import (
    Diagnostic,
    Event,
    InboxConnectionLost,
    MessageDeliveryUncertain,
    MessageParked,
    MessageReceived,
    OutboxBackoffCleared,
)

log = logging.getLogger(__name__)

SETTINGS_EVERY = 30.0
"""Seconds between reads of ``email_settings``: a change made by the wizard or the
practice software takes effect within this long (at the next self-test after it)."""

HELD_UNTIL_CORRECTED = "mail waits in the outbox until it is corrected"
"""The end of ``Outbox.held`` when a setting (the send window) cannot be used: a fault."""


def not_set_up(db: str, waiting: int) -> str:
    """The diagnostic when email is on, no SMTP server is set and mail waits for it."""
    mail = "1 message waits" if waiting == 1 else f"{waiting} messages wait"
    return (
        f"Email is not set up for this practice: no mail server (SMTP) is set, and {mail} "
        f"in the outbox. Set it up with the Email Setup Wizard: email-service setup --db {db}"
    )


class _Watched:
    """A ``Sender`` that tells the self-test what each attempt said about its server
    (``SendOutcome.server``): real traffic is the best check of a component."""

    def __init__(
        self, inner: Sender, component: str, report: Callable[[str, SendOutcome], None]
    ) -> None:
        self.inner = inner
        self.resend_uncertain = inner.resend_uncertain
        self._component = component
        self._report = report

    def send(self, message: OutgoingMessage, on_wire: Callable[[], None]) -> SendOutcome:
        outcome = self.inner.send(message, on_wire)
        self._report(self._component, outcome)
        return outcome

    def close(self) -> None:
        self.inner.close()


ProbeKey = tuple[str, str, int, str]
"""(component, host, port, user name): one practice's account at one provider."""


class ProbeLimiter:
    """When each practice's provider account was last probed; shared by the process, so a
    restarting mailbox never probes its provider more than once a minute. Keyed by the
    account too: two practices at one provider are two customers of it, each promised at
    most one probe connection a minute."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[ProbeKey, datetime] = {}
        self._granted: set[str] = set()
        self._reasons: dict[ProbeKey, str] = {}

    def grant(self, db: str) -> None:
        """A person asked to restart ``db`` (after fixing its settings, typically): its next
        incarnation may probe once at once, even within the minute, and sends at once the
        outbox rows that wait only because the server could not be used
        (``Outbox.retry_now``). Bounded by people's requests, which coalesce; a crash loop
        gets no such grant."""
        with self._lock:
            self._granted.add(db)

    def take_grant(self, db: str) -> bool:
        """Use ``db``'s grant if it has one."""
        with self._lock:
            if db in self._granted:
                self._granted.discard(db)
                return True
            return False

    def last(self, key: ProbeKey) -> datetime | None:
        """When ``key`` was last connected to, or None."""
        with self._lock:
            return self._last.get(key)

    def connected(self, key: ProbeKey, at: datetime) -> None:
        """Record a probe connection to ``key`` at ``at``."""
        with self._lock:
            self._last[key] = at

    def outcome(self, key: ProbeKey, reason: str) -> None:
        """Record what the probe of ``key`` found ("" = it passed)."""
        with self._lock:
            self._reasons[key] = reason

    def last_reason(self, key: ProbeKey) -> str | None:
        """What the last probe of ``key`` found, or None if it was never probed."""
        with self._lock:
            return self._reasons.get(key)


@dataclass
class _Component:
    """One checked component's probe state, last outcome and traffic."""

    state: ProbeState = field(default_factory=ProbeState)
    reason: str = ""  # why the last check failed ("" when it passed)
    traffic_ok_at: datetime | None = None


@dataclass(frozen=True)
class MailDeps:
    """What the service gives every incarnation's mail work."""

    mail: MailSettings
    probe_seconds: float
    limiter: ProbeLimiter
    local_zone: tzinfo
    report_depth: Callable[[str, int], None] = lambda _db, _n: None
    tokens: TokenSources | None = None  # OAuth 2.0 access tokens, shared by the process
    secrets: Secrets = NO_KEYS
    """Decrypts the secret columns with the host's key file (``service.key_file``)."""
    checkin_seconds: float = 15.0
    """``health.checkin_seconds``: part of the bound on an inbox's passes
    (``actors.mail.inbox_progress``)."""


class MailWork:
    """The outbox, the inbox and the mail self-test of one incarnation."""

    def __init__(
        self,
        db: str,
        incarnation: int,
        engine: Callable[[], Engine],
        append: Callable[[Sequence[Event]], None],
        clock: Clock,
        deps: MailDeps,
        flush: Callable[[], None] = lambda: None,
        *,
        must_yield: Callable[[], bool] = lambda: False,
        record: Callable[[Sequence[Event]], None] = lambda _events: None,
    ) -> None:
        self._db = db
        self._incarnation = incarnation
        self._engine = engine
        self._append = append
        self._flush = flush
        self._must_yield = must_yield
        self._record = record
        self._clock = clock
        self._deps = deps
        self._settings: EmailSettings | None = None
        self._settings_error = ""
        self._secret_error: SecretUnreadable | None = None
        self._outbox: Outbox | None = None
        self._senders: dict[str, Sender] = {}
        self._sms_error = ""
        self._recovered = False
        self._events_recovered = False
        self._inbox: Inbox | None = None
        self._inbox_error = ""
        self._inbox_retry_at = 0.0
        self._inbox_watch: InboxWatch | None = None  # its passes, while there is an inbox
        self._stall_after = stall_after(
            deps.mail.inbox_poll_seconds, deps.checkin_seconds, SETTINGS_EVERY
        )
        self._next_outbox = 0.0
        self._components: dict[str, _Component] = {}
        self._settings_read_at: float | None = None
        self._last_depth = 0
        self._refused: list[tuple[RowProblem, str]] = []  # rows refused since the self-test
        self._parked: list[MessageParked] = []  # imports parked since the self-test
        self._granted = deps.limiter.take_grant(db)  # one immediate probe per component
        # ... and the rows that wait only because the server could not be used go at once
        self._retry_now = self._granted
        self._tokens = deps.tokens or TokenSources(
            OAuthEndpoints(OAuthSettings(), deps.mail.io_timeout_seconds), clock
        )
        self._token_source: TokenSource | None = None

    # --- settings -----------------------------------------------------------------------

    def refresh_settings(self) -> None:
        """Read ``email_settings`` again; rebuild the senders and the inbox if it changed.

        A database that does not answer keeps the settings as they were (the database's
        own self-test reports it); a row that cannot be used is a diagnostic. So is a
        secret that cannot be decrypted (no key, another host's key, altered): the
        database is not set up until it is entered again or the key file restored.
        """
        try:
            # Twice a minute: compiling it again costs less than keeping it compiled in
            # each of a thousand engines' SQL caches. One row: no transaction around it.
            with practice_db.one_read(self._engine()) as conn:
                settings = read_settings_plain(conn)
            if settings is not None:
                settings = self._deps.secrets.open(settings, self._db)
        except EmailSettingsError as exc:
            self._settings_error = str(exc)
            self._secret_error = None
            settings = None
        except SecretUnreadable as exc:
            self._settings_error = ""
            self._secret_error = exc
            settings = None
        except SQLAlchemyError:
            return
        else:
            self._settings_error = ""
            self._secret_error = None
        if settings == self._settings:
            return
        if self._own_rotation(settings):
            self._settings = settings  # our saved refresh token read back: nothing to redo
            return
        self._settings = settings
        self._rebuild()

    def _own_rotation(self, settings: EmailSettings | None) -> bool:
        """Whether ``settings`` differ from the current ones only by a refresh token the
        token source held (its saved replacement read back)."""
        old, source = self._settings, self._token_source
        if settings is None or old is None or not isinstance(source, DelegatedSource):
            return False
        return (
            source.is_own(settings.oauth_refresh_token)
            and dataclasses.replace(settings, oauth_refresh_token=old.oauth_refresh_token) == old
        )

    def _save_refresh_token(self, token: str) -> None:
        """Save a refresh token the provider replaced (the old one stops working),
        encrypted; as plain text only when this host has no usable key (the replaced token
        was read, so it was plain too, and losing the new one would end the sign-in)."""
        try:
            stored = self._deps.secrets.encrypt_for_storage("oauth_refresh_token", token)
        except SecretError as exc:
            log.warning("%s: the new OAuth refresh token is saved unencrypted: %s", self._db, exc)
            stored = token
        try:
            with self._engine().begin() as conn:
                save_refresh_token(conn, stored)
        except SQLAlchemyError as exc:
            # The source keeps the new token and saves again at its next rotation.
            log.warning(
                "%s: the new OAuth refresh token could not be saved (%s)",
                self._db,
                type(exc).__name__,
            )

    def _tokens_for(self, settings: EmailSettings) -> TokenSource | None:
        if not settings.uses_oauth:
            return None
        return self._tokens.for_settings(self._db, settings, self._save_refresh_token)

    def _rebuild(self) -> None:
        self._close_senders()
        if self._inbox is not None:
            self._inbox.close()
            self._inbox = None
            self._inbox_watch = None
        settings = self._settings
        self._senders = {}
        self._sms_error = ""
        self._token_source = None
        if settings is None:
            return
        tokens = self._token_source = self._tokens_for(settings)
        timeout = self._deps.mail.io_timeout_seconds
        email: Sender | None = None
        if settings.smtp_configured:
            smtp = SmtpSender(
                settings,
                timeout=timeout,
                clock=self._clock,
                ca_file=self._deps.mail.ca_file,
                tokens=tokens,
            )
            email = _Watched(smtp, "smtp", self._sent)
            self._senders["email"] = email
        try:
            sms = sms_sender_for(settings, email, timeout, clock=self._clock)
        except SmsGatewayError as exc:
            self._sms_error = str(exc)
        else:
            if isinstance(sms, HttpSmsSender):
                sms = _Watched(sms, "sms", self._sent)
            # An email-to-SMS gateway sends through the watched SMTP sender: its faults
            # are the smtp component's.
            if sms is not None:
                self._senders["sms"] = sms
        if not self._senders:
            self._outbox = None  # nothing to send with: queued mail waits, nothing is lost
        elif self._outbox is None:
            self._outbox = Outbox(
                self._engine(),
                self._incarnation,
                settings,
                self._deps.mail,
                self._senders,
                self._observe,
                self._clock,
                self._deps.local_zone,
                durable=self._flush,
                must_yield=self._must_yield,
            )
        else:
            self._outbox.use_settings(settings, self._senders)
        if settings.imap_enabled and settings.imap_host:
            self._inbox = Inbox(
                self._engine(),
                self._incarnation,
                settings,
                self._deps.mail,
                self._observe,
                self._clock,
                open_session=lambda s, m, c, readonly: ImapSession.open(
                    s, m, c, readonly=readonly, tokens=tokens
                ),
                must_yield=self._must_yield,
            )
            self._inbox_watch = passed(self._clock.monotonic())  # its first turn is due
        self._next_outbox = 0.0  # look at the outbox at once with the new settings

    def _close_senders(self) -> None:
        for sender in self._senders.values():
            with contextlib.suppress(Exception):
                sender.close()

    # --- the steps ----------------------------------------------------------------------

    def run_outbox(self) -> float:
        """Send what is due when the outbox's turn has come; return seconds to its next."""
        now = self._clock.monotonic()
        poll = self._deps.mail.outbox_poll_seconds
        self._recover_events()
        if self._outbox is None:
            return SETTINGS_EVERY  # no way of sending is set up: look again with the settings
        if now < self._next_outbox:
            return max(0.0, self._next_outbox - now)
        if not self._recovered:
            # Uncertain rows' events are durable before the rows are requeued (recover).
            self._outbox.recover()
            self._recovered = True
        if self._retry_now:
            self._retry_now = False
            cleared = self._outbox.retry_now()
            if cleared:
                log.info(
                    "%s: restart asked for: %d waiting message(s) tried at once", self._db, cleared
                )
                self._append([OutboxBackoffCleared(self._incarnation, cleared)])
        batch = self._deps.mail.outbox_batch
        handled = self._outbox.send_due()
        self._refused += self._outbox.take_refused()
        full = handled >= batch or self._outbox.yielded  # more is due: again at once
        if handled or self._outbox.held or self._last_depth:
            self._report_depth()  # else nothing was waiting and nothing is: still 0
        delay = 0.0 if full else poll
        resume = self._outbox.resume_at
        if not full and resume is not None:
            until = (resume - self._clock.now()).total_seconds()
            delay = max(0.0, min(poll, until)) if until > 0 else poll
        self._next_outbox = now + delay
        return delay

    def outbox_due_in(self) -> float:
        """Seconds until the outbox's next turn (0 when it is due)."""
        return max(0.0, self._next_outbox - self._clock.monotonic())

    @property
    def inbox_connected(self) -> bool:
        """Whether incoming mail is on and its IMAP connection is open."""
        return self._inbox is not None and self._inbox.connected

    def run_inbox(self, wait_seconds: float) -> float | None:
        """Import new mail, waiting in IDLE up to ``wait_seconds``; return seconds until the
        inbox wants to run again (0: at once), or None when incoming mail is off."""
        self._recover_events()
        if self._inbox is None:
            return None
        now = self._clock.monotonic()
        if now < self._inbox_retry_at:
            return self._inbox_retry_at - now
        was_connected = self._inbox.connected
        try:
            self._inbox.poll(wait_seconds=wait_seconds)
        except ImapError as exc:
            self._inbox_watch = passed(self._clock.monotonic())  # it asked: its own fault
            if was_connected:  # a working connection broke: a change worth a record
                self._observe([InboxConnectionLost(self._incarnation, str(exc))])
            self._inbox_error = str(exc)
            self._traffic("imap", ok=False)
            self._inbox_retry_at = now + self._deps.mail.inbox_poll_seconds
            return self._deps.mail.inbox_poll_seconds
        self._inbox_error = ""
        self._inbox_watch = passed(self._clock.monotonic())
        self._traffic("imap", ok=True)
        if self._inbox.yielded:
            return 0.0  # more waits on the server: again right after the self-test
        if self._inbox.waits_in_idle:
            return 0.0  # back into IDLE at the next tick
        self._inbox_retry_at = now + self._deps.mail.inbox_poll_seconds
        return self._deps.mail.inbox_poll_seconds

    def _report_depth(self) -> None:
        try:
            with self._engine().connect() as conn:
                depth = conn.execute(_OUTBOX_DEPTH).scalar_one()
        except SQLAlchemyError:
            return
        self._last_depth = int(depth)
        self._deps.report_depth(self._db, self._last_depth)

    # --- what traffic tells the self-test -----------------------------------------------

    def _recover_events(self) -> None:
        """Once per incarnation, before its first mail step: append the outcome events a
        kill kept from the log (``actors.mail.outcome_events``)."""
        if self._events_recovered:
            return
        count = outcome_events.recover(self._engine(), self._incarnation, self._append, self._flush)
        self._events_recovered = True
        if count:
            log.info("%s: appended %d outcome event(s) a stop kept from the log", self._db, count)

    def _observe(self, events: Sequence[Event]) -> None:
        try:
            self._append(events)
        except StaleIncarnationError:
            # Replaced meanwhile: these are outcomes its committed transactions stored
            # (mail that went, mail that came); the log keeps them for the record.
            self._record(events)
            raise
        owed = outcome_events.row_ids(events)
        if owed or any(isinstance(e, MessageDeliveryUncertain) for e in events):
            self._flush()  # durable before the row can be resent (see run_outbox)
        if owed:
            outcome_events.clear(self._engine(), owed)  # their events are in the log now
        for event in events:
            if isinstance(event, MessageReceived):
                self._traffic("imap", ok=True)
            elif isinstance(event, MessageParked):
                self._parked.append(event)

    def _sent(self, component: str, outcome: SendOutcome) -> None:
        """What one attempt said about its server (``_Watched``): the server answered
        (even 4xx or 5xx for this message or one recipient: the message's problem, not
        the service's), or it could not be used."""
        if outcome.server == "ok":
            self._traffic(component, ok=True)
        elif outcome.server == "fault":
            self._traffic(component, ok=False, reason=outcome.detail)

    def _traffic(self, component: str, *, ok: bool, reason: str = "") -> None:
        c = self._components.setdefault(component, _Component())
        if ok:
            c.traffic_ok_at = self._clock.now().astimezone(UTC)
        else:
            # Failed real traffic: failing with its words until real traffic succeeds or
            # a probe (as soon as the provider allows) says otherwise.
            c.state = ProbeState(c.state.last_check_at, last_ok=False)
            c.reason = reason
            c.traffic_ok_at = None

    # --- the self-test's mail part ------------------------------------------------------

    def check(self) -> tuple[tuple[str, ...], tuple[Diagnostic, ...]]:
        """Check each enabled component now if the probe policy says so; return what was
        checked and what is wrong (the last known outcome for those not probed now), then
        a warning line for each outbox row refused as written since the last check
        (``actors.mail.refused_rows``: named, not a fault)."""
        components, diagnostics = self._check_components()
        warnings, self._refused = refused_lines(self._refused), []
        if self._parked:
            parked, self._parked = self._parked, []
            subjects = self._subjects([e.row_id for e in parked if e.row_id is not None])
            warnings += parked_lines([(e, subjects.get(e.row_id or 0, "")) for e in parked])
        return components, diagnostics + warnings

    def _check_components(self) -> tuple[tuple[str, ...], tuple[Diagnostic, ...]]:
        now = self._clock.monotonic()
        if self._settings_read_at is None or now - self._settings_read_at >= SETTINGS_EVERY:
            self._settings_read_at = now
            self.refresh_settings()
        settings = self._settings
        diagnostics: list[Diagnostic] = []
        if self._settings_error:
            diagnostics.append(Diagnostic("service", "error", self._settings_error))
        if self._secret_error is not None:
            unreadable = self._secret_error
            diagnostics.append(Diagnostic(unreadable.component, "error", str(unreadable)))
        if settings is None:
            return (), tuple(diagnostics)
        components: list[str] = []
        if settings.sending_enabled and not settings.smtp_configured:
            waiting = self._waiting_without_a_sender()
            if waiting:
                components.append("smtp")
                diagnostics.append(Diagnostic("smtp", "error", not_set_up(self._db, waiting)))
        if settings.smtp_configured:
            components.append("smtp")
            reason = self._checked(
                ("smtp", settings.smtp_host.lower(), settings.smtp_port, settings.smtp_username),
                self._probe_smtp,
            )
            if reason:
                diagnostics.append(Diagnostic("smtp", "error", reason))
            held = self._outbox.held if self._outbox is not None else ""
            if held.endswith(HELD_UNTIL_CORRECTED):  # a setting that cannot be used
                diagnostics.append(Diagnostic("smtp", "error", held))
        if settings.imap_enabled:
            components.append("imap")
            reason = self._checked(
                ("imap", settings.imap_host.lower(), settings.imap_port, settings.imap_username),
                self._probe_imap,
            )
            if reason:
                diagnostics.append(Diagnostic("imap", "error", reason))
            stalled = self._inbox_stalled()
            if stalled and not reason:
                diagnostics.append(Diagnostic("imap", "error", stalled))
        if settings.sms_enabled:
            components.append("sms")
            if self._sms_error:
                diagnostics.append(Diagnostic("sms", "error", self._sms_error))
            elif isinstance(self._senders.get("sms"), _Watched):  # an HTTP gateway
                gateway = parse_gateway(settings.sms_gateway)
                assert isinstance(gateway, HttpGateway)  # only an HTTP gateway is watched
                reason = self._checked(
                    ("sms", gateway.host.lower(), gateway.port or 0, settings.sms_username),
                    self._probe_sms,
                )
                if reason:
                    diagnostics.append(Diagnostic("sms", "error", reason))
        expiry = expiry_diagnostic(settings, self._clock.now())  # a known sign-in expiry
        if expiry is not None:
            diagnostics.append(expiry)
        return tuple(components), tuple(diagnostics)

    def _inbox_stalled(self) -> str:
        """The diagnostic when the inbox has stopped ending passes (``inbox_progress``);
        "" while it makes progress, or when there is no inbox (incoming mail off, or its
        settings not usable: those say so themselves)."""
        if self._inbox is None or self._inbox_watch is None:
            return ""
        now = self._clock.monotonic()
        self._inbox_watch = looked(self._inbox_watch, now, self._stall_after)
        quiet = stalled_for(self._inbox_watch, now, self._stall_after)
        if quiet is None:
            return ""
        if not self._inbox_watch.said:
            self._inbox_watch = said(self._inbox_watch)
            log.warning("%s: the inbox has not run for %.0f s", self._db, quiet)
        return stall_words(quiet)

    def _subjects(self, row_ids: list[int]) -> dict[int, str]:
        """The subjects of these rows, for the parked imports' warning lines ({} when the
        database does not answer: its own self-test says so)."""
        if not row_ids:
            return {}
        try:
            with self._engine().connect() as conn:
                found = conn.execute(_subjects_of(row_ids))
                return {int(i): str(s or "") for i, s in found}
        except SQLAlchemyError:
            return {}

    def _waiting_without_a_sender(self) -> int:
        """Queued outbox rows of channels nothing can send (0 when the database does not
        answer: its own self-test says so)."""
        query = _without_a_sender(sorted(self._senders))
        try:
            with self._engine().connect() as conn:
                return int(conn.execute(query).scalar_one())
        except SQLAlchemyError:
            return 0

    def _checked(self, key: ProbeKey, probe: Callable[[], str]) -> str:
        c = self._components.setdefault(key[0], _Component())
        now = self._clock.now().astimezone(UTC)
        last_connect = self._deps.limiter.last(key)
        if self._granted and c.state.last_ok is None:
            last_connect = None  # a person's restart: check now, once
        action = decide_probe(
            c.state,
            now,
            traffic_ok_at=c.traffic_ok_at,
            last_connect_at=last_connect,
            probe_seconds=self._deps.probe_seconds,
        )
        if action == "traffic":
            c.state, c.reason = after_check(c.state, now, ok=True), ""
        elif action == "probe":
            self._deps.limiter.connected(key, now)  # held from now: no second one meanwhile
            c.reason = probe()
            progress.beat()  # a probe is one wait on the server, within its timeout
            # ... and the minute counts from its end: a connection that took a moment
            # to be accepted must not bring the next one closer than a minute after it.
            self._deps.limiter.connected(key, self._clock.now().astimezone(UTC))
            c.state = after_check(c.state, now, ok=not c.reason)
            self._deps.limiter.outcome(key, c.reason)
        elif c.state.last_ok is False and not c.reason:
            c.reason = "the last attempt to use the server failed; checking again shortly"
        elif c.state.last_ok is None:
            # Not checked yet in this incarnation and the provider was probed under a
            # minute ago: say so rather than pass unchecked.
            c.reason = self._deps.limiter.last_reason(key) or ""
        return c.reason

    def _probe_smtp(self) -> str:
        assert self._settings is not None
        mail = self._deps.mail
        result = smtp_transport.probe(
            self._settings,
            timeout=mail.io_timeout_seconds,
            ca_file=mail.ca_file,
            tokens=self._token_source,
        )
        return "" if result.ok else result.reason

    def _probe_sms(self) -> str:
        assert self._settings is not None
        return probe_gateway(self._settings, self._deps.mail.io_timeout_seconds)

    def _probe_imap(self) -> str:
        assert self._settings is not None
        if self._inbox is not None and self._inbox_error == "" and self._inbox.connected:
            return ""  # a live IDLE connection counts
        result = imap_session.probe(self._settings, self._deps.mail, self._token_source)
        return "" if result.ok else result.reason

    def close(self) -> None:
        """Release the connections (never the shared engine)."""
        self._close_senders()
        if self._inbox is not None:
            self._inbox.close()


_OUTBOX_DEPTH = constant(
    "work.outbox_depth",
    select(func.count())
    .select_from(email_messages)
    .where(
        email_messages.c.folder == "outbox",
        email_messages.c.status.in_(("queued", "sending")),
    ),
)
"""How many outbox rows wait or are being sent (the ``/metrics`` depth)."""


@statement("work.without_a_sender", ["email"])
def _without_a_sender(channels: list[str]) -> Select[int]:
    """How many queued outbox rows are of none of ``channels``."""
    m = email_messages
    query = select(func.count()).where(m.c.folder == "outbox", m.c.status == "queued")
    return query.where(m.c.channel.not_in(channels)) if channels else query


@statement("work.subjects", [41, 42])
def _subjects_of(row_ids: list[int]) -> Select[int, str]:
    """The id and subject of these rows (the parked imports' warning lines)."""
    m = email_messages
    return select(m.c.id, m.c.subject).where(m.c.id.in_(row_ids))
