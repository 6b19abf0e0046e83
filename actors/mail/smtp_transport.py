"""Sending over SMTP: ``SmtpSender`` (the outbox's ``Sender`` for email) and ``probe``.

One connection is opened on the first ``send`` and reused for the batch until ``close()``.
Security is the practice's ``smtp_security``: ``none``, ``starttls`` (required: a server
without it is refused) or ``tls`` (implicit TLS). Certificates are always verified, host
name included, against the system's authorities plus ``mail.ca_file`` when set. AUTH is
used when ``smtp_username`` is set (``smtp_auth = password``), or AUTH XOAUTH2 with an
access token (``smtp_auth = oauth2``, ``sign_in``), never with ``none``. Every socket
has a timeout (``mail.io_timeout_seconds``, at most half the mailbox's hang limit), and
every reply read beats (``actors.progress``): a server that takes a second per message
keeps the mailbox visibly busy, one that accepts and never answers gives "no answer from
HOST:PORT in N s" after one timeout.

``SmtpSender`` drives MAIL, RCPT and DATA itself, because ``smtplib``'s ``data()`` sends the
final ``.`` together with the body: here the 354 is read, the dot-stuffed body is sent,
``on_wire()`` is called, then ``.`` goes out and the reply is read. Where the server
offers PIPELINING (RFC 2920), MAIL, every RCPT and DATA go as one group and their replies
are read in order (one round trip instead of two plus one per recipient). So a failure is known
to fall before the point of no return (``retry``) or after it (``uncertain``). Replies:
2xx sent; 4xx retry; 5xx failed with the server's words; some recipients refused: sent to
the rest, the refused ones reported; all refused: failed (retry if any refusal was 4xx).
A connection or set-up failure (refused, timed out, certificate, password) is ``retry``,
and every later ``send`` before ``close()`` gets the same answer without another attempt,
so a dead server costs one timeout per batch, not one per message.

``probe`` is the self-test: connect, EHLO, STARTTLS/TLS, AUTH, RSET, QUIT, no mail sent;
it returns ok or a one-line reason in plain words. No text made here holds a password:
the reply to AUTH, the one exchange that carries it, is kept only as ``redact.auth_reply``
allows (its codes, and its words when they hold no secret in any form); every other text
is shown as it is, never rewritten word by word (``actors.mail.redact``).
"""

from __future__ import annotations

import dataclasses
import errno
import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from actors import progress
from actors.mail import compose, redact, sign_in_words
from actors.mail.oauth import OAuthError, TokenSource, smtp_authobject
from actors.mail.sender import (
    OutcomeKind,
    OutgoingMessage,
    RecipientResult,
    SendOutcome,
    ServerHealth,
)
from actors.mail.settings import SECRET_FIELDS, EmailSettings
from events.clock import Clock

_CHUNK = 64 * 1024
_LINE_END = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
_MAX_DETAIL = 500
_DEFAULT_LOCAL_HOSTNAME = socket.gethostname() or "localhost"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What ``probe`` found: ``ok``, or a one-line ``reason`` in plain words."""

    ok: bool
    reason: str = ""


class _SetupError(Exception):
    """Raised inside this module when the server lacks what the settings require."""


class _Client(smtplib.SMTP):
    """``smtplib.SMTP`` that beats (``actors.progress``) once connected (and, for implicit
    TLS, once the handshake is done) and at every reply it reads: at most one wait, of
    at most the timeout, between two beats."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        progress.beat()
        return sock

    def getreply(self) -> tuple[int, bytes]:
        reply = super().getreply()
        progress.beat()
        return reply


class _TlsClient(_Client, smtplib.SMTP_SSL):
    """``smtplib.SMTP_SSL`` that beats at every reply it reads."""


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """Return a verifying client context: the system's authorities plus ``ca_file``.

    Raises ``OSError``/``ssl.SSLError`` when ``ca_file`` cannot be read.
    """
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def classify_reply(code: int) -> OutcomeKind:
    """Return what an SMTP reply code means for the message: 2xx sent, 5xx failed, else retry."""
    if 200 <= code < 300:
        return "sent"
    if 500 <= code < 600:
        return "failed"
    return "retry"


