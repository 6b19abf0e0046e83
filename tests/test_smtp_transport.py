"""SmtpSender and probe against real servers: aiosmtpd, smtp-sink, the fault proxy."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors import progress
from actors.mail.sender import OutgoingMessage
from actors.mail.settings import EmailSettings
from actors.mail.smtp_transport import SmtpSender, dot_stuff, probe
from events.clock import FakeClock
from tests.fault_proxy import FaultProxy
from tests.mail_helpers import TIMEOUT, settings_for, smtp_settings
from tests.smtp_servers import RecordingSmtpServer, SmtpSinkServer, free_port
from tests.tls_certs import CertificateSet

pytest_plugins = ["tests.conftest_mail"]

MakeServer = Callable[..., RecordingSmtpServer]
MakeProxy = Callable[[str, int], FaultProxy]
USERS = {"reception": "s3cret-Pa55"}


def outgoing(**changes: Any) -> OutgoingMessage:
    base = OutgoingMessage(
        row_id=1,
        channel="email",
        message_id="<m1@practice.example>",
        from_addr='"Smile Dental" <reception@practice.example>',
        to_addrs=("patient@example.org",),
        cc_addrs=(),
        subject="Your appointment",
        body_text="See you on Monday.",
        body_html="",
        raw=None,
        attempts=0,
    )
    return dataclasses.replace(base, **changes)


class Wire:
    """An ``on_wire`` that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


_OPEN: list[SmtpSender] = []


@pytest.fixture(autouse=True)
def _close_senders(make_smtp_server: MakeServer, make_proxy: MakeProxy) -> Iterator[None]:
    # Depends on the server fixtures so that senders close before the servers stop.
    yield
    while _OPEN:
        _OPEN.pop().close()


def sender(
    settings: EmailSettings, clock: FakeClock, ca_file: str = "", timeout: float = TIMEOUT
) -> SmtpSender:
    """A sender closed after the test (its connection is left open for reuse)."""
    smtp = SmtpSender(settings, timeout=timeout, clock=clock, ca_file=ca_file)
    _OPEN.append(smtp)
    return smtp


# --- progress ---------------------------------------------------------------------------


def test_every_message_beats_on_its_replies_so_a_slow_server_is_seen_busy(
    clock: FakeClock,
) -> None:
    beats: list[int] = []
    with SmtpSinkServer(extra_args=("-w", "1")) as slow:  # DATA answered after a second
        smtp = sender(settings_for(slow), clock, timeout=5.0)
        progress.install(lambda: beats.append(len(slow.stored())))
        try:
            for n in range(3):
                assert smtp.send(outgoing(message_id=f"<m{n}@practice.example>"), Wire()).kind == (
                    "sent"
                )
        finally:
            progress.install(None)
    # Beats come while each message is on its way (before the server stored it), not
    # only once the batch is over: the watchdog sees progress per message.
    assert {0, 1, 2} <= set(beats)
    assert len(beats) >= 3 * 2  # at least the DATA and the final-dot replies of each


