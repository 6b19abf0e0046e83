"""SMS: the gateway named in ``email_settings.sms_gateway`` and the two ``Sender``\\ s for it.

``email_settings.sms_gateway`` takes one of these forms (``docs/sms.md`` is the operator's
version):

- ``email:{number}@sms.example.net`` (or the template alone, ``{number}@sms.example.net``):
  an **email-to-SMS gateway**. Each SMS becomes a short plain-text email to the template's
  address, sent through the practice's SMTP server. Placeholders: ``{number}`` the E.164
  digits without ``+`` (``447911123456``), ``{e164}`` with it (``+447911123456``),
  ``{national}`` the national form's digits (``07911123456``).
- ``form:https://api.example.com/...``, ``json:https://api.example.com/...`` or the URL
  alone (form): an **HTTP gateway** shaped like the common REST SMS APIs. One POST per SMS
  with the fields ``To`` (E.164), ``From`` (``email_settings.sms_from``, left out when
  empty) and ``Body``, form-encoded or as a JSON object; HTTP basic authentication with
  ``sms_username``/``sms_password`` when either is set. 2xx: accepted. 429 and 5xx: retry
  later. Any other answer: failed, with the gateway's own words.

Numbers are normalised with ``actors.mail.phone`` and the practice's ``sms_region``. Each
SMS row carries exactly one number in ``to_addrs``.

Both senders have ``resend_uncertain = False``: a failure after ``on_wire`` (the HTTP
request was written, or the email's final ``.`` went out) may have delivered the text, and
a text message has no Message-ID a phone could use to hide a duplicate, so the outbox
records it as uncertain and leaves it to a person (``email-service mail retry-failed``).

The parsing and the decisions (``parse_gateway``, ``build_http_request``,
``outcome_for_response``, ``sms_email``) are pure; ``HttpSmsSender`` and
``EmailToSmsSender`` are the thin shells that do the I/O, on the mailbox's thread. No
secret (``sms_password``, the basic-auth token) ever appears in an outcome's ``detail``, an
error or a log line.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import re
import ssl
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Literal
from urllib.parse import urlencode, urlsplit

from actors.mail import redact
from actors.mail.phone import PhoneNumberError, check_region, to_e164
from actors.mail.sender import OutgoingMessage, Sender, SendOutcome, ServerHealth
from actors.mail.settings import EmailSettings
from events.clock import Clock, SystemClock

PLACEHOLDERS = ("number", "e164", "national")
"""The names an email-to-SMS template may use, each in braces."""

HttpEncoding = Literal["form", "json"]

DEFAULT_TIMEOUT = 30.0
"""Seconds allowed for connecting to an HTTP gateway and for each read or write after that."""

MAX_ANSWER_BYTES = 65536
"""How much of a gateway's answer is read; the words that matter come first."""

MAX_DETAIL = 300
"""Characters of a gateway's words kept in ``SendOutcome.detail``."""

