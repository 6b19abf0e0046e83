"""SMS gateways (``actors.mail.sms``): the ``sms_gateway`` setting, and both senders against
real local servers: a stdlib HTTP server standing in for the SMS provider's REST API, and
aiosmtpd for an email-to-SMS gateway."""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import json
import smtplib
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.mail import redact
from actors.mail.sender import OutgoingMessage, SendOutcome
from actors.mail.settings import EmailSettings
from actors.mail.sms import (
    EmailGateway,
    EmailToSmsSender,
    HttpGateway,
    HttpSmsSender,
    SmsGatewayError,
    outcome_for_response,
    parse_gateway,
    sms_sender_for,
)
from events.clock import FakeClock
from tests.smtp_servers import RecordingSmtpServer, free_port
from tests.tls_certs import make_certificates

PASSWORD = "s3cret-Token"
USERNAME = "AC0001"
NUMBER = "+447911123456"
TIMEOUT = 5.0
HANG_TIMEOUT = 0.5  # how long the sender waits for a gateway that never answers


def sms(
    *to: str, text: str = "Your appointment is at 10:30 tomorrow.", row_id: int = 7
) -> OutgoingMessage:
    return OutgoingMessage(
        row_id=row_id,
        channel="sms",
        message_id=f"<sms{row_id}@smile.example>",
        from_addr="",
        to_addrs=to or (NUMBER,),
        cc_addrs=(),
        subject="",
        body_text=text,
        body_html="",
        raw=None,
        attempts=0,
    )


class WireCount:
    """An ``on_wire`` that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


# --- the stand-in SMS provider -----------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return {
            k: v[0] for k, v in parse_qs(self.body.decode("ascii"), strict_parsing=True).items()
        }


@dataclass
class Answer:
    status: int = 201
    body: bytes = b'{"sid": "SM1", "status": "queued"}'
    content_type: str = "application/json"
    hang: bool = False  # read the request, then never answer


@dataclass
class Provider:
    """What the server answers next, and every request it read."""

    answer: Answer = field(default_factory=Answer)
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    heads: int = 0  # HEAD requests (the self-test's probes) answered


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with provider.lock:
                provider.seen.append(Seen(self.path, dict(self.headers.items()), body))
                answer = provider.answer
            if answer.hang:
                provider.release.wait(30)
                self.close_connection = True
                return
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def do_HEAD(self) -> None:
            # The self-test's probe: a gateway that is down answers every method alike.
            with provider.lock:
                provider.heads += 1
                answer = provider.answer
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the test reads provider.seen

    return Handler


class GatewayServer:
    """``ThreadingHTTPServer`` on a free loopback port, optionally with TLS."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.provider = Provider()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.provider))
        self.server.daemon_threads = True
        if context is not None:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/2010-04-01/Accounts/{USERNAME}/Messages.json"

    def stop(self) -> None:
        self.provider.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def gateway() -> Iterator[GatewayServer]:
    server = GatewayServer()
    try:
        yield server
    finally:
        server.stop()


def http_sender(
    url: str,
    encoding: str = "form",
    *,
    username: str = USERNAME,
    password: str = PASSWORD,
    timeout: float = TIMEOUT,
    context: ssl.SSLContext | None = None,
) -> HttpSmsSender:
    gateway = parse_gateway(f"{encoding}:{url}")
    assert isinstance(gateway, HttpGateway)
    return HttpSmsSender(
        gateway,
        region="GB",
        sender="+441234567890",
        username=username,
        password=password,
        timeout=timeout,
        context=context,
    )


# --- the sms_gateway setting (pure) ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("email:{number}@sms.example.net", EmailGateway("{number}@sms.example.net")),
        ("{e164}@sms.example.net", EmailGateway("{e164}@sms.example.net")),
        ("EMAIL:sms.{national}@gw.example.org", EmailGateway("sms.{national}@gw.example.org")),
        ("https://api.example.com/v1/sms", HttpGateway("https://api.example.com/v1/sms", "form")),
        ("form:http://127.0.0.1:8080/send", HttpGateway("http://127.0.0.1:8080/send", "form")),
        (
            "json:https://api.example.com/sms?x=1",
            HttpGateway("https://api.example.com/sms?x=1", "json"),
        ),
    ],
)
def test_parse_gateway_reads_each_form(text: str, expected: object) -> None:
    assert parse_gateway(text) == expected


