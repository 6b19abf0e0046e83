"""The outbox against real practice databases and real SMTP servers."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event, select, update

from actors.fence import StaleIncarnationError
from actors.mail import backoff
from actors.mail.outbox import UNCERTAIN_HELD, Outbox, RetryDelay
from actors.mail.sender import OutgoingMessage, Sender, SendOutcome
from actors.mail.settings import EmailSettings
from actors.mail.smtp_transport import SmtpSender
from actors.practice_db import claim_incarnation
from actors.practice_schema import email_messages
from events.clock import FakeClock
from events.types import MessageDeliveryUncertain, MessageSendFailed, MessageSent
from tests.fault_proxy import FaultProxy
from tests.mail_helpers import (
    INCARNATION,
    TIMEOUT,
    EventLog,
    claimed_engine,
    db_now,
    mail_settings,
    queue_row,
    read_row,
    settings_for,
    smtp_settings,
    wait_until,
)
from tests.servers import fresh_mariadb_database, fresh_postgres_database
from tests.smtp_servers import RecordingSmtpServer, SmtpSinkServer

pytest_plugins = ["tests.conftest_mail"]

MakeServer = Callable[..., RecordingSmtpServer]
MakeProxy = Callable[[str, int], FaultProxy]


def no_wait(_attempts: int, _jitter: float) -> float:
    return 0.0


def outbox_for(
    engine: Engine,
    settings: EmailSettings,
    clock: FakeClock,
    *,
    senders: Mapping[str, Sender] | None = None,
    incarnation: int = INCARNATION,
    retry_delay: RetryDelay = no_wait,
    zone: Any = UTC,
) -> tuple[Outbox, EventLog]:
    """An outbox sending email through ``settings``' server, and its event log."""
    log = EventLog()
    if senders is None:
        senders = {"email": SmtpSender(settings, timeout=TIMEOUT, clock=clock)}
    outbox = Outbox(
        engine,
        incarnation,
        settings,
        mail_settings(),
        senders,
        log,
        clock,
        zone,
        random=random.Random(4),
        retry_delay=retry_delay,
    )
    return outbox, log


def make_due(engine: Engine, row_id: int) -> None:
    """Let a row's backoff pass (the test's stand-in for waiting)."""
    with engine.begin() as conn:
        conn.execute(
            update(email_messages).where(email_messages.c.id == row_id).values(next_attempt_at=None)
        )


def leave_sending(engine: Engine, row_id: int, **values: Any) -> None:
    """Put a row where a dead incarnation's crash left it."""
    with engine.begin() as conn:
        conn.execute(
            update(email_messages)
            .where(email_messages.c.id == row_id)
            .values(status="sending", claimed_incarnation=INCARNATION - 1, **values)
        )


# --- the happy path --------------------------------------------------------------------


def test_a_queued_row_is_sent_and_filed_in_sent(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine)
    outbox, log = outbox_for(outbox_engine, settings_for(smtp_server), clock)
    assert outbox.send_due() == 1
    row = read_row(outbox_engine, row_id)
    assert (row["folder"], row["status"], row["attempts"]) == ("sent", "sent", 1)
    assert row["sent_at"] is not None
    assert smtp_server.message_ids() == [row["message_id"]]
    assert log.events == [MessageSent(INCARNATION, row_id, row["message_id"], 1)]