USER_AGENT = "practice-email-service"

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_LOCAL_LITERAL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`|~-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# The keys REST SMS APIs put their explanation under, most specific first.
_ANSWER_KEYS = ("message", "error_message", "error_description", "detail", "description", "error")


class SmsGatewayError(ValueError):
    """Raised when the practice's SMS settings cannot be used (``sms_gateway``,
    ``sms_region``, or a gateway that needs SMTP without it); one line naming the column."""


# --- the gateway setting (pure) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EmailGateway:
    """An email-to-SMS gateway: ``template`` is ``LOCAL@DOMAIN`` with placeholders in LOCAL."""

    template: str

    def address_for(self, e164: str) -> str:
        """Return the email address for the E.164 number ``e164`` (checked by ``to_e164``)."""
        import phonenumbers  # on first use, as in actors.mail.phone (its docstring says why)

        parsed = phonenumbers.parse(e164, None)
        national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        return self.template.format(
            number=e164.removeprefix("+"),
            e164=e164,
            national="".join(c for c in national if c.isdigit()),
        )


@dataclass(frozen=True, slots=True)
class HttpGateway:
    """An HTTP gateway: POST to ``url`` with the fields form-encoded or as JSON."""

    url: str = field(repr=False)  # its query may hold an API key
    encoding: HttpEncoding = "form"
    secure: bool = field(init=False)
    host: str = field(init=False)
    port: int | None = field(init=False)
    target: str = field(init=False)  # path and query, what goes on the request line

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        object.__setattr__(self, "secure", parts.scheme.lower() == "https")
        object.__setattr__(self, "host", parts.hostname or "")
        object.__setattr__(self, "port", parts.port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        object.__setattr__(self, "target", target)


Gateway = EmailGateway | HttpGateway


def parse_gateway(text: str) -> Gateway:
    """Return the gateway ``email_settings.sms_gateway`` describes. Pure.

    Raises ``SmsGatewayError`` (and nothing else), one line naming the column, for an empty
    value, an unknown ``KIND:`` prefix, an email template without exactly one ``@``, with an
    unknown or missing placeholder or a bad domain, or a URL that is not http(s), has no
    host, carries a user name or password (those go in ``sms_username``/``sms_password``),
    has a fragment or a bad port. The URL itself is never repeated in a message: its query
    may hold an API key.
    """
    value = text.strip()
    if not value:
        raise SmsGatewayError(
            "email_settings.sms_gateway is empty; set it to email:{number}@GATEWAY-DOMAIN "
            "or to the HTTP gateway's URL (see docs/sms.md)"
        )
    if any(c.isspace() for c in value):
        raise SmsGatewayError("email_settings.sms_gateway must not contain spaces")
    kind, sep, rest = value.partition(":")
    kind = kind.lower()
    if sep and kind == "email":
        return _email_gateway(rest)
    if sep and kind in ("form", "json"):
        encoding: HttpEncoding = "form" if kind == "form" else "json"
        return _http_gateway(rest, encoding)
    if sep and kind in ("http", "https"):
        return _http_gateway(value, "form")
    if not sep or "@" in kind:
        return _email_gateway(value)
    raise SmsGatewayError(
        f"email_settings.sms_gateway starts with {kind[:20]!r}:, which is not a gateway kind; "
        "expected email:, form:, json:, http:// or https://"
    )


def _email_gateway(template: str) -> EmailGateway:
    local, at, domain = template.rpartition("@")
    if not at or not local or "@" in local:
        raise SmsGatewayError(
            "email_settings.sms_gateway: an email-to-SMS template is one address, "
            "e.g. email:{number}@sms.example.net"
        )
    if not _DOMAIN.match(domain):
        raise SmsGatewayError(
            f"email_settings.sms_gateway: {domain[:80]!r} is not a mail domain "
            "(letters, digits, hyphens and dots)"
        )
    try:
        pieces = list(string.Formatter().parse(local))
    except ValueError:
        raise SmsGatewayError(
            "email_settings.sms_gateway: unbalanced braces in the template; "
            "use {number}, {e164} or {national}"
        ) from None
    used = 0
    for literal, name, spec, conversion in pieces:
        if not _LOCAL_LITERAL.match(literal):
            raise SmsGatewayError(
                f"email_settings.sms_gateway: {literal[:40]!r} cannot be part of an address"
            )
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            raise SmsGatewayError(
                f"email_settings.sms_gateway: {{{name[:20]}}} is not a placeholder; "
                "use {number}, {e164} or {national}"
            )
        used += 1
    if used == 0:
        raise SmsGatewayError(
            "email_settings.sms_gateway: the template has no {number}, {e164} or {national}"
        )
    return EmailGateway(template=template)


def _http_gateway(url: str, encoding: HttpEncoding) -> HttpGateway:
    where = "email_settings.sms_gateway"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise SmsGatewayError(f"{where} is not a URL with a valid host and port") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise SmsGatewayError(f"{where}: an HTTP gateway's URL starts with https:// or http://")
    if parts.username is not None or parts.password is not None:
        raise SmsGatewayError(
            f"{where}: put the account in email_settings.sms_username and sms_password, "
            "not in the URL"
        )
    if not parts.hostname:
        raise SmsGatewayError(f"{where}: the URL has no host")
    if parts.fragment:
        raise SmsGatewayError(f"{where}: the URL must not have a #fragment")
    if port == 0:
        raise SmsGatewayError(f"{where}: the URL's port must be 1 to 65535")
    return HttpGateway(url=url, encoding=encoding)


# --- the HTTP exchange (pure) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One POST to an HTTP gateway, ready to write. ``headers`` may hold the basic-auth
    token: never show them."""

    target: str
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)


def basic_token(username: str, password: str) -> str:
    """Return the base64 of ``username:password`` (UTF-8), as basic authentication sends it."""
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def build_http_request(
    gateway: HttpGateway, *, to: str, sender: str, text: str, username: str, password: str
) -> HttpRequest:
    """Return the POST for one SMS: fields ``To``, ``From`` (left out when ``sender`` is
    empty) and ``Body``; basic authentication when ``username`` or ``password`` is set. Pure."""
    fields: dict[str, str] = {"To": to}
    if sender:
        fields["From"] = sender
    fields["Body"] = text
    if gateway.encoding == "json":
        body = json.dumps(fields, ensure_ascii=False).encode("utf-8")
        content_type = "application/json; charset=utf-8"
    else:
        body = urlencode(fields).encode("ascii")
        content_type = "application/x-www-form-urlencoded"
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        "Accept": "application/json, text/plain;q=0.9, */*;q=0.1",
        "User-Agent": USER_AGENT,
    }
    if username or password:
        headers["Authorization"] = f"Basic {basic_token(username, password)}"
    return HttpRequest(target=gateway.target, headers=headers, body=body)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` on one line, its words as they are. Pure.

    Nothing is replaced (a mark where a password was would show where it is: see
    ``actors.mail.redact``): what the gateway said goes through ``answered`` or
    ``redact.auth_reply`` first, since every request to it carries the credentials."""
    del secrets
    return _CONTROL.sub(" ", text).strip()


def answered(status: int, reason: str, words: str, secrets: Iterable[str]) -> str:
    """Return "SMS gateway answered STATUS REASON: WORDS", the gateway's part (reason and
    words) kept only as ``redact.auth_reply`` allows: every request carries the
    practice's credentials, so any answer could echo them. Pure."""
    said = f"{status} {reason}".rstrip()
    if words:
        said = f"{said}: {words}"
    return f"SMS gateway answered {redact.auth_reply(said, secrets, MAX_DETAIL)}"