def test_an_http_gateway_posts_to_its_path_and_query() -> None:
    gateway = parse_gateway("json:https://api.example.com:8443/v1/sms?account=7")
    assert isinstance(gateway, HttpGateway)
    assert (gateway.secure, gateway.host, gateway.port, gateway.target) == (
        True,
        "api.example.com",
        8443,
        "/v1/sms?account=7",
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "is empty"),
        ("  ", "is empty"),
        ("email:{number}@sms example.net", "must not contain spaces"),
        ("email:sms.example.net", "one address"),
        ("email:{number}@", "is not a mail domain"),
        ("email:a@{number}@x.net", "one address"),
        ("email:{number}@-bad-.net", "is not a mail domain"),
        ("email:fixed@sms.example.net", "has no {number}, {e164} or {national}"),
        ("email:{phone}@sms.example.net", "{phone} is not a placeholder"),
        ("email:{number!r}@sms.example.net", "{number} is not a placeholder"),
        ("email:{number@sms.example.net", "unbalanced braces"),
        ("email:{number},x@sms.example.net", "cannot be part of an address"),
        ("sms:{number}@gw.net", "'sms':, which is not a gateway kind"),
        ("json:ftp://api.example.com/sms", "starts with https:// or http://"),
        (f"form:https://{USERNAME}:{PASSWORD}@api.example.com/", "not in the URL"),
        ("json:https:///sms", "has no host"),
        ("https://api.example.com:99999/sms", "valid host and port"),
        ("https://api.example.com/sms#top", "#fragment"),
    ],
)
def test_parse_gateway_refuses_with_one_line_naming_the_column(text: str, words: str) -> None:
    with pytest.raises(SmsGatewayError) as raised:
        parse_gateway(text)
    message = str(raised.value)
    assert message.startswith("email_settings.sms_gateway")
    assert words in message
    assert len(message.splitlines()) == 1
    assert PASSWORD not in message


@given(
    st.one_of(
        st.text(max_size=80),
        st.from_regex(r"\A(email:|form:|json:)?(https?://)?[^ ]{0,40}\Z"),
        st.from_regex(r"\A[a-z{}.!]{0,12}@[a-z0-9.{}:-]{0,20}\Z"),
    )
)
def test_parse_gateway_raises_nothing_but_its_own_error(text: str) -> None:
    with contextlib.suppress(SmsGatewayError):
        parse_gateway(text)


def test_email_gateway_fills_each_placeholder() -> None:
    gateway = EmailGateway("{number}.{national}.{e164}@sms.example.net")
    assert gateway.address_for(NUMBER) == "447911123456.07911123456.+447911123456@sms.example.net"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, "sent"),
        (202, "sent"),
        (400, "failed"),
        (401, "failed"),
        (404, "failed"),
        (301, "failed"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
    ],
)
def test_outcome_for_response_by_status(status: int, kind: str) -> None:
    assert outcome_for_response(status, "X", b"", "text/plain", ()).kind == kind


# --- the HTTP gateway, against a real local HTTP server ----------------------------------


def test_http_form_posts_to_from_and_body(gateway: GatewayServer) -> None:
    wire = WireCount()
    outcome = http_sender(gateway.url()).send(sms("07911 123456"), wire)
    assert outcome == SendOutcome("sent")
    [seen] = gateway.provider.seen
    assert seen.path == f"/2010-04-01/Accounts/{USERNAME}/Messages.json"
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen.form() == {
        "To": NUMBER,
        "From": "+441234567890",
        "Body": "Your appointment is at 10:30 tomorrow.",
    }
    assert wire.calls == 1


