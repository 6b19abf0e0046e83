"""One IMAP connection to a practice's mail folder, for the inbox import and the self-test.

``ImapSession.open`` connects (``imap_security`` ``none``/``starttls``/``tls``; certificates
always verified against the system's store plus ``mail.ca_file``; every socket operation
times out after ``mail.io_timeout_seconds``), logs in (a password, or an OAuth 2.0 access
token with ``imap_auth = oauth2``) and selects ``imap_folder``. The
session then lists new UIDs, fetches messages in batches with ``BODY.PEEK[]`` (so nothing
is marked read; ``fetch_begin``/``fetch_end`` send a FETCH and read its answer later,
so the server works while the caller does), applies the after-import action
(``keep``, ``delete``, ``move:FOLDER``) and waits for new mail: in IDLE where the server
offers it, with a keep-alive check (``dead_after``), otherwise with one NOOP.

imapclient 4.x facts this relies on (``NOTES.md``): ``fetch`` takes explicit ids only;
``UID n:*`` always returns the last message, so UIDs are filtered here; ``select_folder``
answers with bytes keys; ``idle_check`` does not notice a dead connection.

Every failure of the server or the network is raised as ``ImapError`` whose message is
one line in plain words, never a password (``plain_reason``); after one the session is
unusable and should be closed. ``probe`` is the self-test's and setup wizard's check.
Everything runs on the calling thread and blocks at most about ``io_timeout_seconds`` per
operation (``wait`` for the time it is given); every answer from the server, and every
one-second slice of a wait in IDLE, beats (``actors.progress``), so the watchdog sees a
mailbox importing from a slow server as busy, not hung. A server that accepts and never
answers gives "no answer from HOST:PORT in N s".
"""

from __future__ import annotations

import ast
import contextlib
import imaplib
import math
import re
import select
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from imapclient import IMAPClient
from imapclient.datetime_util import parse_to_datetime
from imapclient.exceptions import CapabilityError, LoginError
from imapclient.response_parser import parse_fetch_response

from actors import progress
from actors.mail import redact, sign_in_words
from actors.mail.oauth import OAuthError, TokenSource
from actors.mail.settings import SECRET_FIELDS, EmailSettings
from config.settings import MailSettings
from events.clock import Clock, SystemClock

DOVECOT_IDLE_NOTIFY_SECONDS = 120.0
"""Dovecot's default ``imap_idle_notify_interval``: it says "Still here" that often."""
DEAD_AFTER_SECONDS = 2 * DOVECOT_IDLE_NOTIFY_SECONDS + 30.0
"""Silence in IDLE beyond this means the connection is dead (a dead one looks silent)."""
REIDLE_SECONDS = 10 * 60.0
"""IDLE is re-issued after this long; RFC 2177 servers may drop it after 29 minutes."""
IDLE_SLICE_SECONDS = 1.0
"""How often, at most, a wait looks at the clock between server responses."""
ACTION_CHUNK = 500
"""UIDs per STORE/MOVE/COPY/EXPUNGE command."""
_EMPTY_BUT_READABLE_LIMIT = 3  # idle_check hides EOF as "no responses"; see _wait_idle


class ImapError(Exception):
    """Raised when the IMAP server cannot be used; the message says why in plain words."""


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    """One message as the server holds it."""

    uid: int
    raw: bytes
    internaldate: datetime | None  # naive UTC; when the server received it


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The self-test's answer: ``ok``, or a one-line ``reason`` without secrets."""

    ok: bool
    reason: str = ""


