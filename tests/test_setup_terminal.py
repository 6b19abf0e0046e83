"""The Email Setup Wizard end to end in a real pseudo-terminal (pexpect).

``email-service setup`` runs as its own process on a pty, as a technician would run it:
a new SQLite practice database is set up against the test Dovecot (implicit TLS) and an
aiosmtpd server (STARTTLS, AUTH), both with certificates from the throwaway authority the
configuration's ``mail.ca_file`` trusts. The first SMTP password is wrong: the test shows
the server's answer, the wizard offers a correction, the right password passes, the
settings are saved, and the ``email_settings`` row holds them. No password typed is ever
echoed to the terminal. The service runs beside it all along: saving asks it to take the
settings up, and within a few check-in intervals ``email-service status`` says running
with both servers tested.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from actors.practice_schema import init_practice_database
from events.sql_store import SqlEventStore
from events.types import SelfTestPassed
from supervisor.setup.store import read_saved
from tests.conftest import KEY_FILE_VARIABLE, host_secrets
from tests.dovecot import Dovecot
from tests.smtp_servers import RecordingSmtpServer
from tests.test_service import wait_for_events
from tests.tls_certs import CertificateSet

pytest_plugins = ["tests.conftest_imap"]

ADDRESS = "reception@smile.example"
SMTP_PASSWORD = "Right-smtp-Pw-7"
WRONG_PASSWORD = "Wrong-smtp-Pw-3"
EXE = Path(sys.executable).with_name("email-service")
CHECKIN_SECONDS = 2.0

STEP = 60  # seconds allowed for each screen to appear (a bound, not a measurement)


@pytest.fixture
def smtp_server(imap_certs: CertificateSet) -> Iterator[RecordingSmtpServer]:
    server = RecordingSmtpServer("starttls", imap_certs, {ADDRESS: SMTP_PASSWORD}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def site(tmp_path: Path, imap_certs: CertificateSet) -> tuple[Path, str]:
    """A configuration file and the URL of a new practice database it serves."""
    folder = tmp_path / "practices"
    folder.mkdir()
    url = f"sqlite:///{folder / 'Smile Dental.sqlite3'}"
    init_practice_database(url, practice_name="Smile Dental")
    config = tmp_path / "service.toml"
    config.write_text(
        '[service]\nserver_id = "SRV1"\n'
        f"event_store = {json.dumps('sqlite:///' + str(tmp_path / 'events.sqlite3'))}\n"
        f"[databases]\nserver_url = {json.dumps(f'sqlite:///{folder}')}\n"
        f"[health]\ncheckin_seconds = {CHECKIN_SECONDS}\n"
        f"[mail]\nca_file = {json.dumps(str(imap_certs.ca_cert))}\n"
        f"io_timeout_seconds = {CHECKIN_SECONDS}\n"
        '[http]\nlisten = "127.0.0.1:0"\n'
    )
    return config, url


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_SERVICE_")}
    env[KEY_FILE_VARIABLE] = os.environ[KEY_FILE_VARIABLE]  # the test's own key file
    env["TERM"] = "dumb"
    return env


def test_a_technician_sets_up_a_new_practice_in_a_terminal(
    site: tuple[Path, str], smtp_server: RecordingSmtpServer, dovecot: Dovecot, imap_user: str
) -> None:
    config, url = site
    imap_password = dovecot.passwords[imap_user]
    # The service is running while the technician works, as on a practice server.
    service = subprocess.Popen(
        [str(EXE), "--config", str(config), "serve"], env=_environment(), stderr=subprocess.DEVNULL
    )
    store = SqlEventStore(f"sqlite:///{config.parent / 'events.sqlite3'}")
    try:
        wait_for_events(store, lambda r: isinstance(r.event, SelfTestPassed))
        _run_the_wizard(config, url, smtp_server, dovecot, imap_user, imap_password)
        # Saving asked the service to take the settings up: its next self-test tests
        # both servers (a wait on the log, bounded; not a timing assertion) and the
        # workstation's view says running.
        wait_for_events(
            store,
            lambda r: (
                isinstance(r.event, SelfTestPassed) and {"smtp", "imap"} <= set(r.event.components)
            ),
            timeout=6 * CHECKIN_SECONDS + 10,
        )
        status = subprocess.run(
            [str(EXE), "--config", str(config), "status", "--db", "Smile Dental", "--json"],
            env=_environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        (row,) = json.loads(status.stdout)
        assert (status.returncode, row["status"]) == (0, "running"), row
    finally:
        service.terminate()
        service.wait(timeout=20)
        store.close()


def _run_the_wizard(
    config: Path,
    url: str,
    smtp_server: RecordingSmtpServer,
    dovecot: Dovecot,
    imap_user: str,
    imap_password: str,
) -> None:
    transcript = io.StringIO()
    child = pexpect.spawn(
        str(EXE),
        ["--config", str(config), "setup", "--db", "Smile Dental"],
        env=_environment(),
        encoding="utf-8",
        timeout=STEP,
        dimensions=(50, 200),
    )
    child.logfile_read = transcript

    def answer(question: str, reply: str) -> None:
        child.expect_exact(question)
        child.sendline(reply)

    try:
        child.expect_exact("Email Setup Wizard for database 'Smile Dental'")
        child.expect_exact("service.server_id):   SRV1")
        answer("From address (the practice's email address):", ADDRESS)
        answer("Sender name patients see:", "Smile Dental")
        answer("Mail provider", "other")
        answer("SMTP server (host name):", "127.0.0.1")
        answer("SMTP security [none/starttls/tls] (starttls):", "")
        answer("SMTP port [587]:", str(smtp_server.port))
        answer(f"SMTP user name (empty: the server needs no log-in) [{ADDRESS}]:", "")
        answer("SMTP password:", WRONG_PASSWORD)
        answer("Import incoming email over IMAP? [y/N]:", "y")
        answer("IMAP server (host name):", "127.0.0.1")
        answer("IMAP security [none/starttls/tls] (tls):", "")
        answer("IMAP port [993]:", str(dovecot.tls_port))
        answer("IMAP user name", imap_user)
        answer("IMAP password:", imap_password)
        answer("Folder to import from [INBOX]:", "")
        answer("(keep):", "")
        answer("Send text messages (SMS)? [y/N]:", "")
        child.expect_exact("SMTP (sending)    FAILED: wrong user name or password")
        child.expect_exact("IMAP (receiving)  ok")
        answer("What now? [correct/test again/quit] (correct):", "")
        answer("Correct which part? [sender/smtp/imap/sms] (smtp):", "")
        answer("SMTP server (host name) [127.0.0.1]:", "")
        answer("SMTP security [none/starttls/tls] (starttls):", "")
        answer(f"SMTP port [{smtp_server.port}]:", "")
        answer("SMTP user name", "")
        answer("SMTP password (Enter keeps the saved one):", SMTP_PASSWORD)
        child.expect_exact("SMTP (sending)    ok")
        child.expect_exact("IMAP (receiving)  ok")
        answer("Every test passed. Save these settings? [Y/n]:", "y")
        child.expect_exact("Saved.")
        answer(f"Send a test message to {ADDRESS}? [Y/n]:", "n")
        answer("Send a test message to another address (empty: none):", "")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    row, _unreadable = read_saved(url, host_secrets())
    assert child.exitstatus == 0, transcript.getvalue()
    assert row is not None
    assert (row["from_address"], row["smtp_host"], row["smtp_port"]) == (
        ADDRESS,
        "127.0.0.1",
        smtp_server.port,
    )
    assert (row["smtp_username"], row["smtp_password"]) == (ADDRESS, SMTP_PASSWORD)
    assert (row["imap_enabled"], row["imap_security"], row["imap_port"]) == (
        True,
        "tls",
        dovecot.tls_port,
    )
    assert (row["imap_username"], row["imap_password"]) == (imap_user, imap_password)
    for secret in (WRONG_PASSWORD, SMTP_PASSWORD, imap_password):
        assert secret not in transcript.getvalue()