def test_http_json_posts_a_json_object(gateway: GatewayServer) -> None:
    outcome = http_sender(gateway.url(), "json").send(
        sms(NUMBER, text="Zähne: 10:30 ✓"), WireCount()
    )
    assert outcome.kind == "sent"
    [seen] = gateway.provider.seen
    assert seen.headers["Content-Type"].startswith("application/json")
    assert json.loads(seen.body) == {
        "To": NUMBER,
        "From": "+441234567890",
        "Body": "Zähne: 10:30 ✓",
    }


def test_http_sends_basic_auth_from_sms_username_and_password(gateway: GatewayServer) -> None:
    http_sender(gateway.url()).send(sms(), WireCount())
    [seen] = gateway.provider.seen
    scheme, token = seen.headers["Authorization"].split(" ")
    assert (scheme, base64.b64decode(token).decode()) == ("Basic", f"{USERNAME}:{PASSWORD}")


def test_http_without_credentials_sends_no_authorization(gateway: GatewayServer) -> None:
    http_sender(gateway.url(), username="", password="").send(sms(), WireCount())
    [seen] = gateway.provider.seen
    assert "Authorization" not in seen.headers


def test_http_4xx_fails_with_the_gateways_words(gateway: GatewayServer) -> None:
    gateway.provider.answer = Answer(
        400, b'{"code": 21211, "message": "The \'To\' number is not a valid phone number."}'
    )
    outcome = http_sender(gateway.url()).send(sms(), WireCount())
    assert outcome == SendOutcome(
        "failed",
        "SMS gateway answered 400 Bad Request: The 'To' number is not a valid phone number.",
    )


def test_http_4xx_that_echoes_the_secret_is_withheld_whole(gateway: GatewayServer) -> None:
    token = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    gateway.provider.answer = Answer(
        401, f"bad credentials {PASSWORD} (Basic {token})\nline two".encode(), "text/plain"
    )
    outcome = http_sender(gateway.url()).send(sms(), WireCount())
    assert outcome == SendOutcome("failed", f"SMS gateway answered 401 {redact.HIDDEN}")


def test_http_4xx_that_echoes_only_the_basic_token_is_withheld_whole(
    gateway: GatewayServer,
) -> None:
    token = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    gateway.provider.answer = Answer(401, f"bad header Basic {token}".encode(), "text/plain")
    outcome = http_sender(gateway.url()).send(sms(), WireCount())
    assert outcome == SendOutcome("failed", f"SMS gateway answered 401 {redact.HIDDEN}")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, b"internal error"),
        (503, b'{"error": {"message": "maintenance"}}'),
        (429, b"slow down"),
    ],
)
def test_http_5xx_and_429_retry(gateway: GatewayServer, status: int, body: bytes) -> None:
    gateway.provider.answer = Answer(status, body, "text/plain")
    outcome = http_sender(gateway.url()).send(sms(), WireCount())
    assert outcome.kind == "retry"
    assert outcome.detail.startswith(f"SMS gateway answered {status} ")


def test_http_refused_connection_retries_without_going_on_the_wire() -> None:
    wire = WireCount()
    outcome = http_sender(f"http://127.0.0.1:{free_port()}/sms").send(sms(), wire)
    assert outcome.kind == "retry"
    assert outcome.detail.startswith("cannot connect to the SMS gateway 127.0.0.1: ")
    assert wire.calls == 0


def test_http_gateway_that_never_answers_is_uncertain_and_not_resent(
    gateway: GatewayServer,
) -> None:
    gateway.provider.answer = Answer(hang=True)
    sender = http_sender(gateway.url(), timeout=HANG_TIMEOUT)
    wire = WireCount()
    outcome = sender.send(sms(), wire)
    assert outcome.kind == "uncertain"
    assert "after the request was sent" in outcome.detail
    assert (wire.calls, len(gateway.provider.seen), sender.resend_uncertain) == (1, 1, False)


