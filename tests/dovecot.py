"""A real Dovecot IMAP server for tests, from a temporary configuration (NOTES.md, "Dovecot").

``Dovecot(folder)`` writes a configuration (users in passwd-files, mail in Maildirs, logs,
runtime files) into a folder of its own in the system temp folder, ``root``, which
``folder`` becomes a link to (see ``__init__`` for why), listens on free loopback ports and runs
``/usr/sbin/dovecot -F`` in its own process group. With ``certs`` (``tests.tls_certs``) it
also serves implicit TLS on ``tls_port`` and STARTTLS on ``port``; without, plain IMAP only.
``idle_notify_seconds`` is how often it says "Still here" in IDLE. With
``introspection_url`` (``tests.oauth_servers.OAuthAuthority.introspection_url``) it also
signs users in with OAuth 2.0 (SASL XOAUTH2 and OAUTHBEARER) through Dovecot's built-in
``oauth2`` passdb, which asks that endpoint about every token (``force_introspection``)
and accepts it when it is active and its ``email`` is the user logging in
(``oauth_mechanisms`` names the SASL mechanisms offered for it); passwords
(PLAIN/LOGIN) keep working for the tests' own set-up connections.

Helpers: ``add_user``, ``append`` (imapclient ``append``; returns the new UID),
``uids``/``messages`` (what a folder holds now), ``create_folder``/``delete_folder``
(a new UIDVALIDITY: ``recreate_folder``), ``kick`` (``doveadm
kick``), ``stop``/``start``. A missing Dovecot raises: a test that needs it fails, never
skips.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

from imapclient import IMAPClient
from sqlalchemy import Engine

from actors.mail.settings import EmailSettings
from actors.practice_db import claim_incarnation, make_engine
from actors.practice_schema import init_practice_database
from events.clock import FakeClock
from tests.tls_certs import CertificateSet

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
MAIL_UID = 65534  # nobody: the mail user must not be root
START_TIMEOUT = 20.0
_serial = itertools.count(1)


class DovecotError(RuntimeError):
    """Raised when the test Dovecot cannot be configured or started."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Dovecot:
    """One Dovecot instance; see the module docstring."""

    def __init__(
        self,
        folder: Path,
        *,
        certs: CertificateSet | None = None,
        idle_notify_seconds: int = 120,
        introspection_url: str | None = None,
        oauth_mechanisms: tuple[str, ...] = ("xoauth2", "oauthbearer"),
    ) -> None:
        if not Path(DOVECOT).exists():
            raise DovecotError(f"{DOVECOT} is missing (apt-get install -y dovecot-imapd)")
        # Dovecot's own users (dovecot, nobody) must be able to reach every file. A
        # folder under pytest's base temp folder is not enough: pytest makes that folder
        # private (0700) again whenever another pytest session starts (other test runs on
        # the machine), and logins then fail with "temporary authentication failure". So
        # the files live in a folder of their own in the system temp folder, and
        # ``folder`` is made a symbolic link to it (when it is new or empty).
        self.root = Path(tempfile.mkdtemp(prefix="pes-dovecot-"))
        os.chmod(self.root, 0o755)
        atexit.register(self.remove)  # outside pytest's temp folder: nothing else cleans it
        self.link = _link(folder, self.root)
        self.certs = certs
        self.host = "127.0.0.1"
        self.port = free_port()
        self.tls_port = free_port() if certs is not None else 0
        self.idle_notify_seconds = idle_notify_seconds
        self.introspection_url = introspection_url
        self.oauth_mechanisms = " ".join(oauth_mechanisms)
        self.passwords: dict[str, str] = {}
        self._process: subprocess.Popen[bytes] | None = None
        for sub in ("mail", "run", "state"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "mail", 0o777)
        self.config = self.root / "dovecot.conf"
        # One passwd-file per user: Dovecot caches a file by its time stamp, so a file
        # rewritten within the same second would hide the new user.
        self.passwd = self.root / "users"
        self.passwd.mkdir(exist_ok=True)
        if introspection_url is not None:
            (self.root / "dovecot-oauth2.conf.ext").write_text(
                "introspection_mode = post\n"
                f"introspection_url = {introspection_url}\n"
                "username_attribute = email\n"
                "active_attribute = active\n"
                "active_value = true\n"
                "force_introspection = yes\n"
            )
        self.config.write_text(self._config_text())

    def _oauth2_lines(self) -> list[str]:
        if self.introspection_url is None:
            return []
        return [
            "passdb {",
            "  driver = oauth2",
            f"  mechanisms = {self.oauth_mechanisms}",
            f"  args = {self.root}/dovecot-oauth2.conf.ext",
            "}",
        ]

    def _config_text(self) -> str:
        root = self.root
        lines = [
            f"base_dir = {root}/run",
            f"state_dir = {root}/state",
            f"log_path = {root}/dovecot.log",
            "protocols = imap",
            "listen = 127.0.0.1",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login"
            + (f" {self.oauth_mechanisms}" if self.introspection_url is not None else ""),
            # Tests log in with wrong passwords on purpose: without these, Dovecot's
            # penalty for failed logins from 127.0.0.1 (anvil's, up to 15 s, longer than
            # the tests' timeouts) slows and fails the logins of the tests that follow.
            "auth_failure_delay = 0",
            "service anvil {",
            "  unix_listener anvil-auth-penalty {",
            "    mode = 0",
            "  }",
            "}",
            f"mail_location = maildir:{root}/mail/%u/Maildir",
            "first_valid_uid = 1",
            f"imap_idle_notify_interval = {self.idle_notify_seconds} secs",
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%u {self.passwd}/%u",
            *(["  mechanisms = plain login"] if self.introspection_url is not None else []),
            "}",
            *self._oauth2_lines(),
            "userdb {",
            "  driver = static",
            f"  args = uid={MAIL_UID} gid={MAIL_UID} home={root}/mail/%u",
            "}",
            "service imap-login {",
            "  inet_listener imap {",
            "    address = 127.0.0.1",
            f"    port = {self.port}",
            "  }",
            "  inet_listener imaps {",
            "    address = 127.0.0.1",
            f"    port = {self.tls_port}",
            "  }",
            "}",
        ]
        if self.certs is None:
            lines.append("ssl = no")
        else:
            lines += [
                "ssl = yes",
                f"ssl_cert = <{self.certs.server_chain}",
                f"ssl_key = <{self.certs.server_key}",
            ]
        return "\n".join(lines) + "\n"

    # --- life ---------------------------------------------------------------------------

    def start(self) -> Dovecot:
        """Start the server and wait until it greets on its port."""
        if self._process is not None and self._process.poll() is None:
            return self
        check = subprocess.run(
            ["doveconf", "-c", str(self.config), "-n"], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise DovecotError(f"bad test configuration: {check.stderr.strip()}")
        self._process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise DovecotError(f"dovecot exited at start: {err.strip()} {self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.02)
        raise DovecotError(f"dovecot did not greet within {START_TIMEOUT} s: {self.log_tail()}")

    def stop(self) -> None:
        """Kill the server's whole process group at once (sessions included)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of Dovecot's log, for error messages."""
        log = self.root / "dovecot.log"
        if not log.exists():
            return ""
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])

    # --- users and mail -----------------------------------------------------------------

    def add_user(self, user: str, password: str) -> None:
        """Add (or re-add) a user; Dovecot reads the passwd-file on each login."""
        if not user.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"test user names are letters, digits, - and _: {user!r}")
        self.passwords[user] = password
        staged = self.passwd / f".{user}.new"
        staged.write_text(f"{user}:{{PLAIN}}{password}\n")
        staged.rename(self.passwd / user)

    @contextlib.contextmanager
    def client(self, user: str) -> Iterator[IMAPClient]:
        """A plain logged-in imapclient connection as ``user`` (for set-up and checks)."""
        imap = IMAPClient(self.host, self.port, ssl=False, timeout=30)
        try:
            imap.login(user, self.passwords[user])
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> int:
        """Append ``raw`` to ``folder``; return its UID."""
        with self.client(user) as imap:
            answer = imap.append(folder, raw)
        # b"[APPENDUID <uidvalidity> <uid>] Append completed."
        return int(answer.split(b"]")[0].split()[-1])

    def uids(self, user: str, folder: str = "INBOX") -> list[int]:
        """The UIDs ``folder`` holds now (deleted-flagged ones excluded)."""
        with self.client(user) as imap:
            imap.select_folder(folder, readonly=True)
            return sorted(imap.search(["NOT", "DELETED"]))

    def messages(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """The raw messages ``folder`` holds now, in UID order."""
        with self.client(user) as imap:
            imap.select_folder(folder, readonly=True)
            uids = sorted(imap.search(["NOT", "DELETED"]))
            fetched = imap.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [fetched[u][b"BODY[]"] for u in uids]

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """The folder's UIDVALIDITY now."""
        with self.client(user) as imap:
            return int(imap.select_folder(folder, readonly=True)[b"UIDVALIDITY"])

    def create_folder(self, user: str, folder: str) -> None:
        with self.client(user) as imap:
            imap.create_folder(folder)

    def delete_folder(self, user: str, folder: str) -> None:
        with self.client(user) as imap:
            imap.delete_folder(folder)

    def recreate_folder(self, user: str, folder: str) -> int:
        """Delete ``folder`` and create it again, empty, under a new UIDVALIDITY; return it."""
        with self.client(user) as imap:
            imap.delete_folder(folder)
            imap.create_folder(folder)
            return int(imap.select_folder(folder, readonly=True)[b"UIDVALIDITY"])

    def kick(self, user: str) -> None:
        """Disconnect every session of ``user`` (``doveadm kick``)."""
        subprocess.run(
            [DOVEADM, "-c", str(self.config), "kick", user],
            capture_output=True,
            check=True,
            timeout=30,
        )

    def remove(self) -> None:
        """Stop and delete the folder (and the link to it)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()


def _link(folder: Path, target: Path) -> Path | None:
    """Make ``folder`` (new, or an empty folder) a symbolic link to ``target``; return it,
    or None when ``folder`` already holds something."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
        folder.rmdir()
    if folder.exists() or folder.is_symlink():
        return None
    folder.symlink_to(target, target_is_directory=True)
    return folder


# --- helpers for tests of the inbox --------------------------------------------------


def imap_settings_for(
    dovecot: Dovecot, user: str, *, security: str = "none", **changes: object
) -> EmailSettings:
    """The practice's IMAP settings for ``user`` on ``dovecot``."""
    port = dovecot.tls_port if security == "tls" else dovecot.port
    values: dict[str, object] = {
        "imap_enabled": True,
        "imap_host": "127.0.0.1",
        "imap_port": port,
        "imap_security": security,
        "imap_username": user,
        "imap_password": dovecot.passwords[user],
    }
    values.update(changes)
    return EmailSettings(**values)  # type: ignore[arg-type]


def new_practice_engine(url: str, incarnation: int = 1) -> Engine:
    """Create the practice tables at ``url``, claim ``incarnation``; return an engine."""
    init_practice_database(url, practice_name="Smile Dental")
    engine = make_engine(url)
    claim_incarnation(engine, incarnation, "test-server", FakeClock().now())
    return engine


def make_message(
    subject: str = "Appointment",
    *,
    sender: str = "Pat Smith <pat@example.org>",
    to: str = "Reception <reception@smile.example>",
    cc: str = "",
    text: str = "See you on Monday.\n",
    html: str = "",
    message_id: str | None = "",
) -> bytes:
    """A well-formed message; ``message_id`` "" makes one up, None leaves it out."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = "Mon, 05 Jan 2026 09:00:00 +0000"
    if message_id is not None:
        msg["Message-ID"] = message_id or f"<{subject.replace(' ', '.')}.{next(_serial)}@test>"
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    return msg.as_bytes(policy=policy.SMTP)  # CRLF line ends, as a server stores it