def test_a_built_message_carries_the_practices_name_and_both_bodies(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    queue_row(outbox_engine, cc_addrs="Nurse <nurse@example.org>", body_html="<p>See you</p>")
    outbox_for(outbox_engine, settings_for(smtp_server), clock)[0].send_due()
    [received] = smtp_server.messages
    assert received.rcpt_tos == ("patient@example.org", "nurse@example.org")
    assert b"From: Smile Dental <reception@practice.example>" in received.content
    assert b"multipart/alternative" in received.content


def test_a_batch_uses_one_connection(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    for _ in range(5):
        queue_row(outbox_engine)
    outbox_for(outbox_engine, settings_for(smtp_server), clock)[0].send_due()
    assert (len(smtp_server.messages), smtp_server.connections) == (5, 1)


def test_a_raw_message_goes_as_it_is_with_its_own_message_id(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    raw = b"Message-ID: <own@lab.example>\r\nSubject: lab results\r\n\r\nAttached.\r\n"
    row_id = queue_row(outbox_engine, raw=raw)
    outbox_for(outbox_engine, settings_for(smtp_server), clock)[0].send_due()
    assert read_row(outbox_engine, row_id)["message_id"] == "<own@lab.example>"
    assert smtp_server.messages[0].content == raw


def test_a_raw_message_without_a_message_id_gets_the_rows(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine, raw=b"Subject: lab results\r\n\r\nAttached.\r\n")
    outbox_for(outbox_engine, settings_for(smtp_server), clock)[0].send_due()
    assert smtp_server.message_ids() == [read_row(outbox_engine, row_id)["message_id"]]


# --- replies ---------------------------------------------------------------------------


def test_the_message_id_is_fixed_before_the_first_attempt(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine)
    smtp_server.script.data_queue.append("451 4.3.0 try again later")
    outbox = outbox_for(outbox_engine, settings_for(smtp_server), clock)[0]
    outbox.send_due()
    fixed = read_row(outbox_engine, row_id)["message_id"]
    outbox.send_due()
    assert fixed is not None
    assert smtp_server.message_ids() == [fixed]


def test_a_4xx_retries_with_a_growing_next_attempt_at(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine)
    smtp_server.script.data_for["patient@example.org"] = "451 4.3.0 try again later"
    outbox = outbox_for(
        outbox_engine, settings_for(smtp_server), clock, retry_delay=backoff.retry_delay
    )[0]
    outbox.send_due()
    after_first = db_now(outbox_engine)
    first = read_row(outbox_engine, row_id)
    make_due(outbox_engine, row_id)
    before_second = db_now(outbox_engine)
    outbox.send_due()
    second = read_row(outbox_engine, row_id)
    assert (first["status"], second["status"], second["attempts"]) == ("queued", "queued", 2)
    # The first wait is at most 60 s (+25 % jitter) after it was set, the second at least 120 s.
    assert first["next_attempt_at"] - after_first <= timedelta(seconds=75)
    assert second["next_attempt_at"] - before_second >= timedelta(seconds=120)
    assert "451 4.3.0 try again later" in second["last_error"]


def test_a_row_retried_too_often_fails(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine, attempts=backoff.MAX_ATTEMPTS - 1)
    smtp_server.script.data_queue.append("451 4.3.0 try again later")
    outbox_for(outbox_engine, settings_for(smtp_server), clock)[0].send_due()
    row = read_row(outbox_engine, row_id)
    assert row["status"] == "failed"
    assert row["last_error"].startswith(f"gave up after {backoff.MAX_ATTEMPTS} attempts")


def test_a_5xx_fails_the_row_with_the_servers_words(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine)
    smtp_server.script.data_queue.append("554 5.7.1 message rejected as spam")
    outbox, log = outbox_for(outbox_engine, settings_for(smtp_server), clock)
    outbox.send_due()
    row = read_row(outbox_engine, row_id)
    assert (row["folder"], row["status"]) == ("outbox", "failed")
    assert "554 5.7.1 message rejected as spam" in row["last_error"]
    [failed] = log.of(MessageSendFailed)
    assert isinstance(failed, MessageSendFailed)
    assert failed.permanent


def test_partly_refused_recipients_are_recorded(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine, cc_addrs="gone@example.org; other@example.org")
    smtp_server.script.rcpt["gone@example.org"] = "550 5.1.1 no such user"
    outbox_for(outbox_engine, settings_for(smtp_server), clock)[0].send_due()
    row = read_row(outbox_engine, row_id)
    assert (row["status"], row["refused_recipients"]) == ("sent", "gone@example.org")
    assert smtp_server.messages[0].rcpt_tos == ("patient@example.org", "other@example.org")


def test_a_row_with_a_bad_address_fails(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine, to_addrs="patient at example dot org")
    outbox_for(outbox_engine, settings_for(smtp_server), clock)[0].send_due()
    row = read_row(outbox_engine, row_id)
    assert row["status"] == "failed"
    assert "is not an email address" in row["last_error"]


def test_events_never_carry_the_password(
    outbox_engine: Engine, make_smtp_server: MakeServer, clock: FakeClock
) -> None:
    server = make_smtp_server("none", {"reception": "right-Pa55"})
    queue_row(outbox_engine)
    settings = settings_for(server, smtp_username="reception", smtp_password="wr0ng-Pa55")
    outbox, log = outbox_for(outbox_engine, settings, clock)
    outbox.send_due()
    assert log.events
    assert "wr0ng-Pa55" not in repr(log.events)


# --- the lost reply ----------------------------------------------------------------------


def test_a_lost_reply_is_uncertain_and_resent_with_the_same_message_id(
    outbox_engine: Engine,
    smtp_sink: SmtpSinkServer,
    smtp_server: RecordingSmtpServer,
    clock: FakeClock,
) -> None:
    row_id = queue_row(outbox_engine)
    outbox, log = outbox_for(outbox_engine, settings_for(smtp_sink), clock)
    outbox.send_due()
    message_id = read_row(outbox_engine, row_id)["message_id"]
    assert log.of(MessageDeliveryUncertain) == [
        MessageDeliveryUncertain(INCARNATION, row_id, message_id)
    ]
    # The sink kept it; the practice's next server is the recording one.
    outbox_for(outbox_engine, settings_for(smtp_server), clock)[0].send_due()
    assert smtp_sink.stored_message_ids() == smtp_server.message_ids() == [message_id]


def test_a_cut_after_the_final_dot_gives_a_recorded_duplicate(
    outbox_engine: Engine,
    smtp_server: RecordingSmtpServer,
    make_proxy: MakeProxy,
    clock: FakeClock,
) -> None:
    proxy = make_proxy(smtp_server.host, smtp_server.port)
    proxy.cut_when(b"\r\n.\r\n")
    row_id = queue_row(outbox_engine)
    outbox, log = outbox_for(outbox_engine, smtp_settings(proxy.host, proxy.port), clock)
    outbox.send_due()
    wait_until(lambda: len(smtp_server.messages) == 1, "the server to store the message")
    outbox.send_due()
    row = read_row(outbox_engine, row_id)
    assert row["status"] == "sent"
    assert smtp_server.message_ids() == [row["message_id"]] * 2
    assert [type(e) for e in log.events] == [
        MessageDeliveryUncertain,
        MessageSendFailed,
        MessageSent,
    ]


# --- recovery ----------------------------------------------------------------------------


def test_recovery_requeues_a_row_that_never_reached_the_server(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine, message_id="<stuck@practice.example>")
    leave_sending(outbox_engine, row_id)
    outbox, log = outbox_for(outbox_engine, settings_for(smtp_server), clock)
    assert outbox.recover() == 1
    outbox.send_due()
    assert smtp_server.message_ids() == ["<stuck@practice.example>"]
    assert log.of(MessageDeliveryUncertain) == []


def test_recovery_resends_a_row_that_may_have_reached_the_server(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine, message_id="<wired@practice.example>")
    leave_sending(outbox_engine, row_id, wire_at=datetime(2026, 1, 5, 8, 59))
    outbox, log = outbox_for(outbox_engine, settings_for(smtp_server), clock)
    outbox.recover()
    assert log.events == [MessageDeliveryUncertain(INCARNATION, row_id, "<wired@practice.example>")]
    outbox.send_due()
    assert smtp_server.message_ids() == ["<wired@practice.example>"]


def test_recovery_makes_the_uncertain_event_durable_before_the_row_is_requeued(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine, message_id="<wired@practice.example>")
    leave_sending(outbox_engine, row_id, wire_at=datetime(2026, 1, 5, 8, 59))
    seen: list[tuple[int, str]] = []
    log = EventLog()

    def durable() -> None:  # the moment the log's commit is waited for
        seen.append((len(log.events), read_row(outbox_engine, row_id)["status"]))

    outbox = Outbox(
        outbox_engine,
        INCARNATION,
        settings_for(smtp_server),
        mail_settings(),
        {"email": SmtpSender(settings_for(smtp_server), timeout=TIMEOUT, clock=clock)},
        log,
        clock,
        UTC,
        durable=durable,
    )
    outbox.recover()
    assert seen == [(1, "sending")]  # event appended and waited for; row not yet requeued
    assert read_row(outbox_engine, row_id)["status"] == "queued"


def test_recovery_settles_rows_of_a_killed_process_that_had_the_same_incarnation(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    # A process killed before its MailboxStarted reached the log: its successor gets the
    # same incarnation number, and the rows it left in "sending" must still be settled.
    row_id = queue_row(outbox_engine, message_id="<same@practice.example>")
    leave_sending(outbox_engine, row_id)
    with outbox_engine.begin() as conn:
        conn.execute(
            update(email_messages)
            .where(email_messages.c.id == row_id)
            .values(claimed_incarnation=INCARNATION)
        )
    outbox, _ = outbox_for(outbox_engine, settings_for(smtp_server), clock)
    assert outbox.recover() == 1
    outbox.send_due()
    assert smtp_server.message_ids() == ["<same@practice.example>"]


class _HoldingSender(SmtpSender):
    """Email that is not resent automatically (as SMS is)."""

    resend_uncertain = False


def test_recovery_fails_an_uncertain_row_whose_sender_does_not_resend(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine, message_id="<wired@practice.example>")
    leave_sending(outbox_engine, row_id, wire_at=datetime(2026, 1, 5, 8, 59))
    settings = settings_for(smtp_server)
    holding = _HoldingSender(settings, timeout=TIMEOUT, clock=clock)
    outbox = outbox_for(outbox_engine, settings, clock, senders={"email": holding})[0]
    outbox.recover()
    row = read_row(outbox_engine, row_id)
    assert (row["status"], row["last_error"]) == ("failed", UNCERTAIN_HELD)


# --- the fence ---------------------------------------------------------------------------


def test_a_stale_incarnation_cannot_claim(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine)
    claim_incarnation(outbox_engine, INCARNATION + 1, "test-server", clock.now())
    outbox = outbox_for(outbox_engine, settings_for(smtp_server), clock)[0]
    with pytest.raises(StaleIncarnationError):
        outbox.send_due()
    assert read_row(outbox_engine, row_id)["status"] == "queued"


class _SupersededSender(SmtpSender):
    """Sends after a newer incarnation has claimed the database (a hung mailbox waking)."""

    def __init__(self, engine: Engine, settings: EmailSettings, clock: FakeClock) -> None:
        super().__init__(settings, timeout=TIMEOUT, clock=clock)
        self._engine = engine

    def send(self, message: OutgoingMessage, on_wire: Callable[[], None]) -> SendOutcome:
        claim_incarnation(self._engine, INCARNATION + 1, "test-server", datetime.now(UTC))
        return super().send(message, on_wire)


def test_a_stale_incarnation_cannot_update_a_claimed_row(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine)
    superseded = _SupersededSender(outbox_engine, settings_for(smtp_server), clock)
    outbox = outbox_for(
        outbox_engine, settings_for(smtp_server), clock, senders={"email": superseded}
    )[0]
    with pytest.raises(StaleIncarnationError):
        outbox.send_due()
    row = read_row(outbox_engine, row_id)
    assert (row["status"], row["wire_at"], smtp_server.messages) == ("sending", None, [])


class _ReplacedBeforeThe(SmtpSender):
    """Sends through a real server; a newer incarnation claims the database just before
    message number ``at`` of the batch (the watchdog or a person replaced this one)."""

    def __init__(self, engine: Engine, settings: EmailSettings, clock: FakeClock, at: int) -> None:
        super().__init__(settings, timeout=TIMEOUT, clock=clock)
        self._engine = engine
        self._at = at
        self.calls = 0

    def send(self, message: OutgoingMessage, on_wire: Callable[[], None]) -> SendOutcome:
        self.calls += 1
        if self.calls == self._at:
            claim_incarnation(self._engine, INCARNATION + 1, "test-server", datetime.now(UTC))
        return super().send(message, on_wire)


def test_a_replaced_incarnation_puts_no_further_message_on_the_wire_mid_batch(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    rows = [queue_row(outbox_engine) for _ in range(5)]
    replaced = _ReplacedBeforeThe(outbox_engine, settings_for(smtp_server), clock, at=3)
    outbox, log = outbox_for(
        outbox_engine, settings_for(smtp_server), clock, senders={"email": replaced}
    )
    with pytest.raises(StaleIncarnationError):
        outbox.send_due()
    # Two went before the replacement; the third was refused in its wire_at commit.
    assert len(smtp_server.messages) == 2
    statuses = [
        (read_row(outbox_engine, r)["status"], read_row(outbox_engine, r)["wire_at"]) for r in rows
    ]
    assert [status for status, _wire in statuses] == [
        "sent",
        "sent",
        "sending",
        "sending",
        "sending",
    ]
    assert all(wire is None for _status, wire in statuses[2:])
    # The second's answer came in and is stored although its commit was to ride with the
    # third's wire_at: recorded as sent, not left uncertain for the successor to resend.
    assert [e.row_id for e in log.of(MessageSent)] == rows[:2]


def test_the_successor_of_a_replaced_incarnation_sends_each_message_once(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    for _ in range(5):
        queue_row(outbox_engine)
    replaced = _ReplacedBeforeThe(outbox_engine, settings_for(smtp_server), clock, at=3)
    old = outbox_for(outbox_engine, settings_for(smtp_server), clock, senders={"email": replaced})
    with pytest.raises(StaleIncarnationError):
        old[0].send_due()
    successor, log = outbox_for(
        outbox_engine, settings_for(smtp_server), clock, incarnation=INCARNATION + 1
    )
    successor.recover()
    assert successor.send_due() == 3
    ids = smtp_server.message_ids()
    assert len(set(ids)) == len(ids) == 5  # five messages, none twice
    assert log.of(MessageDeliveryUncertain) == []


def test_a_batch_stops_when_the_selftest_is_due_and_puts_the_rest_back(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    rows = [queue_row(outbox_engine) for _ in range(5)]
    sent_before_due = 2
    outbox = Outbox(
        outbox_engine,
        INCARNATION,
        settings_for(smtp_server),
        mail_settings(),
        {"email": SmtpSender(settings_for(smtp_server), timeout=TIMEOUT, clock=clock)},
        EventLog(),
        clock,
        UTC,
        must_yield=lambda: len(smtp_server.messages) >= sent_before_due,
    )
    assert outbox.send_due() == sent_before_due
    assert outbox.yielded
    after = [read_row(outbox_engine, r) for r in rows]
    assert [r["status"] for r in after] == ["sent", "sent", "queued", "queued", "queued"]
    assert [r["attempts"] for r in after[2:]] == [0, 0, 0]  # no attempt was spent on them


def test_a_yielded_batch_goes_on_where_it_stopped_and_sends_each_message_once(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    for _ in range(5):
        queue_row(outbox_engine)
    outbox = Outbox(
        outbox_engine,
        INCARNATION,
        settings_for(smtp_server),
        mail_settings(),
        {"email": SmtpSender(settings_for(smtp_server), timeout=TIMEOUT, clock=clock)},
        EventLog(),
        clock,
        UTC,
        must_yield=lambda: True,  # the self-test is always due: one message per batch
    )
    batches = [outbox.send_due() for _ in range(6)]
    assert batches == [1, 1, 1, 1, 1, 0]
    ids = smtp_server.message_ids()
    assert len(set(ids)) == len(ids) == 5  # five messages, none twice


# --- one commit per message ----------------------------------------------------------------


class _Watching(SmtpSender):
    """A real SMTP sender that notes every row's status just before each final dot."""

    def __init__(self, engine: Engine, settings: EmailSettings, clock: FakeClock) -> None:
        super().__init__(settings, timeout=TIMEOUT, clock=clock)
        self._engine = engine
        self.seen: list[dict[int, str]] = []

    def send(self, message: OutgoingMessage, on_wire: Callable[[], None]) -> SendOutcome:
        def watched() -> None:
            on_wire()
            m = email_messages
            with self._engine.connect() as conn:
                self.seen.append(dict(conn.execute(select(m.c.id, m.c.status)).all()))

        return super().send(message, watched)


def test_a_row_is_stored_as_sent_before_the_next_rows_final_dot(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    first, second = queue_row(outbox_engine), queue_row(outbox_engine)
    watching = _Watching(outbox_engine, settings_for(smtp_server), clock)
    outbox_for(outbox_engine, settings_for(smtp_server), clock, senders={"email": watching})[
        0
    ].send_due()
    assert watching.seen == [
        {first: "sending", second: "sending"},
        {first: "sent", second: "sending"},
    ]
    assert read_row(outbox_engine, second)["status"] == "sent"


def test_each_message_costs_one_commit(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    for _ in range(4):
        queue_row(outbox_engine)
    commits: list[object] = []
    event.listen(outbox_engine, "commit", commits.append)
    outbox_for(outbox_engine, settings_for(smtp_server), clock)[0].send_due()
    # The due rows' read, the claims, one per message (its wire_at with the previous
    # row's outcome), and the last row's outcome.
    assert len(commits) == 1 + 1 + 4 + 1


class _DiesOnTheSecond(SmtpSender):
    """A real SMTP sender whose thread "dies" (a bug) when the second message comes."""

    def __init__(self, settings: EmailSettings, clock: FakeClock) -> None:
        super().__init__(settings, timeout=TIMEOUT, clock=clock)
        self.calls = 0

    def send(self, message: OutgoingMessage, on_wire: Callable[[], None]) -> SendOutcome:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("the mailbox thread died")
        return super().send(message, on_wire)


def test_a_failure_mid_batch_still_stores_the_outcomes_already_answered(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    first, second = queue_row(outbox_engine), queue_row(outbox_engine)
    dying = _DiesOnTheSecond(settings_for(smtp_server), clock)
    outbox, log = outbox_for(
        outbox_engine, settings_for(smtp_server), clock, senders={"email": dying}
    )
    with pytest.raises(RuntimeError):
        outbox.send_due()
    rows = [read_row(outbox_engine, first), read_row(outbox_engine, second)]
    assert [(r["status"], r["wire_at"] is None) for r in rows] == [
        ("sent", False),
        ("sending", True),
    ]
    assert [e.row_id for e in log.events if isinstance(e, MessageSent)] == [first]


# --- holding mail ------------------------------------------------------------------------


def test_a_closed_send_window_sends_nothing_and_loses_nothing(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine)
    settings = settings_for(smtp_server, send_window="Sat 08:00-12:00")
    outbox = outbox_for(outbox_engine, settings, clock)[0]
    assert outbox.send_due() == 0
    assert (smtp_server.connections, read_row(outbox_engine, row_id)["status"]) == (0, "queued")
    assert outbox.resume_at == datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
    clock.advance((outbox.resume_at - clock.now()).total_seconds())
    assert outbox.send_due() == 1


def test_the_send_window_is_read_in_the_local_zone(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    # 09:00 UTC on Monday 5 January 2026 is 10:00 in Berlin.
    queue_row(outbox_engine)
    settings = settings_for(smtp_server, send_window="Mon 10:00-11:00")
    outbox = outbox_for(outbox_engine, settings, clock, zone=ZoneInfo("Europe/Berlin"))[0]
    assert outbox.send_due() == 1


def test_a_bad_send_window_holds_mail_and_says_why(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine)
    settings = settings_for(smtp_server, send_window="Mon-Fri 7-19")
    outbox = outbox_for(outbox_engine, settings, clock)[0]
    assert outbox.send_due() == 0
    assert outbox.held.startswith("send_window 'Mon-Fri 7-19':")
    assert read_row(outbox_engine, row_id)["status"] == "queued"


def test_sending_turned_off_sends_nothing(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    queue_row(outbox_engine)
    outbox = outbox_for(outbox_engine, settings_for(smtp_server, sending_enabled=False), clock)[0]
    assert (outbox.send_due(), smtp_server.connections) == (0, 0)


def test_the_throttle_lets_max_per_minute_through(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    for _ in range(5):
        queue_row(outbox_engine)
    outbox = outbox_for(outbox_engine, settings_for(smtp_server, max_per_minute=2), clock)[0]
    sent_now = [outbox.send_due(), outbox.send_due()]
    clock.advance(60)
    assert [*sent_now, outbox.send_due()] == [2, 0, 2]


def test_rows_of_a_channel_without_a_sender_stay_queued(
    outbox_engine: Engine, smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    row_id = queue_row(outbox_engine, channel="sms", to_addrs="+447911123456")
    outbox = outbox_for(outbox_engine, settings_for(smtp_server), clock)[0]
    assert outbox.send_due() == 0
    assert read_row(outbox_engine, row_id)["status"] == "queued"


# --- other databases ---------------------------------------------------------------------


def _send_retry_and_recover(engine: Engine, server: RecordingSmtpServer, clock: FakeClock) -> None:
    """One row sent after a 4xx, one recovered from a dead incarnation: each arrives once."""
    retried = queue_row(engine)
    stuck = queue_row(engine, message_id="<stuck@practice.example>")
    leave_sending(engine, stuck)
    server.script.data_queue.append("451 4.3.0 try again later")
    outbox = outbox_for(engine, settings_for(server), clock)[0]
    outbox.recover()
    outbox.send_due()
    outbox.send_due()
    rows = [read_row(engine, retried), read_row(engine, stuck)]
    assert [(r["status"], r["attempts"]) for r in rows] == [("sent", 2), ("sent", 1)]
    assert sorted(map(str, server.message_ids())) == sorted(r["message_id"] for r in rows)


@pytest.mark.postgres
def test_the_outbox_on_postgresql(smtp_server: RecordingSmtpServer, clock: FakeClock) -> None:
    with fresh_postgres_database("pes_outbox") as url:
        engine = claimed_engine(url)
        try:
            _send_retry_and_recover(engine, smtp_server, clock)
        finally:
            engine.dispose()


@pytest.mark.mariadb
def test_the_outbox_on_mariadb(smtp_server: RecordingSmtpServer, clock: FakeClock) -> None:
    with fresh_mariadb_database("pes_outbox") as url:
        engine = claimed_engine(url)
        try:
            _send_retry_and_recover(engine, smtp_server, clock)
        finally:
            engine.dispose()