def test_http_invalid_number_fails_without_a_request(gateway: GatewayServer) -> None:
    wire = WireCount()
    outcome = http_sender(gateway.url()).send(sms("07911 12"), wire)
    assert outcome == SendOutcome("failed", "'07911 12' is not a valid phone number for GB")
    assert (wire.calls, gateway.provider.seen) == (0, [])


def test_http_row_with_two_numbers_fails_without_a_request(gateway: GatewayServer) -> None:
    outcome = http_sender(gateway.url()).send(sms(NUMBER, "+12025550143"), WireCount())
    assert outcome == SendOutcome(
        "failed", "an SMS row takes exactly one number in to_addrs; it has 2"
    )
    assert gateway.provider.seen == []


def test_http_empty_text_fails_without_a_request(gateway: GatewayServer) -> None:
    outcome = http_sender(gateway.url()).send(sms(text="  "), WireCount())
    assert outcome.kind == "failed"
    assert gateway.provider.seen == []


@pytest.fixture
def tls_gateway(tmp_path: Path) -> Iterator[tuple[GatewayServer, ssl.SSLContext]]:
    certs = make_certificates(tmp_path / "pki")
    server = GatewayServer(certs.server_context())
    try:
        yield server, certs.client_context()
    finally:
        server.stop()


def test_https_gateway_with_a_trusted_certificate_sends(
    tls_gateway: tuple[GatewayServer, ssl.SSLContext],
) -> None:
    server, trusting = tls_gateway
    outcome = http_sender(server.url("https"), context=trusting).send(sms(), WireCount())
    assert outcome == SendOutcome("sent")


def test_https_gateway_with_an_untrusted_certificate_retries_before_the_wire(
    tls_gateway: tuple[GatewayServer, ssl.SSLContext],
) -> None:
    server, _ = tls_gateway
    wire = WireCount()
    outcome = http_sender(server.url("https")).send(sms(), wire)
    assert outcome.kind == "retry"
    assert "certificate verify failed" in outcome.detail
    assert (wire.calls, server.provider.seen) == (0, [])


def test_http_sender_repr_hides_the_url_query_and_secret() -> None:
    sender = http_sender("https://api.example.com/sms?api_key=K3Y")
    assert "K3Y" not in repr(sender)
    assert PASSWORD not in repr(sender)


# --- the email-to-SMS gateway, through a real SMTP server --------------------------------


class SmtplibSender:
    """A minimal email ``Sender`` for these tests only (the service has its own): one
    connection per message, ``on_wire`` before DATA, replies mapped roughly."""

    resend_uncertain = True

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def send(self, message: OutgoingMessage, on_wire: Callable[[], None]) -> SendOutcome:
        assert message.raw is not None
        with smtplib.SMTP(self.host, self.port, timeout=TIMEOUT) as smtp:
            smtp.ehlo()
            smtp.mail(message.from_addr)
            code, reply = smtp.rcpt(message.to_addrs[0])
            if code >= 500:
                return SendOutcome("failed", reply.decode(), refused=message.to_addrs)
            on_wire()
            code, reply = smtp.data(message.raw)
        return SendOutcome(
            "sent" if code == 250 else "failed", "" if code == 250 else reply.decode()
        )

    def close(self) -> None:
        pass


@pytest.fixture
def smtp() -> Iterator[RecordingSmtpServer]:
    with RecordingSmtpServer() as server:
        yield server


def email_sender(smtp: RecordingSmtpServer) -> EmailToSmsSender:
    return EmailToSmsSender(
        EmailGateway("{number}@sms.example.net"),
        SmtplibSender(smtp.host, smtp.port),
        region="GB",
        from_address="reception@smile.example",
        clock=FakeClock(),
    )


