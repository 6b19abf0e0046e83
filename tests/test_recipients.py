"""Recipients, one by one (issue 13, item 5).

A deferred (4xx) recipient is tried again, with the same Message-ID, and only that
recipient; each recipient's fate is recorded in ``recipient_status``. Addresses with
letters beyond ASCII before the @ are sent where the server offers SMTPUTF8 and refused
with a plain reason where it does not. Real aiosmtpd servers with per-recipient replies.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from actors.mail.outbox import Outbox
from actors.mail.recipients import merge, settle
from actors.mail.sender import RecipientResult
from actors.mail.smtp_transport import SmtpSender
from events.clock import FakeClock
from events.types import MessageSendFailed, MessageSent
from tests.mail_helpers import (
    INCARNATION,
    EventLog,
    claimed_engine,
    mail_settings,
    queue_row,
    read_row,
    settings_for,
)
from tests.smtp_servers import RecordingSmtpServer

pytest_plugins = ["tests.conftest_mail"]

GOOD = "patient@example.org"
FULL = "full@example.org"
GONE = "gone@example.org"
FULL_REPLY = "452 4.2.2 Mailbox full"
GONE_REPLY = "550 5.1.1 No such user"
JUERGEN = "jürgen@müller.example"
JUERGEN_SENT = "jürgen@xn--mller-kva.example"  # the domain in IDNA, as the envelope has it


def sent(address: str) -> RecipientResult:
    return RecipientResult(address, "sent")


def deferred(address: str, reply: str = FULL_REPLY) -> RecipientResult:
    return RecipientResult(address, "deferred", reply)


def refused(address: str, reply: str = GONE_REPLY) -> RecipientResult:
    return RecipientResult(address, "refused", reply)


# --- settle (pure) -----------------------------------------------------------------------


def test_a_deferred_recipient_keeps_the_row_for_a_retry() -> None:
    done = settle("sent", "", (), (sent(GOOD), deferred(FULL)), 1, 30)
    assert (done.kind, done.newly_sent, done.refused) == ("retry", 1, ())
    assert done.detail == (f"sent to {GOOD}; deferred, to be tried again: {FULL} ({FULL_REPLY})")


def test_the_deferred_recipient_accepted_later_settles_the_row_as_sent() -> None:
    done = settle("sent", "", (sent(GOOD), deferred(FULL)), (sent(FULL),), 2, 30)
    assert (done.kind, done.newly_sent, done.recipients) == ("sent", 1, (sent(GOOD), sent(FULL)))


def test_a_deferred_recipient_is_given_up_after_the_last_attempt() -> None:
    done = settle("retry", "every recipient was refused", (sent(GOOD),), (deferred(FULL),), 30, 30)
    assert (done.kind, done.refused) == ("sent", (FULL,))
    assert "gave up after 30 attempts" in done.detail


def test_the_rest_refused_for_good_after_some_were_sent_is_sent_not_failed() -> None:
    done = settle("failed", "every recipient was refused", (sent(GOOD),), (refused(FULL),), 2, 30)
    assert (done.kind, done.refused) == ("sent", (FULL,))


def test_nobody_accepted_keeps_the_attempts_own_outcome() -> None:
    assert settle("retry", "451 later", (), (), 3, 30).kind == "retry"
    assert settle("retry", "451 later", (), (), 30, 30).kind == "failed"
    assert settle("failed", "554 no", (), (), 1, 30).kind == "failed"


def test_a_whole_attempt_failing_after_a_partial_send_waits_for_the_next() -> None:
    done = settle("retry", "port closed", (sent(GOOD), deferred(FULL)), (), 2, 30)
    assert (done.kind, done.newly_sent) == ("retry", 0)
    assert done.detail.endswith("the last attempt failed: port closed")


_RESULTS = st.lists(
    st.builds(
        RecipientResult,
        st.sampled_from(["a@x", "b@x", "c@x"]),
        st.sampled_from(["sent", "deferred", "refused"]),
        st.sampled_from(["", "450 later", "550 no"]),
    ),
    max_size=5,
).map(tuple)


@given(_RESULTS, _RESULTS)
def test_a_settled_recipient_is_never_unsettled(
    earlier: tuple[RecipientResult, ...], now: tuple[RecipientResult, ...]
) -> None:
    merged = {r.address: r.state for r in merge(earlier, now)}
    first = {r.address: r.state for r in merge(earlier, ())}
    assert all(merged[a] == s for a, s in first.items() if s != "deferred")


@given(
    st.sampled_from(["sent", "retry", "failed"]),
    _RESULTS,
    _RESULTS,
    st.integers(1, 40),
)
def test_settle_never_retries_past_the_last_attempt_and_never_leaves_a_deferred_sent_row(
    kind: str, earlier: tuple[RecipientResult, ...], now: tuple[RecipientResult, ...], attempts: int
) -> None:
    done = settle(kind, "words", earlier, now, attempts, 30)  # type: ignore[arg-type]
    assert not (done.kind == "retry" and attempts >= 30)
    if done.kind == "sent" and any(r.state == "sent" for r in done.recipients):
        assert all(r.state != "deferred" for r in done.recipients)


# --- against a real server ---------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = claimed_engine(f"sqlite:///{tmp_path / 'practice.db'}")
    yield made
    made.dispose()


def send_due(engine: Engine, server: RecordingSmtpServer) -> EventLog:
    clock = FakeClock()
    settings = settings_for(server)
    log = EventLog()
    outbox = Outbox(
        engine,
        INCARNATION,
        settings,
        mail_settings(),
        {"email": SmtpSender(settings, timeout=5.0, clock=clock)},
        log,
        clock,
        UTC,
        random=random.Random(3),
        retry_delay=lambda _attempts, _jitter: 0.0,
    )
    outbox.send_due()
    return log


def record(engine: Engine, row_id: int) -> list[tuple[str, str]]:
    text = read_row(engine, row_id)["recipient_status"]
    return [(r["address"], r["state"]) for r in json.loads(text)]


@pytest.mark.parametrize("pipelining", [False, True])
def test_a_deferred_recipient_is_retried_alone_with_the_same_message_id(
    engine: Engine, pipelining: bool
) -> None:
    server = RecordingSmtpServer(pipelining=pipelining).start()
    try:
        server.script.rcpt[FULL] = FULL_REPLY
        row_id = queue_row(engine, to_addrs=f"{GOOD}, {FULL}")
        first = send_due(engine, server)
        row = read_row(engine, row_id)
        assert (row["folder"], row["status"], row["attempts"]) == ("outbox", "queued", 1)
        assert record(engine, row_id) == [(GOOD, "sent"), (FULL, "deferred")]
        assert FULL_REPLY in row["last_error"]
        assert [type(e) for e in first.events] == [MessageSent, MessageSendFailed]

        del server.script.rcpt[FULL]
        second = send_due(engine, server)
        row = read_row(engine, row_id)
        assert (row["folder"], row["status"], row["attempts"]) == ("sent", "sent", 2)
        assert record(engine, row_id) == [(GOOD, "sent"), (FULL, "sent")]
        assert [m.rcpt_tos for m in server.messages] == [(GOOD,), (FULL,)]
        assert server.message_ids() == [row["message_id"]] * 2
        assert [e.recipients for e in second.of(MessageSent)] == [1]  # type: ignore[attr-defined]
    finally:
        server.stop()


def test_a_refused_recipient_is_not_tried_again_with_the_deferred_one(
    engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    smtp_server.script.rcpt.update({FULL: FULL_REPLY, GONE: GONE_REPLY})
    row_id = queue_row(engine, to_addrs=f"{GOOD}; {FULL}; {GONE}")
    send_due(engine, smtp_server)
    del smtp_server.script.rcpt[FULL]
    send_due(engine, smtp_server)
    row = read_row(engine, row_id)
    assert [m.rcpt_tos for m in smtp_server.messages] == [(GOOD,), (FULL,)]
    assert (row["status"], row["refused_recipients"]) == ("sent", GONE)
    assert record(engine, row_id) == [(GOOD, "sent"), (FULL, "sent"), (GONE, "refused")]


# --- SMTPUTF8 ----------------------------------------------------------------------------

INTERNATIONAL = [
    (JUERGEN, JUERGEN_SENT),
    ("иван@пример.рф", "иван@xn--e1afmkfd.xn--p1ai"),
    ("张伟@例子.中国", "张伟@xn--fsqu00a.xn--fiqs8s"),
]


@pytest.mark.parametrize(("address", "envelope"), INTERNATIONAL)
@pytest.mark.parametrize("pipelining", [False, True])
def test_an_international_address_is_sent_where_smtputf8_is_offered(
    engine: Engine, address: str, envelope: str, pipelining: bool
) -> None:
    server = RecordingSmtpServer(smtputf8=True, pipelining=pipelining).start()
    try:
        row_id = queue_row(engine, to_addrs=f"{address}, {GOOD}", subject="Grüße")
        send_due(engine, server)
        [received] = server.messages
        assert received.rcpt_tos == (envelope, GOOD)
        assert f"To: {envelope},".encode() in received.content
        assert read_row(engine, row_id)["status"] == "sent"
    finally:
        server.stop()


def test_an_international_address_is_refused_clearly_where_smtputf8_is_not_offered(
    engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    row_id = queue_row(engine, to_addrs=f"{JUERGEN}, {GOOD}")
    send_due(engine, smtp_server)
    row = read_row(engine, row_id)
    [received] = smtp_server.messages
    assert received.rcpt_tos == (GOOD,)
    assert (row["status"], row["refused_recipients"]) == ("sent", JUERGEN_SENT)
    assert (
        f"{JUERGEN_SENT} (has characters beyond ASCII before the @, which needs SMTPUTF8, "
        f"and the mail server at {smtp_server.host}:{smtp_server.port} does not offer it)"
    ) in row["last_error"]


def test_only_international_addresses_without_smtputf8_fail_the_row(
    engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    row_id = queue_row(engine, to_addrs=JUERGEN)
    send_due(engine, smtp_server)
    row = read_row(engine, row_id)
    assert (row["status"], smtp_server.messages) == ("failed", [])
    assert "needs SMTPUTF8" in row["last_error"]
    assert "not an email address" not in row["last_error"]