def gateway_words(body: bytes, content_type: str) -> str:
    """Return what the gateway said in ``body``: a JSON answer's message field, else the
    first non-empty line of text; "" when there is nothing readable. Pure."""
    text = body.decode("utf-8", errors="replace")
    if "json" in content_type.lower() or text.lstrip().startswith(("{", "[")):
        try:
            words = _json_words(json.loads(text))
        except ValueError:
            words = None
        if words:
            return words
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _json_words(value: object) -> str | None:
    if isinstance(value, list) and value:
        return _json_words(value[0])
    if not isinstance(value, dict):
        return None
    for key in _ANSWER_KEYS:
        found = value.get(key)
        if isinstance(found, str) and found.strip():
            return found.strip()
        if isinstance(found, (dict, list)):
            nested = _json_words(found)
            if nested:
                return nested
    return None


def outcome_for_response(
    status: int, reason: str, body: bytes, content_type: str, secrets: Iterable[str]
) -> SendOutcome:
    """Decide what an HTTP gateway's answer means. Pure.

    2xx ``sent``; 429 and 5xx ``retry``; anything else (4xx, and 1xx/3xx, which a REST SMS
    API does not answer a POST with) ``failed``. ``detail`` is the status and the gateway's
    words, at most ``MAX_DETAIL`` characters (``answered``: withheld when they hold a secret).
    ``server`` is ``fault`` for 5xx and for 401/403 (the gateway is failing, or refuses the
    practice's account: every text would get the same answer), else ``ok`` (an answer
    about this text, such as a number it cannot reach, or 429 to slow down).
    """
    if 200 <= status < 300:
        return SendOutcome("sent", server="ok")
    server: ServerHealth = "fault" if status >= 500 or status in (401, 403) else "ok"
    words = gateway_words(body, content_type)
    detail = answered(status, reason, words, secrets)[:MAX_DETAIL]
    if status == 429 or 500 <= status < 600:
        return SendOutcome("retry", detail, server=server)
    return SendOutcome("failed", detail, server=server)


