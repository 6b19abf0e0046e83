"""The demo's local IMAP server: Dovecot from a configuration of its own, on loopback.

``LocalImapServer(folder, port, users)`` writes ``dovecot.conf``, a passwd-file and the
mail folders (Maildir) under ``folder`` and runs ``/usr/sbin/dovecot -F -c CONF`` in a
process group of its own, so ``stop`` kills the whole group at once (SIGKILL: SIGTERM
leaves IMAP sessions running for a while). Nothing outside ``folder`` is touched and
the system's own Dovecot is neither started nor configured.

Dovecot reads mail as an unprivileged user, never root: started by root the mail user
is ``nobody`` (65534) and every folder on the way to ``folder`` must be open to it
(``reachable_by_others``; the demo puts the files elsewhere when it is not, see
``supervisor.commands.demo``); started by another user it runs "rootless", every
process as that user (Dovecot's Rootless how-to: the internal and login users set to
it, no chroot). ``installed()`` says whether Dovecot is there at all.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

DOVECOT = "/usr/sbin/dovecot"
DOVECONF = "/usr/bin/doveconf"
INSTALL_HINT = "apt-get install dovecot-imapd"
START_SECONDS = 20.0
NOBODY = 65534


class ImapServerError(RuntimeError):
    """Raised when the local Dovecot cannot be configured or started."""


def installed() -> bool:
    """Whether Dovecot's IMAP server is installed here."""
    return os.access(DOVECOT, os.X_OK)


def reachable_by_others(folder: Path) -> bool:
    """Whether a user other than the owner can walk down to ``folder`` (every existing
    folder on the way lets others through)."""
    path = folder.resolve()
    for part in (path, *path.parents):
        if not part.exists():
            continue
        if not part.stat().st_mode & stat.S_IXOTH:
            return False
    return True


class LocalImapServer:
    """One Dovecot on ``127.0.0.1:port`` serving ``users`` (login -> password)."""

    def __init__(self, folder: Path, port: int, users: Mapping[str, str]) -> None:
        self.folder = folder
        self.host = "127.0.0.1"
        self.port = port
        self.users = dict(users)
        self.config = folder / "dovecot.conf"
        self.log = folder / "dovecot.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _config_text(self, passwd: Path) -> str:
        root = self.folder.resolve()
        if os.geteuid() == 0:
            mail_uid = mail_gid = NOBODY
            rootless: list[str] = []
        else:
            mail_uid, mail_gid = os.geteuid(), os.getegid()
            me = pwd.getpwuid(mail_uid).pw_name
            my_group = grp.getgrgid(mail_gid).gr_name
            rootless = [
                f"default_internal_user = {me}",
                f"default_internal_group = {my_group}",
                f"default_login_user = {me}",
                "service anvil {",
                "  chroot =",
                "}",
                "service imap-login {",
                "  chroot =",
                "}",
            ]
        lines = [
            # One setting a line: Dovecot rejects a block written on one line.
            f"base_dir = {root}/run",
            f"state_dir = {root}/state",
            f"log_path = {self.log.resolve()}",
            "protocols = imap",
            "listen = 127.0.0.1",
            "ssl = no",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            f"mail_location = maildir:{root}/mail/%u/Maildir",
            "first_valid_uid = 1",
            *rootless,
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%u {passwd}",
            "}",
            "userdb {",
            "  driver = static",
            f"  args = uid={mail_uid} gid={mail_gid} home={root}/mail/%u",
            "}",
            "service imap-login {",
            "  inet_listener imap {",
            "    address = 127.0.0.1",
            f"    port = {self.port}",
            "  }",
            "  inet_listener imaps {",
            "    port = 0",
            "  }",
            "}",
        ]
        return "\n".join(lines) + "\n"

    def _write_files(self) -> None:
        for sub in ("run", "state"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        mail = self.folder / "mail"
        mail.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            for path in (self.folder, self.folder / "run", self.folder / "state"):
                os.chmod(path, 0o755)
            os.chmod(mail, 0o777)  # the mail user (nobody) creates each user's Maildir
        passwd = (self.folder / "passwd").resolve()
        passwd.write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.users.items()))
        os.chmod(passwd, 0o644)  # Dovecot's auth process reads it as its own user
        self.config.write_text(self._config_text(passwd))

    def start(self) -> LocalImapServer:
        """Write the configuration, start Dovecot and wait until it greets; raises
        ``ImapServerError`` with Dovecot's own words when it cannot."""
        if not installed():
            raise ImapServerError(f"{DOVECOT} is not installed ({INSTALL_HINT})")
        self._stop_left_over()
        self._write_files()
        check = subprocess.run(
            [DOVECONF, "-c", str(self.config), "-n"],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise ImapServerError(f"Dovecot refuses its configuration: {check.stderr.strip()}")
        self._process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode() if self._process.stderr else ""
                self._process = None
                raise ImapServerError(f"Dovecot stopped at start: {error.strip()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=1) as sock,
            ):
                if sock.recv(100).startswith(b"* OK"):
                    return self
            time.sleep(0.05)
        self.stop()
        raise ImapServerError(f"Dovecot did not answer on port {self.port} in {START_SECONDS} s")

    def _stop_left_over(self) -> None:
        """Kill a Dovecot left running on this configuration by a demo that was killed
        itself (SIGKILL gives it no chance to stop its children): it would hold the
        folder, and a second one refuses to start there. Only a process whose command
        line names this configuration file is touched."""
        pid_file = self.folder / "run" / "master.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return
        if (
            str(self.config.resolve()).encode() not in command
            and str(self.config).encode() not in command
        ):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}/status").exists() and time.monotonic() < deadline:
            if b"State:\tZ" in Path(f"/proc/{pid}/status").read_bytes():
                break  # killed; its parent (not us) has yet to reap it
            time.sleep(0.05)
        pid_file.unlink(missing_ok=True)  # Dovecot refuses to start beside a live PID

    def stop(self) -> None:
        """Kill Dovecot's whole process group (idempotent)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()

    @property
    def pid(self) -> int | None:
        """The Dovecot master's process id while it runs."""
        return None if self._process is None else self._process.pid

    def message_ids(self, user: str, folder: str = "INBOX") -> set[str]:
        """The Message-IDs ``user``'s ``folder`` holds now."""
        with self._client(user) as imap:
            imap.select_folder(folder, readonly=True)
            uids = imap.search(["ALL"])
            if not uids:
                return set()
            fetched = imap.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        found = set()
        for data in fetched.values():
            header = next((v for k, v in data.items() if k.startswith(b"BODY[HEADER")), b"")
            _, _, value = bytes(header).decode(errors="replace").partition(":")
            if value.strip():
                found.add(value.strip())
        return found

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Put ``raw`` into ``user``'s ``folder`` (IMAP APPEND), as a patient's mail would
        arrive."""
        with self._client(user) as imap:
            imap.append(folder, raw)

    @contextlib.contextmanager
    def _client(self, user: str) -> Iterator[Any]:
        imap = IMAPClient(self.host, self.port, ssl=False, timeout=30)
        try:
            imap.login(user, self.users[user])
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()
