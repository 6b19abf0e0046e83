"""Real SMTP servers for the tests (NOTES.md, "SMTP for tests").

- ``RecordingSmtpServer``: aiosmtpd on a free loopback port, with ``security`` ``none``,
  ``starttls`` or ``tls`` (implicit) using the throwaway certificate of
  ``tests.tls_certs``, optional AUTH (PLAIN/LOGIN against ``users``), a record of every
  accepted message (``messages``) and of every connection (``connections``), and a
  ``script`` of replies: per recipient at RCPT, per recipient at DATA, or a queue of
  replies for the next DATA commands (``"451 4.3.0 try later"``, ``"554 5.7.1 no"``).
- ``RecordingSmtpServer(oauth=authority)``: the same, also offering AUTH XOAUTH2 whose
  token ``tests.oauth_servers.OAuthAuthority`` must find live and issued for the user
  named in it. A refused token gets Gmail's way: a ``334`` with a base64 JSON status the
  client answers with an empty line, then ``535 5.7.3 Authentication unsuccessful``
  (Microsoft's words). ``messages_per_connection`` hangs up on a client after that many
  messages (the next command finds the connection closed); ``after_message(n)`` is called
  after the n-th accepted message (a test expires tokens there, mid-batch).
- ``SmtpSinkServer``: Postfix's ``smtp-sink`` as a subprocess, storing every message in a
  folder and hanging up instead of answering the final ``.``: "stored, but the reply never
  came", which aiosmtpd cannot model (it cancels its handler when the client goes away).

Both are context managers and fail loudly (never skip) when they cannot start.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import email
import email.policy
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from tests.oauth_servers import OAuthAuthority, xoauth2_parts
from tests.tls_certs import CertificateSet

Security = Literal["none", "starttls", "tls"]
SMTP_SINK = "/usr/sbin/smtp-sink"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def message_id_of(content: bytes) -> str | None:
    """Return the Message-ID header of a stored message, or None."""
    parsed = email.message_from_bytes(content, policy=email.policy.compat32)
    value = parsed["Message-ID"]
    return None if value is None else str(value).strip()


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message the recording server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    authenticated_as: str | None
    tls: bool

    @property
    def message_id(self) -> str | None:
        return message_id_of(self.content)


@dataclass
class SmtpScript:
    """Replies the recording server gives instead of accepting (edit it from the test).

    ``rcpt``: address (lower case) -> reply at RCPT, every time. ``data_for``: address ->
    reply at DATA for any message that has it among its accepted recipients, every time.
    ``data_queue``: replies for the next DATA commands, one each, in order.
    """

    rcpt: dict[str, str] = field(default_factory=dict)
    data_for: dict[str, str] = field(default_factory=dict)
    data_queue: collections.deque[str] = field(default_factory=collections.deque)


class _Handler:
    def __init__(self, owner: RecordingSmtpServer) -> None:
        self._owner = owner

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        reply = self._owner.script.rcpt.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        script = self._owner.script
        reply: str | None = None
        with self._owner.lock:
            if script.data_queue:
                reply = script.data_queue.popleft()
            else:
                for address in envelope.rcpt_tos:
                    reply = script.data_for.get(address.lower())
                    if reply is not None:
                        break
            self._owner.data_commands += 1
            if reply is not None and not reply.startswith("2"):
                return reply
            auth = session.auth_data
            self._owner.messages.append(
                ReceivedMessage(
                    mail_from=envelope.mail_from,
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    content=envelope.original_content or envelope.content,
                    authenticated_as=(
                        auth.login.decode() if isinstance(auth, LoginPassword) else None
                    ),
                    tls=self._owner.security == "tls" or session.ssl is not None,
                )
            )
            number = len(self._owner.messages)
            per_session = self._owner.per_session
            per_session[id(session)] = per_session.get(id(session), 0) + 1
            hang_up = per_session[id(session)] == self._owner.messages_per_connection
        if self._owner.after_message is not None:
            self._owner.after_message(number)
        if hang_up and server.transport is not None:
            # After the reply below is written (close() sends what is buffered first).
            asyncio.get_running_loop().call_soon(server.transport.close)
        return reply or f"250 2.0.0 OK queued as {number}"


class _PipeliningHandler(_Handler):
    """The handler, offering PIPELINING (RFC 2920) in the EHLO reply: aiosmtpd reads
    commands one line at a time, so commands sent as one group are answered in order."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        # What the client sent after MAIL and the server has not read yet: with a
        # pipelined group, its RCPT and DATA lines are already waiting in the buffer.
        waiting = bytes(getattr(server._reader, "_buffer", b""))
        if b"DATA" in waiting.upper():
            with self._owner.lock:
                self._owner.pipelined_groups += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