def plain_reason(
    exc: BaseException,
    settings: EmailSettings,
    *,
    connected: bool = False,
    timeout: float | None = None,
) -> str:
    """Return what went wrong, in plain words on one line, for ``exc`` raised while talking
    to ``settings``' IMAP server (``connected``: after the connection was made; ``timeout``:
    the socket timeout, for the words of a timeout). Pure. Never contains the password."""
    where = f"{settings.imap_host}:{settings.imap_port}"
    in_time = "in time" if timeout is None else f"in {timeout:g} s"
    if isinstance(exc, ImapError):
        return str(exc)
    if isinstance(exc, LoginError):
        reason = f"wrong user name or password for {settings.imap_username!r} on {where}"
        said = login_reply(exc, settings)
        advice = sign_in_words.words_for(said, settings, "imap") if said else ""
        if advice:  # a sign-in failure the server named: plain words, its words kept
            return f"{advice} (the server said: {said})"
        return f"{reason} (the server said: {said})" if said else reason
    if isinstance(exc, imaplib.IMAP4.error):  # after log-in: no secret in the exchange
        said = sign_in_words.one_line(_first_line(exc))
        advice = sign_in_words.words_for(said, settings, "imap")
        if advice:
            return f"{advice} (the server said: {said})"
    if isinstance(exc, CapabilityError):
        return f"the IMAP server at {where} does not offer {_first_line(exc)}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or _first_line(exc)
        return f"the certificate of {where} is not trusted ({detail})"
    if isinstance(exc, ssl.SSLError):
        return (
            f"the TLS handshake with {where} failed ({exc.reason or _first_line(exc)}); "
            f"is imap_security ({settings.imap_security}) right for this port?"
        )
    if isinstance(exc, ConnectionRefusedError):
        return f"port {settings.imap_port} on {settings.imap_host} is closed (connection refused)"
    if isinstance(exc, socket.gaierror):
        return f"the host {settings.imap_host!r} was not found"
    if isinstance(exc, TimeoutError) and connected:
        return f"the connection to {where} was lost (no answer {in_time})"
    if isinstance(exc, TimeoutError):
        return f"no answer from {where} {in_time}"
    if isinstance(exc, OSError) and exc.errno in (101, 113):  # ENETUNREACH, EHOSTUNREACH
        return f"host unreachable: {where} ({exc.strerror})"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, EOFError, imaplib.IMAP4.abort)):
        return f"the connection to {where} was lost ({_first_line(exc)})"
    if isinstance(exc, imaplib.IMAP4.error):
        text = _first_line(exc)
        if "NONEXISTENT" in text or "doesn't exist" in text.lower():
            return f"the folder {settings.imap_folder!r} does not exist on {where}"
        return f"the IMAP server at {where} refused: {text}"
    if isinstance(exc, OSError):
        return f"cannot reach {where} ({exc.strerror or _first_line(exc)})"
    return f"{type(exc).__name__}: {_first_line(exc)}"


_BYTES_REPR = re.compile(r"b(['\"]).*\1")


def login_reply(exc: LoginError, settings: EmailSettings, extra: Sequence[str] = ()) -> str:
    """Return the server's reply to LOGIN/AUTHENTICATE in ``exc`` as ``redact.auth_reply``
    allows (its response code, and its words when they hold none of the settings' secrets
    nor ``extra``, such as the access token sent), or "". Pure."""
    text = str(exc).strip()
    if _BYTES_REPR.fullmatch(text):  # imaplib's error carries the reply's bytes, repr'd
        with contextlib.suppress(ValueError, SyntaxError):
            reply = ast.literal_eval(text)
            if isinstance(reply, bytes):
                text = reply.decode("utf-8", "replace")
    secrets = [*(getattr(settings, name) for name in sorted(SECRET_FIELDS)), *extra]
    return redact.auth_reply(text, secrets) if text.strip() else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc.args[0] if exc.args else None, bytes):
        text = exc.args[0].decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _naive_utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def _is_news(response: tuple[Any, ...]) -> bool:
    return len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT")


def _is_bye(response: tuple[Any, ...]) -> bool:
    return len(response) >= 1 and response[0] == b"BYE"


def _readable_now(sock: Any) -> bool:
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True  # a closed socket: let the caller find out