def probe_verdict(
    status: int, reason: str, body: bytes, content_type: str, secrets: Iterable[str] = ()
) -> str:
    """Judge the gateway's answer to the self-test's ``HEAD``: "" when it works, else the
    reason in its words. Pure. A 5xx other than 501 (the method not implemented: a POST
    endpoint's usual answer to HEAD) and 401/403 (the practice's account refused) fail."""
    if (status >= 500 and status != 501) or status in (401, 403):
        return answered(status, reason, gateway_words(body, content_type), secrets)
    return ""


def probe_gateway(
    settings: EmailSettings, timeout: float, context: ssl.SSLContext | None = None
) -> str:
    """The self-test of an HTTP gateway: connect (TLS and certificate for https), send
    ``HEAD`` to its URL with the practice's basic authentication, judge the answer with
    ``probe_verdict``. Returns "" when it works, else one line in plain words without a
    secret. No text message is sent. An email-to-SMS gateway has nothing of its own to
    probe (its SMTP server is the ``smtp`` component): "". Blocks at most a few
    ``timeout``s on the calling thread."""
    gateway = parse_gateway(settings.sms_gateway)
    if not isinstance(gateway, HttpGateway):
        return ""
    secrets: tuple[str, ...] = ()
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    if settings.sms_username or settings.sms_password:
        token = basic_token(settings.sms_username, settings.sms_password)
        headers["Authorization"] = f"Basic {token}"
        secrets = (settings.sms_password, token) if settings.sms_password else (token,)
    conn = _open(gateway, timeout, context)
    try:
        conn.request("HEAD", gateway.target, headers=headers)
        answer = conn.getresponse()
        body = answer.read(MAX_ANSWER_BYTES)
        verdict = probe_verdict(
            answer.status, answer.reason, body, answer.getheader("Content-Type", ""), secrets
        )
    except (OSError, http.client.HTTPException) as exc:
        words = f"timed out after {timeout:g} s" if isinstance(exc, TimeoutError) else str(exc)
        if isinstance(exc, http.client.HTTPException):  # the gateway's own bytes
            words = redact.auth_reply(words, secrets, MAX_DETAIL)
        verdict = f"cannot reach the SMS gateway {gateway.host}: {words or type(exc).__name__}"
    finally:
        conn.close()
    return scrub(verdict, secrets)[:MAX_DETAIL]