def test_email_to_sms_sends_a_plain_text_email_to_the_gateway_address(
    smtp: RecordingSmtpServer,
) -> None:
    wire = WireCount()
    outcome = email_sender(smtp).send(sms("07911 123456"), wire)
    assert (outcome, wire.calls) == (SendOutcome("sent"), 1)
    [received] = smtp.messages
    assert (received.mail_from, received.rcpt_tos) == (
        "reception@smile.example",
        ("447911123456@sms.example.net",),
    )
    mail = email.message_from_bytes(received.content, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    assert (mail["To"], mail["Message-ID"], mail["Subject"]) == (
        "447911123456@sms.example.net",
        "<sms7@smile.example>",
        None,
    )
    assert mail["Date"] == "Mon, 05 Jan 2026 09:00:00 +0000"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content().strip() == "Your appointment is at 10:30 tomorrow."


def test_email_to_sms_keeps_non_ascii_text(smtp: RecordingSmtpServer) -> None:
    email_sender(smtp).send(sms(text="Zahnarztpraxis Müller: Termin ✓"), WireCount())
    [received] = smtp.messages
    mail = email.message_from_bytes(received.content, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    assert mail.get_content().strip() == "Zahnarztpraxis Müller: Termin ✓"


def test_email_to_sms_refused_address_is_reported_as_the_number(
    smtp: RecordingSmtpServer,
) -> None:
    smtp.script.rcpt["447911123456@sms.example.net"] = "550 5.1.1 no such subscriber"
    outcome = email_sender(smtp).send(sms(), WireCount())
    assert (outcome.kind, outcome.refused) == ("failed", (NUMBER,))
    assert smtp.messages == []


def test_email_to_sms_invalid_number_sends_nothing(smtp: RecordingSmtpServer) -> None:
    outcome = email_sender(smtp).send(sms("not a number"), WireCount())
    assert outcome == SendOutcome("failed", "'not a number' is not a phone number")
    assert smtp.messages == []


# --- sms_sender_for: wiring from EmailSettings -------------------------------------------


def test_sms_sender_for_is_none_when_sms_is_off() -> None:
    settings = EmailSettings(sms_enabled=False, sms_gateway="https://api.example.com/sms")
    assert sms_sender_for(settings, None, TIMEOUT) is None


def test_sms_sender_for_an_http_gateway(gateway: GatewayServer) -> None:
    settings = EmailSettings(
        sms_enabled=True,
        sms_gateway=f"json:{gateway.url()}",
        sms_username=USERNAME,
        sms_password=PASSWORD,
        sms_from="SmileDent",
        sms_region="gb",
    )
    sender = sms_sender_for(settings, None, TIMEOUT)
    assert isinstance(sender, HttpSmsSender)
    assert sender.send(sms("07911 123456"), WireCount()).kind == "sent"
    assert json.loads(gateway.provider.seen[0].body)["From"] == "SmileDent"


def test_sms_sender_for_an_email_gateway_uses_the_email_sender(smtp: RecordingSmtpServer) -> None:
    settings = EmailSettings(
        sms_enabled=True,
        sms_gateway="email:{number}@sms.example.net",
        sms_region="GB",
        from_address="reception@smile.example",
    )
    sender = sms_sender_for(settings, SmtplibSender(smtp.host, smtp.port), TIMEOUT)
    assert isinstance(sender, EmailToSmsSender)
    assert sender.send(sms(), WireCount()).kind == "sent"
    assert smtp.messages[0].rcpt_tos == ("447911123456@sms.example.net",)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (EmailSettings(sms_enabled=True, sms_gateway=""), "sms_gateway is empty"),
        (
            EmailSettings(sms_enabled=True, sms_gateway="email:{number}@sms.example.net"),
            "set email_settings.smtp_host",
        ),
        (
            EmailSettings(sms_enabled=True, sms_gateway="https://a.example/s", sms_region="UK"),
            "sms_region 'UK' is not a country code",
        ),
    ],
)
def test_sms_sender_for_refuses_unusable_settings(settings: EmailSettings, words: str) -> None:
    with pytest.raises(SmsGatewayError) as raised:
        sms_sender_for(settings, None, TIMEOUT)
    assert words in str(raised.value)