def ssl_context(mail: MailSettings) -> ssl.SSLContext:
    """Return a verifying client context: the system's authorities plus ``mail.ca_file``."""
    context = ssl.create_default_context()
    if mail.ca_file:
        try:
            context.load_verify_locations(cafile=mail.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ImapError(f"the CA file {mail.ca_file!r} cannot be read ({exc})") from None
    return context


@dataclass(frozen=True, slots=True)
class PendingFetch:
    """A FETCH sent by ``ImapSession.fetch_begin`` whose answer is still to be read."""

    tag: Any  # imaplib's command tag; None when nothing was asked
    uids: frozenset[int]


_TRANSFER_ENCODED = re.compile(
    rb"^content-transfer-encoding:[ \t]*(?:base64|quoted-printable)", re.I | re.M
)
# BINARY[] may come as a literal8 (~{n}) when the message holds NUL bytes (RFC 3516).
_FETCH_HEAD = re.compile(rb"\d+ \((.*)(?:BODY|BINARY)\[\] ~?\{\d+\}", re.DOTALL)
_FETCH_UID = re.compile(rb"(?:^|[ (])UID (\d+)")
_FETCH_DATE = re.compile(rb'INTERNALDATE "([^"]*)"')
_INTERNALDATE = re.compile(
    rb"\s?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)
_MONTHS = {
    m: i + 1 for i, m in enumerate(b"jan feb mar apr may jun jul aug sep oct nov dec".split())
}


def internaldate(value: bytes) -> datetime | None:
    """Return an IMAP INTERNALDATE (``05-Jan-2026 09:00:00 +0100``) as naive UTC; other
    forms go through imapclient's own reader. None when it cannot be read."""
    found = _INTERNALDATE.fullmatch(value)
    if found is not None and found.group(2).lower() in _MONTHS:
        day, month, year, hour, minute, second, sign, zh, zm = found.groups()
        offset = timedelta(hours=int(zh), minutes=int(zm))
        try:
            local = datetime(
                int(year), _MONTHS[month.lower()], int(day), int(hour), int(minute), int(second)
            )
        except ValueError:
            return None
        return local - offset if sign == b"+" else local + offset
    try:
        return _naive_utc(parse_to_datetime(value, normalise=False))
    except (ValueError, TypeError, OverflowError):
        return None


def read_fetch_data(data: list[Any]) -> dict[int, FetchedMessage]:
    """Turn imaplib's untagged FETCH data into messages by UID. The usual shape (one
    literal, ``BODY[]`` last, ``UID`` and ``INTERNALDATE`` before it or after it) is read
    directly; anything else goes through imapclient's response parser."""
    out: dict[int, FetchedMessage] = {}
    index = 0
    while index < len(data):
        item = data[index]
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            head = _FETCH_HEAD.fullmatch(item[0])
            tail = data[index + 1] if index + 1 < len(data) else b""
            if head is None or not isinstance(tail, bytes) or not tail.rstrip().endswith(b")"):
                return _read_fetch_data_slowly(data)
            words = head.group(1) + b" " + tail
            uid = _FETCH_UID.search(words)
            if uid is None:
                return _read_fetch_data_slowly(data)
            date = _FETCH_DATE.search(words)
            when = internaldate(date.group(1)) if date is not None else None
            out[int(uid.group(1))] = FetchedMessage(int(uid.group(1)), item[1], when)
            index += 2
        elif isinstance(item, bytes) and b"BODY[]" not in item and b"BINARY[]" not in item:
            index += 1  # an unsolicited FETCH (flags of another message): not ours
        else:
            return _read_fetch_data_slowly(data)
    return out


def _read_fetch_data_slowly(data: list[Any]) -> dict[int, FetchedMessage]:
    out: dict[int, FetchedMessage] = {}
    for uid, fields in parse_fetch_response(data, False, True).items():
        raw = fields.get(b"BODY[]", fields.get(b"BINARY[]"))
        if isinstance(uid, int) and isinstance(raw, bytes):
            out[uid] = FetchedMessage(uid, raw, _naive_utc(fields.get(b"INTERNALDATE")))
    return out


class ImapSession:
    """A logged-in connection with the practice's folder selected. One thread at a time."""

    def __init__(
        self,
        client: IMAPClient,
        settings: EmailSettings,
        clock: Clock,
        *,
        uidvalidity: int,
        dead_after: float = DEAD_AFTER_SECONDS,
        reidle_after: float = REIDLE_SECONDS,
        timeout: float | None = None,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._settings = settings
        self._clock = clock
        self.uidvalidity = uidvalidity
        self.dead_after = dead_after
        self.reidle_after = reidle_after
        self._last_heard = clock.monotonic()
        self._broken = False
        self._outstanding: Any = None  # the tag of a FETCH sent and not yet read

    # --- opening and closing ------------------------------------------------------------

    @classmethod
    def open(
        cls,
        settings: EmailSettings,
        mail: MailSettings,
        clock: Clock | None = None,
        *,
        readonly: bool = False,
        dead_after: float = DEAD_AFTER_SECONDS,
        reidle_after: float = REIDLE_SECONDS,
        tokens: TokenSource | None = None,
    ) -> ImapSession:
        """Connect, log in and select ``settings.imap_folder``; raise ``ImapError`` if any
        step fails. With ``readonly`` the folder is examined (nothing can change it).
        ``imap_auth = oauth2`` signs in with an access token from ``tokens``
        (``sign_in``)."""
        client = connect(settings, mail)
        try:
            with _translating(settings, connected=True, timeout=mail.io_timeout_seconds):
                if settings.imap_auth == "oauth2":
                    sign_in(client, settings, tokens)
                else:
                    _login(client, settings)
                selected = client.select_folder(settings.imap_folder, readonly=readonly)
        except BaseException:
            _shutdown(client)
            raise
        uidvalidity = selected.get(b"UIDVALIDITY")
        if not isinstance(uidvalidity, int):
            _shutdown(client)
            raise ImapError(
                f"the IMAP server at {settings.imap_host}:{settings.imap_port} "
                "gave no UIDVALIDITY for the folder; it cannot be imported safely"
            )
        return cls(
            client,
            settings,
            clock or SystemClock(),
            uidvalidity=uidvalidity,
            dead_after=dead_after,
            reidle_after=reidle_after,
            timeout=mail.io_timeout_seconds,
        )

    def close(self) -> None:
        """Log out (or just drop the connection when it is broken or a FETCH is still
        unread). Never raises."""
        if self._broken or self._outstanding is not None:
            _shutdown(self._client)
            return
        try:
            self._client.logout()
        except Exception:  # already gone: nothing to log out of
            _shutdown(self._client)

    @property
    def idle_supported(self) -> bool:
        """Whether the server offers IDLE."""
        return self._has("IDLE")

    def _has(self, capability: str) -> bool:
        with self._io():
            return bool(self._client.has_capability(capability))

    @contextlib.contextmanager
    def _io(self) -> Iterator[None]:
        if self._broken:
            raise ImapError("the IMAP connection was lost earlier; open a new session")
        try:
            with _translating(self._settings, connected=True, timeout=self._timeout):
                yield
        except ImapError:
            self._broken = True
            raise
        self._last_heard = self._clock.monotonic()

    # --- reading ------------------------------------------------------------------------

    def uids_after(self, last_uid: int) -> list[int]:
        """Return the folder's UIDs above ``last_uid``, ascending.

        Starts with a NOOP: the server shows a session mail that arrived since its last
        command only at a command boundary, and SEARCH alone may not be one.
        """
        with self._io():
            self._client.noop()
            found = self._client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(uid for uid in found if uid > last_uid)

    def uids_up_to(self, last_uid: int) -> list[int]:
        """Return the folder's UIDs from 1 to ``last_uid``, ascending ([] when 0)."""
        if last_uid < 1:
            return []
        with self._io():
            found = self._client.search(["UID", f"1:{last_uid}"])
        return sorted(uid for uid in found if uid <= last_uid)

    def fetch(self, uids: Sequence[int]) -> list[FetchedMessage]:
        """Return the messages with these UIDs (ascending), without marking them read.

        A UID the server no longer has (expunged meanwhile) is simply absent.
        """
        return self.fetch_end(self.fetch_begin(uids))

    def fetch_begin(self, uids: Sequence[int]) -> PendingFetch:
        """Send ``UID FETCH uids (BODY.PEEK[] INTERNALDATE)`` without waiting for the
        answer, so the server works on it while the caller does something else that does
        not use this session; ``fetch_end`` must come before the session's next command.
        """
        wanted = frozenset(uids)
        if not wanted:
            return PendingFetch(None, wanted)
        ids = ",".join(map(str, sorted(wanted)))
        with self._io():
            tag = self._client._imap._command("UID", "FETCH", ids, "(BODY.PEEK[] INTERNALDATE)")
        self._outstanding = tag
        return PendingFetch(tag, wanted)

    def fetch_end(self, pending: PendingFetch) -> list[FetchedMessage]:
        """Read the answer to ``fetch_begin``: the messages of its UIDs, ascending (one
        the server no longer has is absent; unsolicited FETCH responses are dropped)."""
        if pending.tag is None:
            return []
        imap = self._client._imap
        with self._io():
            self._outstanding = None
            typ, data = imap._command_complete("FETCH", pending.tag)
            if typ != "OK":
                raise imaplib.IMAP4.error(f"FETCH failed: {typ} {data!r}")
            _typ, data = imap._untagged_response(typ, data, "FETCH")
        found = read_fetch_data(data)
        self._restore_nuls(found)
        return [found[uid] for uid in sorted(found) if uid in pending.uids]

    def _restore_nuls(self, found: dict[int, FetchedMessage]) -> None:
        """Fetch again with ``BINARY.PEEK[]`` (RFC 3516, where offered) each message that
        may have held NUL bytes: Dovecot sends a NUL as 0x80 in ``BODY[]``. Only messages
        with a 0x80 byte and no base64 or quoted-printable part: ``BINARY[]`` undoes
        transfer encodings, so for any other message it would not be the message as
        stored. Such a message (and any message from a server without BINARY) is kept
        as ``BODY[]`` gave it."""
        suspects = [
            uid
            for uid, message in found.items()
            if b"\x80" in message.raw and not _TRANSFER_ENCODED.search(message.raw)
        ]
        if not suspects or not self._has("BINARY"):
            return
        imap = self._client._imap
        ids = ",".join(map(str, sorted(suspects)))
        with self._io():
            # imaplib, not imapclient: imapclient's parser takes a literal8 for text.
            typ, data = imap.uid("FETCH", ids, "(BINARY.PEEK[])")
            if typ != "OK":
                raise imaplib.IMAP4.error(f"FETCH BINARY failed: {typ} {data!r}")
        for uid, message in read_fetch_data(data).items():
            if uid in found:
                found[uid] = FetchedMessage(uid, message.raw, found[uid].internaldate)

    # --- acting -------------------------------------------------------------------------

    def apply_after_import(self, uids: Sequence[int], action: str) -> None:
        """Apply ``imap_after_import`` to these UIDs: ``keep`` does nothing, ``delete``
        flags them ``\\Deleted`` and expunges them (only them, where UIDPLUS allows),
        ``move:FOLDER`` moves them (MOVE, or COPY then delete), creating FOLDER first if
        it is missing. The folder must have been opened read-write."""
        if not uids or action == "keep":
            return
        verb, _, target = action.partition(":")
        for start in range(0, len(uids), ACTION_CHUNK):
            chunk = list(uids[start : start + ACTION_CHUNK])
            if verb == "delete":
                self._delete(chunk)
            elif verb == "move":
                self._move(chunk, target)
            else:
                raise ValueError(f"unknown after-import action {action!r}")

    def _delete(self, uids: list[int]) -> None:
        with self._io():
            self._client.delete_messages(uids, silent=True)
            if self._client.has_capability("UIDPLUS"):
                self._client.uid_expunge(uids)
            else:
                self._client.expunge()

    def _move(self, uids: list[int], target: str) -> None:
        self.ensure_folder(target)
        with self._io():
            if self._client.has_capability("MOVE"):
                self._client.move(uids, target)
                return
            self._client.copy(uids, target)
        self._delete(uids)

    def ensure_folder(self, folder: str) -> None:
        """Create ``folder`` on the server unless it exists."""
        with self._io():
            if not self._client.folder_exists(folder):
                self._client.create_folder(folder)

    # --- waiting ------------------------------------------------------------------------

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the server to report new mail; True when it did.

        With IDLE: returns early on ``EXISTS``/``RECENT``; re-issues IDLE every
        ``reidle_after`` seconds; raises ``ImapError`` when the server was silent for more
        than ``dead_after`` seconds (Dovecot says "Still here" every 2 minutes, so silence
        means a dead connection) or closed the connection. Deadlines are read from the
        session's clock; with a clock that does not move, the wait still ends after about
        ``seconds`` of real time. Without IDLE: one NOOP, no waiting; the caller polls
        again after its own interval.
        """
        if not self.idle_supported:
            with self._io():
                _text, responses = self._client.noop()
            return any(_is_news(r) for r in responses)
        return self._wait_idle(seconds)

    def _wait_idle(self, seconds: float) -> bool:
        clock = self._clock
        deadline = clock.monotonic() + max(0.0, seconds)
        rounds = math.ceil(max(0.0, seconds) / IDLE_SLICE_SECONDS) * 2 + 2
        news = False
        with self._io():
            self._client.idle()
            idle_since = clock.monotonic()
            empty_but_readable = 0
            for _ in range(rounds):
                now = clock.monotonic()
                remaining = deadline - now
                if remaining <= 0:
                    break
                if now - idle_since >= self.reidle_after:
                    _text, responses = self._client.idle_done()
                    if any(_is_news(r) for r in responses):
                        return True
                    self._client.idle()
                    idle_since = clock.monotonic()
                responses = self._client.idle_check(timeout=min(remaining, IDLE_SLICE_SECONDS))
                progress.beat()  # a slice of a wait the caller bounded: not a hang
                now = clock.monotonic()
                if responses:
                    self._last_heard = now
                    empty_but_readable = 0
                    if any(_is_bye(r) for r in responses):
                        raise ImapError(self._lost("the server closed the connection"))
                    if any(_is_news(r) for r in responses):
                        news = True
                        break
                elif _readable_now(self._client.socket()):
                    # idle_check swallows EOF and resets as "no responses"; a socket that
                    # stays readable with nothing to read is closed.
                    empty_but_readable += 1
                    if empty_but_readable >= _EMPTY_BUT_READABLE_LIMIT:
                        raise ImapError(self._lost("the server closed the connection"))
                if now - self._last_heard > self.dead_after:
                    raise ImapError(
                        self._lost(f"no sign of life for over {self.dead_after:.0f} s in IDLE")
                    )
            _text, responses = self._client.idle_done()
        return news or any(_is_news(r) for r in responses)

    def _lost(self, why: str) -> str:
        return (
            f"the connection to {self._settings.imap_host}:{self._settings.imap_port} "
            f"was lost ({why})"
        )


@contextlib.contextmanager
def _translating(
    settings: EmailSettings, *, connected: bool = False, timeout: float | None = None
) -> Iterator[None]:
    """Turn network and server failures into ``ImapError`` with a plain reason; beat
    (``actors.progress``) when the server answered."""
    try:
        yield
    except ImapError:
        raise
    except (imaplib.IMAP4.error, OSError, EOFError) as exc:
        reason = plain_reason(exc, settings, connected=connected, timeout=timeout)
        raise ImapError(reason) from exc
    progress.beat()


def _login(client: IMAPClient, settings: EmailSettings) -> None:
    """LOGIN; a user name or password beyond ASCII is an ``ImapError`` that names no
    letter of it (imaplib's own error would quote one)."""
    try:
        client.login(settings.imap_username, settings.imap_password)
    except UnicodeEncodeError:
        raise ImapError(
            "the user name or password has a letter beyond ASCII, which IMAP LOGIN cannot "
            "send; use a password of ASCII letters, digits and signs"
        ) from None


def _shutdown(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):
        client.shutdown()


def connect(settings: EmailSettings, mail: MailSettings) -> IMAPClient:
    """Return a client connected to ``settings``' IMAP server, TLS set up, not logged in.

    Raises ``ImapError`` (plain reason) when the server cannot be reached or its
    certificate is not trusted, or STARTTLS is asked for and not offered.
    """
    context = ssl_context(mail)
    with _translating(settings, timeout=mail.io_timeout_seconds):
        client = IMAPClient(
            settings.imap_host,
            settings.imap_port,
            ssl=settings.imap_security == "tls",
            ssl_context=context,
            timeout=mail.io_timeout_seconds,
        )
    # imapclient sets imaplib's debug level to 5, at which imaplib formats the repr of
    # every literal it reads for a debug line (then dropped by logging): for a 25 MB
    # message about 56 MB more memory at once. Level 0 formats nothing.
    client._imap.debug = 0
    if settings.imap_security == "starttls":
        try:
            with _translating(settings, timeout=mail.io_timeout_seconds):
                try:
                    client.starttls(context)
                except CapabilityError:
                    raise ImapError(
                        f"the IMAP server at {settings.imap_host}:{settings.imap_port} "
                        "does not offer STARTTLS (imap_security is starttls)"
                    ) from None
        except BaseException:
            _shutdown(client)
            raise
    return client


def sign_in(client: IMAPClient, settings: EmailSettings, tokens: TokenSource | None) -> None:
    """Log in with an access token from ``tokens``: SASL XOAUTH2, or OAUTHBEARER where the
    server offers that and not XOAUTH2. A refused token is forgotten and a new one
    fetched for one more try before the refusal counts. Raises ``ImapError`` in plain
    words (the provider's or the server's words kept; never the token)."""
    where = f"{settings.imap_host}:{settings.imap_port}"
    if tokens is None:
        raise ImapError("OAuth 2.0 sign-in is set (imap_auth = oauth2) but not available here")
    xoauth2 = client.has_capability("AUTH=XOAUTH2")
    bearer = client.has_capability("AUTH=OAUTHBEARER") and not xoauth2
    if not xoauth2 and not bearer:
        raise ImapError(
            f"the IMAP server at {where} does not offer OAuth 2.0 sign-in "
            "(AUTH=XOAUTH2 or AUTH=OAUTHBEARER); check imap_host, imap_port and imap_security"
        )
    for attempt in range(2):
        try:
            token = tokens.token()
        except OAuthError as exc:
            raise ImapError(f"sign-in for incoming mail failed: {exc}") from None
        try:
            if bearer:
                client.oauthbearer_login(tokens.user, token)
            else:
                client.oauth2_login(tokens.user, token)
            return
        except LoginError as exc:
            tokens.refused(token)
            if attempt == 1:
                said = login_reply(exc, settings, (token,))
                raise ImapError(
                    f"the IMAP server at {where} refused the sign-in of {tokens.user!r}"
                    + (f" ({said})" if said else "")
                ) from None


def probe(
    settings: EmailSettings, mail: MailSettings, tokens: TokenSource | None = None
) -> ProbeResult:
    """Check that the practice's IMAP set-up works: connect, log in, select the folder
    (read-only), NOOP, log out. Returns ``ProbeResult(True)`` or the reason it failed in
    plain words (wrong password, certificate not trusted, host unreachable, port closed,
    folder missing), one line, without the password. Never raises for a server fault."""
    if not settings.imap_host:
        return ProbeResult(False, "no IMAP server is set (imap_host is empty)")
    try:
        session = ImapSession.open(settings, mail, readonly=True, tokens=tokens)
    except ImapError as exc:  # a sign-in's failure says what to do first
        return ProbeResult(False, sign_in_words.advised(str(exc), settings, "imap"))
    try:
        with session._io():
            session._client.noop()
    except ImapError as exc:
        return ProbeResult(False, str(exc))
    finally:
        session.close()
    return ProbeResult(True)