def _open(
    gateway: HttpGateway, timeout: float, context: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    if gateway.secure:
        return http.client.HTTPSConnection(
            gateway.host,
            gateway.port,
            timeout=timeout,
            context=context or ssl.create_default_context(),
        )
    return http.client.HTTPConnection(gateway.host, gateway.port, timeout=timeout)


# --- what both senders share (pure) ------------------------------------------------------


def sms_text(message: OutgoingMessage) -> str:
    """The text of an SMS row: ``body_text``, or ``subject`` when the body is empty."""
    return message.body_text.strip() or message.subject.strip()


def sms_number(message: OutgoingMessage, region: str) -> str | SendOutcome:
    """Return the row's one number in E.164, or the ``failed`` outcome saying why not. Pure."""
    numbers = [n for n in message.to_addrs if n.strip()]
    if len(numbers) != 1:
        return SendOutcome(
            "failed", f"an SMS row takes exactly one number in to_addrs; it has {len(numbers)}"
        )
    try:
        return to_e164(numbers[0], region)
    except PhoneNumberError as exc:
        return SendOutcome("failed", str(exc))


def sms_email(*, from_addr: str, to_addr: str, message_id: str, text: str, date: str) -> bytes:
    """Return the plain-text email that carries one SMS through an email-to-SMS gateway:
    From, To, Date, Message-ID and the text, no subject, no HTML; CRLF line ends. Pure."""
    mail = EmailMessage(policy=SMTP)
    mail["From"] = from_addr
    mail["To"] = to_addr
    mail["Date"] = date
    mail["Message-ID"] = message_id
    mail.set_content(text, cte="7bit" if text.isascii() else "quoted-printable")
    return mail.as_bytes()


# --- the senders (I/O) ------------------------------------------------------------------


class HttpSmsSender:
    """Sends each SMS as one POST to an HTTP gateway, on a fresh connection.

    A fresh connection per message, so a failure while writing can only be this message's:
    a reused connection the gateway had closed would make an unsent request look
    uncertain. Runs on the caller's (the mailbox's) thread and blocks for at most
    ``timeout`` seconds per connect, write or read. Outcomes: a failure while connecting
    (refused, unreachable, timeout, TLS handshake or certificate) is ``retry``; ``on_wire``
    is called just before the request is written, and any failure after it (timeout,
    reset, a garbled answer) is ``uncertain``; an answer is judged by
    ``outcome_for_response``. Only an exception raised by ``on_wire`` itself propagates.
    """

    resend_uncertain = False

    def __init__(
        self,
        gateway: HttpGateway,
        *,
        region: str,
        sender: str,
        username: str,
        password: str,
        timeout: float = DEFAULT_TIMEOUT,
        context: ssl.SSLContext | None = None,
    ) -> None:
        """``sender`` is the ``From`` field (``sms_from``); ``context`` the TLS settings for
        an https gateway (default: the system's trusted certificates, verified)."""
        self._gateway = gateway
        self._region = region
        self._sender = sender
        self._username = username
        self._password = password
        self._timeout = timeout
        self._context = context
        self._secrets = (password, basic_token(username, password)) if password else ()

    def __repr__(self) -> str:
        return f"HttpSmsSender(host={self._gateway.host!r}, encoding={self._gateway.encoding!r})"

    def send(self, message: OutgoingMessage, on_wire: Callable[[], None]) -> SendOutcome:
        """POST the SMS in ``message``; see the class docstring for the outcomes."""
        number = sms_number(message, self._region)
        if isinstance(number, SendOutcome):
            return number
        text = sms_text(message)
        if not text:
            return SendOutcome("failed", "the SMS has no text (body_text and subject are empty)")
        request = build_http_request(
            self._gateway,
            to=number,
            sender=self._sender,
            text=text,
            username=self._username,
            password=self._password,
        )
        host = self._gateway.host
        conn = self._connection()
        try:
            try:
                conn.connect()
            except OSError as exc:  # refused, unreachable, timed out, TLS: nothing was sent
                return SendOutcome(
                    "retry",
                    f"cannot connect to the SMS gateway {host}: {self._describe(exc)}",
                    server="fault",
                )
            on_wire()
            try:
                conn.request("POST", request.target, body=request.body, headers=request.headers)
                answer = conn.getresponse()
                body = answer.read(MAX_ANSWER_BYTES)
            except (OSError, http.client.HTTPException) as exc:
                return SendOutcome(
                    "uncertain",
                    f"no answer from the SMS gateway {host} after the request was sent "
                    f"({self._describe(exc)}); the text may have been delivered",
                    server="fault",
                )
            return outcome_for_response(
                answer.status,
                answer.reason,
                body,
                answer.getheader("Content-Type", ""),
                self._secrets,
            )
        finally:
            conn.close()

    def close(self) -> None:
        """Nothing to release: each message has its own connection."""

    def _connection(self) -> http.client.HTTPConnection:
        return _open(self._gateway, self._timeout, self._context)

    def _describe(self, exc: BaseException) -> str:
        words = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            words = f"timed out after {self._timeout:g} s"
        elif isinstance(exc, http.client.HTTPException):  # the gateway's own bytes
            words = redact.auth_reply(words, self._secrets, MAX_DETAIL)
        return scrub(words, self._secrets)[:MAX_DETAIL]


class EmailToSmsSender:
    """Sends each SMS as a short plain-text email to the gateway's address, through the
    email ``Sender`` it is given (the practice's SMTP path).

    The email is built here (``sms_email``) and handed over as ``raw``, so what the gateway
    receives does not depend on how the email sender builds messages; the row's Message-ID
    is kept. ``on_wire`` is passed through: the email sender calls it before the final
    ``.``. Its outcome is returned as it is, a refused gateway address shown as the
    number. ``close`` leaves the email sender open: it belongs to the caller.
    """

    resend_uncertain = False

    def __init__(
        self,
        gateway: EmailGateway,
        email_sender: Sender,
        *,
        region: str,
        from_address: str,
        clock: Clock,
    ) -> None:
        """``from_address`` is used when a row has no ``from_addr`` (the practice's
        ``email_settings.from_address``); ``clock`` dates the emails."""
        self._gateway = gateway
        self._email = email_sender
        self._region = region
        self._from = from_address
        self._clock = clock

    def send(self, message: OutgoingMessage, on_wire: Callable[[], None]) -> SendOutcome:
        """Email the SMS in ``message`` to the gateway; the email sender's outcome."""
        number = sms_number(message, self._region)
        if isinstance(number, SendOutcome):
            return number
        text = sms_text(message)
        if not text:
            return SendOutcome("failed", "the SMS has no text (body_text and subject are empty)")
        from_addr = message.from_addr.strip() or self._from
        if not from_addr:
            return SendOutcome(
                "failed", "no sender address for the SMS email: set email_settings.from_address"
            )
        address = self._gateway.address_for(number)
        raw = sms_email(
            from_addr=from_addr,
            to_addr=address,
            message_id=message.message_id,
            text=text,
            date=format_datetime(self._clock.now()),
        )
        email = OutgoingMessage(
            row_id=message.row_id,
            channel="email",
            message_id=message.message_id,
            from_addr=from_addr,
            to_addrs=(address,),
            cc_addrs=(),
            subject="",
            body_text=text,
            body_html="",
            raw=raw,
            attempts=message.attempts,
        )
        # One number, one gateway address: the email's per-recipient record says nothing
        # the outcome does not (and would name the gateway's address, not the number).
        outcome = dataclasses.replace(self._email.send(email, on_wire), recipients=())
        if address in outcome.refused:
            refused = tuple(number if r == address else r for r in outcome.refused)
            return dataclasses.replace(outcome, refused=refused)
        return outcome

    def close(self) -> None:
        """Nothing to release here; the email sender is closed by its owner."""


def sms_sender_for(
    settings: EmailSettings,
    email_sender: Sender | None,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    clock: Clock | None = None,
    context: ssl.SSLContext | None = None,
) -> Sender | None:
    """Return the ``Sender`` for the practice's SMS rows, or None when ``sms_enabled`` is off.

    ``email_sender`` is the practice's email ``Sender`` (needed by an email-to-SMS
    gateway; None when SMTP is not configured). ``timeout`` bounds each network step of an
    HTTP gateway; ``clock`` dates email-to-SMS messages (default the system clock);
    ``context`` is the TLS settings for an https gateway. Raises ``SmsGatewayError`` for an
    unusable ``sms_gateway`` or ``sms_region``, or an email gateway without an email sender.
    """
    if not settings.sms_enabled:
        return None
    gateway = parse_gateway(settings.sms_gateway)
    try:
        region = check_region(settings.sms_region)
    except PhoneNumberError as exc:
        raise SmsGatewayError(str(exc)) from None
    if isinstance(gateway, HttpGateway):
        return HttpSmsSender(
            gateway,
            region=region,
            sender=settings.sms_from,
            username=settings.sms_username,
            password=settings.sms_password,
            timeout=timeout,
            context=context,
        )
    if email_sender is None:
        raise SmsGatewayError(
            "email_settings.sms_gateway is an email-to-SMS gateway, which sends through "
            "SMTP: set email_settings.smtp_host"
        )
    return EmailToSmsSender(
        gateway,
        email_sender,
        region=region,
        from_address=settings.from_address,
        clock=clock or SystemClock(),
    )