def test_no_beat_reaches_a_thread_without_a_mailbox(
    smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    beats: list[int] = []
    progress.install(lambda: beats.append(1))
    try:
        thread_beats: list[int] = []

        def elsewhere() -> None:
            sender(settings_for(smtp_server), clock).send(outgoing(), Wire())
            thread_beats.append(len(beats))

        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join(timeout=30)
    finally:
        progress.install(None)
    assert thread_beats == [0]


# --- security -------------------------------------------------------------------------


def test_it_delivers_over_plain_smtp(smtp_server: RecordingSmtpServer, clock: FakeClock) -> None:
    wire = Wire()
    outcome = sender(settings_for(smtp_server), clock).send(outgoing(), wire)
    assert (outcome.kind, wire.calls) == ("sent", 1)
    [received] = smtp_server.messages
    assert received.mail_from == "reception@practice.example"
    assert received.rcpt_tos == ("patient@example.org",)
    assert received.message_id == "<m1@practice.example>"


def test_it_delivers_over_starttls_trusting_the_ca_file(
    make_smtp_server: MakeServer, certs: CertificateSet, clock: FakeClock
) -> None:
    server = make_smtp_server("starttls")
    outcome = sender(settings_for(server), clock, str(certs.ca_cert)).send(outgoing(), Wire())
    assert outcome.kind == "sent"
    assert server.messages[0].tls


def test_it_delivers_over_implicit_tls_trusting_the_ca_file(
    make_smtp_server: MakeServer, certs: CertificateSet, clock: FakeClock
) -> None:
    server = make_smtp_server("tls")
    outcome = sender(settings_for(server), clock, str(certs.ca_cert)).send(outgoing(), Wire())
    assert outcome.kind == "sent"
    assert server.messages[0].tls


def test_it_logs_in_when_a_username_is_set(
    make_smtp_server: MakeServer, certs: CertificateSet, clock: FakeClock
) -> None:
    server = make_smtp_server("starttls", USERS)
    settings = settings_for(server, smtp_username="reception", smtp_password=USERS["reception"])
    outcome = sender(settings, clock, str(certs.ca_cert)).send(outgoing(), Wire())
    assert outcome.kind == "sent"
    assert server.messages[0].authenticated_as == "reception"


def test_an_untrusted_certificate_is_a_retry_and_nothing_is_sent(
    make_smtp_server: MakeServer, clock: FakeClock
) -> None:
    server = make_smtp_server("tls")
    wire = Wire()
    outcome = sender(settings_for(server), clock).send(outgoing(), wire)
    assert outcome.kind == "retry"
    assert "certificate not trusted" in outcome.detail
    assert (wire.calls, server.messages) == (0, [])


# --- probe ------------------------------------------------------------------------------


def test_probe_refuses_an_untrusted_certificate_in_plain_words(
    make_smtp_server: MakeServer,
) -> None:
    server = make_smtp_server("starttls")
    result = probe(settings_for(server), timeout=TIMEOUT)
    assert not result.ok
    assert result.reason.startswith("certificate not trusted")
    assert "\n" not in result.reason


def test_probe_passes_with_the_ca_file(make_smtp_server: MakeServer, certs: CertificateSet) -> None:
    server = make_smtp_server("tls", USERS)
    settings = settings_for(server, smtp_username="reception", smtp_password=USERS["reception"])
    assert probe(settings, timeout=TIMEOUT, ca_file=str(certs.ca_cert)).ok


def test_probe_sends_no_mail(make_smtp_server: MakeServer, certs: CertificateSet) -> None:
    server = make_smtp_server("starttls")
    probe(settings_for(server), timeout=TIMEOUT, ca_file=str(certs.ca_cert))
    assert (server.connections, server.data_commands) == (1, 0)


def test_probe_names_a_wrong_password_without_showing_it(
    make_smtp_server: MakeServer, certs: CertificateSet
) -> None:
    server = make_smtp_server("starttls", USERS)
    settings = settings_for(server, smtp_username="reception", smtp_password="wrong-Pa55word")
    result = probe(settings, timeout=TIMEOUT, ca_file=str(certs.ca_cert))
    assert result.reason.startswith("wrong user name or password")
    assert "wrong-Pa55word" not in result.reason


def test_probe_names_a_closed_port() -> None:
    result = probe(smtp_settings("127.0.0.1", free_port()), timeout=TIMEOUT)
    assert result.reason.startswith("port closed")


def test_probe_of_a_server_that_never_answers_says_no_answer_in_n_seconds(
    smtp_server: RecordingSmtpServer, make_proxy: MakeProxy
) -> None:
    proxy = make_proxy(smtp_server.host, smtp_server.port)
    proxy.black_hole()
    result = probe(smtp_settings(proxy.host, proxy.port), timeout=0.5)
    assert result.reason == f"no answer from {proxy.host}:{proxy.port} in 0.5 s"


def test_probe_names_a_refused_connection_and_recovers(
    smtp_server: RecordingSmtpServer, make_proxy: MakeProxy
) -> None:
    proxy = make_proxy(smtp_server.host, smtp_server.port)
    settings = smtp_settings(proxy.host, proxy.port)
    proxy.refuse()
    refused = probe(settings, timeout=TIMEOUT)
    proxy.refuse(False)
    assert refused.reason.startswith("port closed")
    assert probe(settings, timeout=TIMEOUT).ok


def test_a_slow_link_still_delivers(
    smtp_server: RecordingSmtpServer, make_proxy: MakeProxy, clock: FakeClock
) -> None:
    proxy = make_proxy(smtp_server.host, smtp_server.port)
    proxy.set_latency(0.02)
    outcome = sender(smtp_settings(proxy.host, proxy.port), clock).send(outgoing(), Wire())
    assert outcome.kind == "sent"


def test_probe_names_a_missing_starttls(smtp_server: RecordingSmtpServer) -> None:
    settings = settings_for(smtp_server, smtp_security="starttls")
    result = probe(settings, timeout=TIMEOUT)
    assert "does not offer STARTTLS" in result.reason


def test_probe_names_an_unknown_host() -> None:
    result = probe(smtp_settings("no-such-host.invalid", 25), timeout=TIMEOUT)
    assert result.reason == "host not found: no-such-host.invalid"


def test_probe_says_when_no_server_is_set() -> None:
    result = probe(smtp_settings("", 25), timeout=TIMEOUT)
    assert result.reason == "no mail server is set (smtp_host is empty)"


# --- replies ----------------------------------------------------------------------------


def test_on_wire_comes_before_the_final_dot(
    smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    seen_by_server_at_wire: list[int] = []

    def wire() -> None:
        seen_by_server_at_wire.append(len(smtp_server.messages))

    sender(settings_for(smtp_server), clock).send(outgoing(), wire)
    assert (seen_by_server_at_wire, len(smtp_server.messages)) == ([0], 1)


def test_an_exception_in_on_wire_aborts_the_message(
    smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    def wire() -> None:
        raise RuntimeError("the database said no")

    with pytest.raises(RuntimeError, match="the database said no"):
        sender(settings_for(smtp_server), clock).send(outgoing(), wire)
    assert smtp_server.messages == []


def test_a_4xx_at_data_is_a_retry(smtp_server: RecordingSmtpServer, clock: FakeClock) -> None:
    smtp_server.script.data_queue.append("451 4.3.0 try again later")
    outcome = sender(settings_for(smtp_server), clock).send(outgoing(), Wire())
    assert outcome.kind == "retry"
    assert "451 4.3.0 try again later" in outcome.detail


def test_a_5xx_at_data_fails_with_the_servers_words(
    smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    smtp_server.script.data_queue.append("554 5.7.1 message rejected as spam")
    outcome = sender(settings_for(smtp_server), clock).send(outgoing(), Wire())
    assert outcome.kind == "failed"
    assert "554 5.7.1 message rejected as spam" in outcome.detail


def test_some_recipients_refused_sends_to_the_rest(
    smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    smtp_server.script.rcpt["gone@example.org"] = "550 5.1.1 no such user"
    message = outgoing(cc_addrs=("gone@example.org",))
    outcome = sender(settings_for(smtp_server), clock).send(message, Wire())
    assert (outcome.kind, outcome.refused) == ("sent", ("gone@example.org",))
    assert "550 5.1.1 no such user" in outcome.detail
    assert smtp_server.messages[0].rcpt_tos == ("patient@example.org",)


def test_every_recipient_refused_with_5xx_fails(
    smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    smtp_server.script.rcpt["patient@example.org"] = "550 5.1.1 no such user"
    wire = Wire()
    outcome = sender(settings_for(smtp_server), clock).send(outgoing(), wire)
    assert (outcome.kind, wire.calls) == ("failed", 0)
    assert "550 5.1.1 no such user" in outcome.detail


def test_every_recipient_refused_with_a_4xx_is_a_retry(
    smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    smtp_server.script.rcpt["patient@example.org"] = "450 4.2.1 mailbox busy"
    outcome = sender(settings_for(smtp_server), clock).send(outgoing(), Wire())
    assert outcome.kind == "retry"


def test_a_bad_address_fails_without_connecting(
    smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    outcome = sender(settings_for(smtp_server), clock).send(
        outgoing(to_addrs=("not an address",)), Wire()
    )
    assert outcome.kind == "failed"
    assert smtp_server.connections == 0


# --- lost connections -------------------------------------------------------------------


def test_a_lost_reply_is_uncertain(smtp_sink: SmtpSinkServer, clock: FakeClock) -> None:
    wire = Wire()
    outcome = sender(settings_for(smtp_sink), clock).send(outgoing(), wire)
    assert (outcome.kind, wire.calls) == ("uncertain", 1)
    assert smtp_sink.stored_message_ids() == ["<m1@practice.example>"]


def test_a_cut_after_the_final_dot_is_uncertain(
    smtp_server: RecordingSmtpServer, make_proxy: MakeProxy, clock: FakeClock
) -> None:
    proxy = make_proxy(smtp_server.host, smtp_server.port)
    proxy.cut_when(b"\r\n.\r\n")
    outcome = sender(smtp_settings(proxy.host, proxy.port), clock).send(outgoing(), Wire())
    assert outcome.kind == "uncertain"
    assert proxy.cuts == 1


def test_a_cut_before_the_final_dot_is_a_retry(
    smtp_server: RecordingSmtpServer, make_proxy: MakeProxy, clock: FakeClock
) -> None:
    proxy = make_proxy(smtp_server.host, smtp_server.port)
    proxy.cut_when(b"TO:<patient@example.org>")
    wire = Wire()
    outcome = sender(smtp_settings(proxy.host, proxy.port), clock).send(outgoing(), wire)
    assert (outcome.kind, wire.calls) == ("retry", 0)
    assert smtp_server.messages == []


def test_a_dead_server_costs_one_attempt_per_batch(
    smtp_server: RecordingSmtpServer, make_proxy: MakeProxy, clock: FakeClock
) -> None:
    proxy = make_proxy(smtp_server.host, smtp_server.port)
    proxy.black_hole()
    smtp = SmtpSender(smtp_settings(proxy.host, proxy.port), timeout=0.5, clock=clock, ca_file="")
    kinds = [smtp.send(outgoing(row_id=n), Wire()).kind for n in (1, 2, 3)]
    assert (kinds, proxy.connections) == (["retry"] * 3, 1)


# --- connections ------------------------------------------------------------------------


def test_one_connection_serves_a_batch(smtp_server: RecordingSmtpServer, clock: FakeClock) -> None:
    smtp = sender(settings_for(smtp_server), clock)
    for n in range(5):
        smtp.send(outgoing(row_id=n, message_id=f"<m{n}@practice.example>"), Wire())
    smtp.close()
    assert (len(smtp_server.messages), smtp_server.connections) == (5, 1)


def test_a_connection_the_server_dropped_is_opened_again(
    smtp_server: RecordingSmtpServer, make_proxy: MakeProxy, clock: FakeClock
) -> None:
    proxy = make_proxy(smtp_server.host, smtp_server.port)
    smtp = sender(smtp_settings(proxy.host, proxy.port), clock)
    smtp.send(outgoing(), Wire())
    proxy.cut_all()
    outcome = smtp.send(outgoing(row_id=2, message_id="<m2@practice.example>"), Wire())
    assert (outcome.kind, proxy.connections, len(smtp_server.messages)) == ("sent", 2, 2)


# --- content ----------------------------------------------------------------------------


def test_lines_starting_with_a_dot_arrive_intact(
    smtp_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    raw = b"Message-ID: <raw@x.example>\r\nSubject: dots\r\n\r\n.\r\n..two\r\n.three\r\n"
    sender(settings_for(smtp_server), clock).send(outgoing(raw=raw), Wire())
    assert smtp_server.messages[0].content.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")


def test_dot_stuff_normalises_line_endings_and_doubles_leading_dots() -> None:
    assert dot_stuff(b"a\n.b\r.c\r\nd") == b"a\r\n..b\r\n..c\r\nd\r\n"


# --- PIPELINING (RFC 2920) ------------------------------------------------------------------


@pytest.fixture
def pipelining_server() -> Iterator[RecordingSmtpServer]:
    """A recording server that offers PIPELINING."""
    with RecordingSmtpServer(pipelining=True) as server:
        yield server


def test_the_envelope_goes_as_one_group_where_the_server_offers_pipelining(
    pipelining_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    smtp = sender(settings_for(pipelining_server), clock)
    outcomes = [smtp.send(outgoing(message_id=f"<m{i}@practice.example>"), Wire()) for i in (1, 2)]
    smtp.close()
    assert [o.kind for o in outcomes] == ["sent", "sent"]
    assert pipelining_server.message_ids() == ["<m1@practice.example>", "<m2@practice.example>"]
    assert pipelining_server.pipelined_groups == 2


def test_pipelined_some_recipients_refused_sends_to_the_rest(
    pipelining_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    pipelining_server.script.rcpt["gone@example.org"] = "550 5.1.1 no such user"
    message = outgoing(cc_addrs=("gone@example.org",))
    outcome = sender(settings_for(pipelining_server), clock).send(message, Wire())
    assert (outcome.kind, outcome.refused) == ("sent", ("gone@example.org",))
    assert pipelining_server.messages[0].rcpt_tos == ("patient@example.org",)


def test_pipelined_every_recipient_refused_fails_and_the_connection_goes_on(
    pipelining_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    pipelining_server.script.rcpt["gone@example.org"] = "550 5.1.1 no such user"
    smtp = sender(settings_for(pipelining_server), clock)
    wire = Wire()
    refused = smtp.send(outgoing(to_addrs=("gone@example.org",)), wire)
    after = smtp.send(outgoing(message_id="<m2@practice.example>"), Wire())
    assert (refused.kind, wire.calls, after.kind) == ("failed", 0, "sent")
    assert "550 5.1.1 no such user" in refused.detail
    assert pipelining_server.message_ids() == ["<m2@practice.example>"]
    assert pipelining_server.connections == 1


def test_pipelined_a_4xx_at_the_final_dot_is_a_retry(
    pipelining_server: RecordingSmtpServer, clock: FakeClock
) -> None:
    pipelining_server.script.data_queue.append("451 4.3.0 try again later")
    outcome = sender(settings_for(pipelining_server), clock).send(outgoing(), Wire())
    assert outcome.kind == "retry"
    assert "451 4.3.0 try again later" in outcome.detail