class _XOAuth2:
    """AUTH XOAUTH2 (a mixin for the handlers): aiosmtpd offers every ``auth_*`` method
    of the handler as a mechanism."""

    _owner: RecordingSmtpServer

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        authority = self._owner.oauth
        assert authority is not None
        if len(args) == 2:
            try:
                blob: Any = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            blob = await server.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)  # aborted; already answered
        parts = xoauth2_parts(blob)
        with self._owner.lock:
            self._owner.xoauth2_attempts += 1
        if parts is not None and authority.check_token(parts[1], parts[0]) is not None:
            login = LoginPassword(login=parts[0].encode(), password=b"")
            return AuthResult(success=True, auth_data=login)
        status = json.dumps({"status": "401", "schemes": "bearer", "scope": "mail"})
        await server.challenge_auth(status)  # Gmail's way: the client answers ""
        await server.push("535 5.7.3 Authentication unsuccessful")
        return AuthResult(success=False, handled=True)


class _OAuthHandler(_XOAuth2, _Handler):
    """The handler with AUTH XOAUTH2."""


class _OAuthPipeliningHandler(_XOAuth2, _PipeliningHandler):
    """The pipelining handler with AUTH XOAUTH2."""


class _Controller(Controller):
    """aiosmtpd's controller, counting every connection the server accepts."""

    def __init__(self, owner: RecordingSmtpServer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owner = owner

    def factory(self) -> SMTP:
        server: SMTP = super().factory()  # type: ignore[no-untyped-call]
        with self._owner.lock:
            self._owner.connections += 1
            self._owner.sessions.append(server)
        return server


class RecordingSmtpServer:
    """aiosmtpd on ``127.0.0.1:port`` recording what it accepts; see the module docstring.

    ``pipelining`` makes it offer PIPELINING (aiosmtpd does not by itself; real servers
    do) and count in ``pipelined_groups`` the envelopes that came as one group.
    ``smtputf8`` makes it offer SMTPUTF8 (RFC 6531).
    ``users`` (login -> password) turns on AUTH PLAIN/LOGIN; a wrong password gets
    ``535 5.7.8 Authentication credentials invalid``. With ``security="none"`` AUTH is
    offered without TLS (a test server only). ``oauth`` adds AUTH XOAUTH2 (module
    docstring); ``xoauth2_attempts`` counts its attempts.
    """

    def __init__(
        self,
        security: Security = "none",
        certs: CertificateSet | None = None,
        users: Mapping[str, str] | None = None,
        *,
        pipelining: bool = False,
        smtputf8: bool = False,
        oauth: OAuthAuthority | None = None,
        messages_per_connection: int = 0,
        after_message: Callable[[int], None] | None = None,
    ) -> None:
        if security != "none" and certs is None:
            raise ValueError(f"security {security!r} needs test certificates")
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.security = security
        self.users = dict(users or {})
        self.script = SmtpScript()
        self.messages: list[ReceivedMessage] = []
        self.connections = 0
        self.data_commands = 0
        self.pipelined_groups = 0  # MAIL commands that came with their RCPT and DATA
        self.lock = threading.Lock()
        self.sessions: list[SMTP] = []
        self.oauth = oauth
        self.xoauth2_attempts = 0
        self.messages_per_connection = messages_per_connection
        self.after_message = after_message
        self.per_session: dict[int, int] = {}
        handler_class: type[_Handler]
        if oauth is not None:
            handler_class = _OAuthPipeliningHandler if pipelining else _OAuthHandler
        else:
            handler_class = _PipeliningHandler if pipelining else _Handler
        kwargs: dict[str, Any] = {
            "handler": handler_class(self),
            "hostname": self.host,
            "port": self.port,
            "server_hostname": "smtp.test",
            # Implicit TLS counts as TLS for the client, not for aiosmtpd's check.
            "auth_require_tls": security == "starttls",
            # RFC 6531: offer SMTPUTF8 (addresses with letters beyond ASCII) when asked.
            "enable_SMTPUTF8": smtputf8,
        }
        if users is not None:
            kwargs["authenticator"] = self._authenticate
        if security == "starttls" and certs is not None:
            kwargs["tls_context"] = certs.server_context()
            kwargs["require_starttls"] = True
        if security == "tls" and certs is not None:
            kwargs["ssl_context"] = certs.server_context()
        self._controller = _Controller(self, **kwargs)

    def _authenticate(
        self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode()
            if self.users.get(login) == auth_data.password.decode():
                return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    def start(self) -> RecordingSmtpServer:
        """Start listening; returns self once the server answers."""
        self._controller.start()
        with self.lock:
            self.connections = 0  # the controller's own start-up probe is not a client
            self.sessions.clear()
        return self

    def stop(self) -> None:
        """Hang up on every client still connected, then stop the server."""

        async def hang_up() -> None:
            for session in self.sessions:
                if session.transport is not None:
                    session.transport.close()

        asyncio.run_coroutine_threadsafe(hang_up(), self._controller.loop).result(timeout=10)
        self._controller.stop()

    def __enter__(self) -> RecordingSmtpServer:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    def message_ids(self) -> list[str | None]:
        """The Message-IDs of the accepted messages, in order of arrival."""
        with self.lock:
            return [m.message_id for m in self.messages]


class SmtpSinkServer:
    """Postfix's ``smtp-sink`` that stores each message and never answers the final ``.``.

    Runs ``smtp-sink -u nobody -4 -d FOLDER/%H%M%S. -q . 127.0.0.1:PORT 10`` in its own
    process group. ``folder`` is a fresh world-writable temporary folder (the sink writes
    as ``nobody``); ``stored()`` returns the messages it kept (its own ``X-*`` envelope
    lines and ``Received:`` header come first).
    """

    def __init__(self, extra_args: tuple[str, ...] = ("-q", ".")) -> None:
        if not os.access(SMTP_SINK, os.X_OK):
            raise RuntimeError(f"{SMTP_SINK} is missing: install Postfix (see NOTES.md)")
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.folder = Path(tempfile.mkdtemp(prefix="pes-smtp-sink-"))
        os.chmod(self.folder, 0o777)
        self._args = extra_args
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> SmtpSinkServer:
        """Start the sink; returns self once it accepts connections (fails after 10 s)."""
        command = [
            SMTP_SINK,
            "-u",
            "nobody",
            "-4",
            "-d",
            f"{self.folder}/%H%M%S.",
            *self._args,
            f"{self.host}:{self.port}",
            "10",
        ]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"smtp-sink exited at start: {error.strip()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"smtp-sink did not listen on {self.host}:{self.port} within 10 s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> SmtpSinkServer:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stored(self) -> list[bytes]:
        """Every message stored so far, in file-name order."""
        return [path.read_bytes() for path in sorted(self.folder.iterdir()) if path.is_file()]

    def stored_message_ids(self) -> list[str | None]:
        """The Message-IDs of the stored messages."""
        return [message_id_of(content) for content in self.stored()]