def dot_stuff(data: bytes) -> bytes:
    """Return ``data`` as a DATA body: CRLF line endings, leading dots doubled, ending in
    CRLF (the final ``.`` line is not included)."""
    body = _LINE_END.sub(b"\r\n", data)
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return _LEADING_DOT.sub(b"..", body)


def scrub(text: str, settings: EmailSettings) -> str:
    """Return ``text`` on one line, at most 500 characters, its words as they are.

    Nothing is replaced: a password's every occurrence replaced by a mark would show the
    reader where it is (``actors.mail.redact``). Text that could hold a secret, a reply to
    AUTH, goes through ``redact.auth_reply`` before it gets here. ``settings`` is kept for
    the callers."""
    del settings
    return redact.one_line(text, _MAX_DETAIL)


def secrets_of(settings: EmailSettings) -> tuple[str, ...]:
    """The secrets an authentication reply must not be shown with: every secret column
    (``SECRET_FIELDS``). An access token made from them belongs here too."""
    found = (getattr(settings, name) for name in sorted(SECRET_FIELDS))
    return tuple(s for s in found if isinstance(s, str) and s)


def _words(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {text}".strip()


def describe_failure(exc: BaseException, settings: EmailSettings, timeout: float) -> str:
    """Return a one-line, secret-free reason in plain words for a connection failure."""
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    reason: str
    if isinstance(exc, _SetupError):  # a sign-in's failure says what to do first
        reason = sign_in_words.advised(str(exc), settings, "smtp")
    elif isinstance(exc, ssl.SSLCertVerificationError):
        reason = f"certificate not trusted for {where} ({exc.verify_message or exc.reason})"
    elif isinstance(exc, ssl.SSLError):
        reason = f"TLS failed with {where} ({exc.reason or exc}); check smtp_security and port"
    elif isinstance(exc, smtplib.SMTPAuthenticationError):
        said = redact.auth_reply(_words(exc.smtp_code, exc.smtp_error), secrets_of(settings))
        advice = sign_in_words.words_for(said, settings, "smtp")
        reason = f"{advice or 'wrong user name or password'} (the server said: {said})"
    elif isinstance(exc, smtplib.SMTPNotSupportedError):
        reason = f"the mail server at {where} does not offer AUTH (log-in); check smtp_security"
    elif isinstance(exc, smtplib.SMTPResponseException):
        said = _words(exc.smtp_code, exc.smtp_error)
        advice = sign_in_words.words_for(said, settings, "smtp")
        reason = (
            f"{advice} (the server said: {said})"
            if advice
            else f"the mail server at {where} refused: {said}"
        )
    elif isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(
        exc.__context__, TimeoutError
    ):
        reason = f"no answer from {where} in {timeout:g} s"
    elif isinstance(exc, smtplib.SMTPServerDisconnected):
        reason = f"the mail server at {where} closed the connection"
    elif isinstance(exc, ConnectionRefusedError):
        reason = f"port closed: nothing accepts connections at {where}"
    elif isinstance(exc, TimeoutError):
        reason = f"no answer from {where} in {timeout:g} s"
    elif isinstance(exc, socket.gaierror):
        reason = f"host not found: {settings.smtp_host}"
    elif isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        reason = f"host unreachable: {settings.smtp_host}"
    elif isinstance(exc, OSError):
        reason = f"network error with {where}: {exc.strerror or exc}"
    else:
        reason = f"SMTP error with {where}: {exc}"
    return scrub(reason, settings)


def open_connection(
    settings: EmailSettings,
    *,
    timeout: float,
    ca_file: str = "",
    local_hostname: str = "",
    tokens: TokenSource | None = None,
) -> smtplib.SMTP:
    """Connect, EHLO, secure and log in as ``settings`` say; return the ready connection.

    ``smtp_auth``: ``password`` logs in with the user name and password (when there is
    a user name), ``none`` never, ``oauth2`` signs in with an access token from
    ``tokens`` (``sign_in``). Raises ``OSError``, ``ssl.SSLError``,
    ``smtplib.SMTPException`` or ``_SetupError`` (see ``describe_failure`` for the
    words), closing the socket first.
    """
    name = local_hostname or _DEFAULT_LOCAL_HOSTNAME
    context = tls_context(ca_file) if settings.smtp_security != "none" else None
    connection: smtplib.SMTP
    if settings.smtp_security == "tls":
        connection = _TlsClient(
            settings.smtp_host,
            settings.smtp_port,
            local_hostname=name,
            timeout=timeout,
            context=context,
        )
    else:
        connection = _Client(
            settings.smtp_host, settings.smtp_port, local_hostname=name, timeout=timeout
        )
    try:
        if connection.sock is not None:
            # The final "." goes out alone after on_wire: without this, Nagle's algorithm
            # holds it until the server's delayed ACK of the body (about 40 ms a message).
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.ehlo_or_helo_if_needed()
        if settings.smtp_security == "starttls":
            if not connection.has_extn("starttls"):
                raise _SetupError(
                    f"the mail server at {settings.smtp_host}:{settings.smtp_port} "
                    "does not offer STARTTLS; check smtp_security and port"
                )
            connection.starttls(context=context)
            connection.ehlo()
        if settings.smtp_auth == "oauth2":
            sign_in(connection, settings, tokens)
        elif settings.smtp_username and settings.smtp_auth == "password":
            connection.login(settings.smtp_username, settings.smtp_password)
    except UnicodeEncodeError:
        # smtplib sends AUTH in ASCII; its error would quote a letter of the password.
        connection.close()
        raise _SetupError(
            "the user name or password has a letter beyond ASCII, which SMTP log-in "
            "(AUTH PLAIN/LOGIN) cannot send; use a password of ASCII letters, digits and signs"
        ) from None
    except BaseException:
        connection.close()
        raise
    return connection


def sign_in(connection: smtplib.SMTP, settings: EmailSettings, tokens: TokenSource | None) -> None:
    """AUTH XOAUTH2 with an access token from ``tokens``, on a connection past EHLO (and
    STARTTLS and the EHLO after it). ``AUTH XOAUTH2``, then the token at the server's
    ``334`` (Microsoft's documented exchange; Gmail takes it too). A refused token is
    forgotten and a new one fetched for one more try before the refusal counts. Raises
    ``_SetupError`` in plain words (the provider's or the server's words kept; never the
    token or the XOAUTH2 string)."""
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    if tokens is None:
        raise _SetupError("OAuth 2.0 sign-in is set (smtp_auth = oauth2) but not available here")
    offered = connection.esmtp_features.get("auth", "").upper().split()
    if "XOAUTH2" not in offered:
        raise _SetupError(
            f"the mail server at {where} does not offer OAuth 2.0 sign-in (AUTH XOAUTH2); "
            "check smtp_host, smtp_port and smtp_security"
        )
    for attempt in range(2):
        try:
            token = tokens.token()
        except OAuthError as exc:
            raise _SetupError(f"sign-in for sending mail failed: {exc}") from None
        try:
            connection.auth(
                "XOAUTH2", smtp_authobject(tokens.user, token), initial_response_ok=False
            )
            return
        except smtplib.SMTPAuthenticationError as exc:
            tokens.refused(token)
            if attempt == 1:
                said = redact.auth_reply(
                    _words(exc.smtp_code, exc.smtp_error), (*secrets_of(settings), token)
                )
                raise _SetupError(
                    f"the mail server at {where} refused the sign-in of {tokens.user} "
                    f"(the server said: {said})"
                ) from None


def probe(
    settings: EmailSettings,
    *,
    timeout: float,
    ca_file: str = "",
    local_hostname: str = "",
    tokens: TokenSource | None = None,
) -> ProbeResult:
    """Check the practice's SMTP set-up without sending mail: connect, EHLO, STARTTLS or
    TLS, AUTH, RSET, QUIT. Returns ``ProbeResult(ok=True)`` or a plain one-line reason
    (wrong password, certificate not trusted, host unreachable, port closed, timed out).
    Blocks for at most a few ``timeout``s; runs on the calling thread."""
    if not settings.smtp_configured:
        return ProbeResult(False, "no mail server is set (smtp_host is empty)")
    try:
        connection = open_connection(
            settings,
            timeout=timeout,
            ca_file=ca_file,
            local_hostname=local_hostname,
            tokens=tokens,
        )
    except (OSError, smtplib.SMTPException, _SetupError) as exc:
        return ProbeResult(False, describe_failure(exc, settings, timeout))
    try:
        code, message = connection.rset()
        if code != 250:
            return ProbeResult(False, scrub(f"RSET was refused: {_words(code, message)}", settings))
        connection.quit()
    except (OSError, smtplib.SMTPException) as exc:
        return ProbeResult(False, describe_failure(exc, settings, timeout))
    finally:
        connection.close()
    return ProbeResult(True)


@dataclass(frozen=True, slots=True)
class _Envelope:
    """The replies to MAIL/RCPT/DATA: per recipient ``rcpt``; ``refusal`` when the
    message cannot go on (MAIL or DATA refused; RSET already sent)."""

    rcpt: tuple[tuple[int, bytes], ...]
    refusal: SendOutcome | None


def _refused(code: int) -> bool:
    return classify_reply(code) != "sent"


def _per_recipient(
    answers: tuple[tuple[str, tuple[int, bytes]], ...], *, accepted: bool
) -> tuple[RecipientResult, ...]:
    """Each recipient's result from its RCPT reply: 4xx deferred, 5xx refused, 2xx sent
    when the message itself was ``accepted`` (else nothing is known of it yet)."""
    results: list[RecipientResult] = []
    for recipient, (code, message) in answers:
        kind = classify_reply(code)
        if kind == "sent" and accepted:
            results.append(RecipientResult(recipient.lower(), "sent"))
        elif kind == "retry":
            results.append(RecipientResult(recipient.lower(), "deferred", _words(code, message)))
        elif kind == "failed":
            results.append(RecipientResult(recipient.lower(), "refused", _words(code, message)))
    return tuple(results)


def _check_421(code: int, message: bytes) -> None:
    """A 421 reply means the server is closing the connection: treat it as lost (when
    pipelining, the replies after it never come)."""
    if code == 421:
        raise smtplib.SMTPServerDisconnected(_words(code, message))


class _Lost(Exception):
    """The connection failed; ``wired`` says whether it was after ``on_wire``."""

    def __init__(self, cause: BaseException, wired: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.wired = wired


class SmtpSender:
    """The outbox's ``Sender`` for email over SMTP; see the module docstring.

    Used from one thread (the mailbox's). ``clock`` gives the Date of built messages.
    ``connections_opened`` counts connections made (a batch should make one).
    """

    resend_uncertain = True

    def __init__(
        self,
        settings: EmailSettings,
        *,
        timeout: float,
        clock: Clock,
        ca_file: str = "",
        local_hostname: str = "",
        tokens: TokenSource | None = None,
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._timeout = timeout
        self._clock = clock
        self._ca_file = ca_file
        self._local_hostname = local_hostname
        self._connection: smtplib.SMTP | None = None
        self._broken: SendOutcome | None = None
        self.connections_opened = 0

    def send(self, message: OutgoingMessage, on_wire: Callable[[], None]) -> SendOutcome:
        """Deliver ``message``; ``on_wire()`` is called just before the final ``.``.

        An exception raised by ``on_wire`` closes the connection without the final ``.``
        (the message is not delivered) and propagates.
        """
        if self._broken is not None:
            return self._broken
        try:
            data = compose.message_bytes(message, self._clock.now())
            sender, everyone = compose.envelope(message)
        except compose.ComposeError as exc:
            return SendOutcome("failed", scrub(str(exc), self._settings))
        recipients = tuple(r for r in everyone if r.lower() not in message.skip)
        if not recipients:
            return SendOutcome("sent")  # an earlier attempt settled every recipient
        for attempt in range(2):
            reused = self._connection is not None
            try:
                connection = self._connect()
            except (OSError, smtplib.SMTPException, _SetupError) as exc:
                self._broken = SendOutcome(
                    "retry", describe_failure(exc, self._settings, self._timeout), server="fault"
                )
                return self._broken
            try:
                answered = self._international(connection, sender, recipients, data, on_wire)
            except _Lost as lost:
                self._drop()
                if lost.wired:
                    return SendOutcome(
                        "uncertain",
                        "the connection failed after the message was sent and before the "
                        "server's reply: "
                        + describe_failure(lost.cause, self._settings, self._timeout),
                        server="fault",
                    )
                if not (reused and attempt == 0):
                    return SendOutcome(
                        "retry",
                        describe_failure(lost.cause, self._settings, self._timeout),
                        server="fault",
                    )
            else:
                # The server answered (a 4xx or 5xx for this message is this message's
                # problem); a reply it could not make sense of is not an answer.
                health: ServerHealth = "fault" if answered.kind == "uncertain" else "ok"
                return dataclasses.replace(answered, server=health)
                # A reused connection the server had closed: once more on a new one.
        raise AssertionError("unreachable: the second attempt always returns")

    def close(self) -> None:
        """Say QUIT and close the connection (if any); forget a connection failure."""
        self._broken = None
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.quit()
            except (OSError, smtplib.SMTPException):
                pass
            finally:
                connection.close()

    def _connect(self) -> smtplib.SMTP:
        if self._connection is None:
            self._connection = open_connection(
                self._settings,
                timeout=self._timeout,
                ca_file=self._ca_file,
                local_hostname=self._local_hostname,
                tokens=self._tokens,
            )
            self.connections_opened += 1
        return self._connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _reset(self, connection: smtplib.SMTP) -> None:
        try:
            code, _message = connection.rset()
        except (OSError, smtplib.SMTPException):
            code = 0
        if code != 250:
            self._drop()

    def _outcome(self, code: int, message: bytes, step: str) -> SendOutcome:
        kind = classify_reply(code)
        return SendOutcome(kind, scrub(f"{step}: {_words(code, message)}", self._settings))

    def _envelope_one_by_one(
        self, connection: smtplib.SMTP, sender: str, recipients: tuple[str, ...], options: list[str]
    ) -> _Envelope:
        """MAIL, each RCPT, DATA, each answered before the next goes. After a refusal
        that ends the transaction, RSET has been sent and ``refusal`` says why (none when
        every recipient was refused: the caller words that)."""
        code, message = connection.mail(sender, options)
        _check_421(code, message)
        if classify_reply(code) != "sent":
            self._reset(connection)
            return _Envelope((), self._outcome(code, message, "MAIL FROM refused"))
        rcpt = tuple(connection.rcpt(recipient) for recipient in recipients)
        if all(_refused(code) for code, _m in rcpt):
            self._reset(connection)
            return _Envelope(rcpt, None)
        code, message = connection.docmd("DATA")
        if code != 354:
            self._reset(connection)
            return _Envelope(rcpt, self._outcome(code, message, "DATA refused"))
        return _Envelope(rcpt, None)

    def _envelope_pipelined(
        self, connection: smtplib.SMTP, sender: str, recipients: tuple[str, ...], options: list[str]
    ) -> _Envelope:
        """MAIL, every RCPT and DATA sent as one group (RFC 2920, the server offers
        PIPELINING), then their replies read in order. When DATA was accepted although
        MAIL or every RCPT was not, a lone "." ends that empty message (RFC 2920 3.1)
        before RSET; the server refuses it for want of recipients."""
        extra = " " + " ".join(options) if options else ""
        group = [f"MAIL FROM:{smtplib.quoteaddr(sender)}{extra}\r\n"]
        group += [f"RCPT TO:{smtplib.quoteaddr(r)}\r\n" for r in recipients]
        group.append("DATA\r\n")
        connection.send("".join(group))
        mail = connection.getreply()
        _check_421(*mail)
        rcpt = []
        for _recipient in recipients:
            reply = connection.getreply()
            _check_421(*reply)
            rcpt.append(reply)
        data = connection.getreply()
        _check_421(*data)
        refusal: SendOutcome | None = None
        if classify_reply(mail[0]) != "sent":
            refusal = self._outcome(mail[0], mail[1], "MAIL FROM refused")
        elif data[0] != 354 and not all(_refused(code) for code, _m in rcpt):
            refusal = self._outcome(data[0], data[1], "DATA refused")
        ended = refusal is not None or all(_refused(code) for code, _m in rcpt)
        if data[0] == 354 and ended:
            connection.send(b".\r\n")
            connection.getreply()
        if ended:
            self._reset(connection)
        return _Envelope(tuple(rcpt), refusal)

    def _international(
        self,
        connection: smtplib.SMTP,
        sender: str,
        recipients: tuple[str, ...],
        data: bytes,
        on_wire: Callable[[], None],
    ) -> SendOutcome:
        """The transaction, with SMTPUTF8 (RFC 6531) where an address needs it: used when
        the server offers it; else an address with characters beyond ASCII before the @
        is refused for good with a reason in plain words, and the others are sent to."""
        needed = [a for a in (sender, *recipients) if compose.needs_smtputf8(a)]
        if not needed or connection.has_extn("smtputf8"):
            return self._transaction(connection, sender, recipients, data, on_wire, bool(needed))
        where = f"{self._settings.smtp_host}:{self._settings.smtp_port}"
        why = (
            "has characters beyond ASCII before the @, which needs SMTPUTF8, and the mail "
            f"server at {where} does not offer it"
        )
        if compose.needs_smtputf8(sender):
            return SendOutcome(
                "failed", scrub(f"the sender address {sender} {why}", self._settings), server="ok"
            )
        unsendable = tuple(r for r in recipients if compose.needs_smtputf8(r))
        results = tuple(RecipientResult(r.lower(), "refused", why) for r in unsendable)
        sendable = tuple(r for r in recipients if not compose.needs_smtputf8(r))
        words = "; ".join(f"{r} ({why})" for r in unsendable)
        if not sendable:
            return SendOutcome(
                "failed",
                scrub(f"every recipient was refused: {words}", self._settings),
                recipients=results,
            )
        answered = self._transaction(connection, sender, sendable, data, on_wire, False)
        detail = "; ".join(filter(None, (answered.detail, f"refused: {words}")))
        return dataclasses.replace(
            answered,
            detail=scrub(detail, self._settings),
            refused=(*answered.refused, *unsendable),
            recipients=(*results, *answered.recipients),
        )

    def _transaction(
        self,
        connection: smtplib.SMTP,
        sender: str,
        recipients: tuple[str, ...],
        data: bytes,
        on_wire: Callable[[], None],
        smtputf8: bool = False,
    ) -> SendOutcome:
        wired = False
        try:
            options: list[str] = []
            if connection.has_extn("8bitmime") and not data.isascii():
                options.append("BODY=8BITMIME")
            if smtputf8:
                options.append("SMTPUTF8")
                connection.command_encoding = "utf-8"
            if connection.has_extn("pipelining"):
                replies = self._envelope_pipelined(connection, sender, recipients, options)
            else:
                replies = self._envelope_one_by_one(connection, sender, recipients, options)
            connection.command_encoding = "ascii"
            answers = tuple(zip(recipients, replies.rcpt, strict=False))
            if replies.refusal is not None:
                return dataclasses.replace(
                    replies.refusal, recipients=_per_recipient(answers, accepted=False)
                )
            refusals = [(r, c, m) for r, (c, m) in answers if _refused(c)]
            refused_words = "; ".join(f"{r} ({_words(c, m)})" for r, c, m in refusals)
            if len(refusals) == len(recipients):
                temporary = any(classify_reply(c) == "retry" for _r, c, _m in refusals)
                return SendOutcome(
                    "retry" if temporary else "failed",
                    scrub(f"every recipient was refused: {refused_words}", self._settings),
                    recipients=_per_recipient(answers, accepted=False),
                )
            body = dot_stuff(data)
            for start in range(0, len(body), _CHUNK):
                connection.send(body[start : start + _CHUNK])
            try:
                on_wire()
            except BaseException:
                self._drop()  # no final "." ever follows: the server drops the message
                raise
            wired = True
            connection.send(b".\r\n")
            code, message = connection.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            raise _Lost(exc, wired) from exc
        if not 200 <= code < 600:
            return SendOutcome(
                "uncertain",
                scrub(
                    f"the server's reply to the final '.' was not understood: "
                    f"{_words(code, message)}",
                    self._settings,
                ),
            )
        outcome = self._outcome(code, message, "the message was refused")
        if outcome.kind != "sent":
            return dataclasses.replace(outcome, recipients=_per_recipient(answers, accepted=False))
        refused = tuple(r for r, c, _m in refusals if classify_reply(c) == "failed")
        deferred = [f"{r} ({_words(c, m)})" for r, c, m in refusals if r not in refused]
        words = [f"{r} ({_words(c, m)})" for r, c, m in refusals if r in refused]
        detail = "; ".join(
            part
            for part in (
                f"refused: {'; '.join(words)}" if words else "",
                f"deferred, to be tried again: {'; '.join(deferred)}" if deferred else "",
            )
            if part
        )
        return SendOutcome(
            "sent",
            scrub(detail, self._settings),
            refused,
            recipients=_per_recipient(answers, accepted=True),
        )
