"""The Email Setup Wizard's last step in a real pseudo-terminal: a test message.

``email-service setup`` runs on a pty (pexpect) beside a running ``serve``; once the
settings are saved it offers "Send a test message to <the practice's address>?". Here
the technician declines that address and names another, and the wizard shows what the
mail server (aiosmtpd with AUTH) answered after the service sent the message through the
practice's ordinary outbox.
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
from tests.conftest import KEY_FILE_VARIABLE
from tests.smtp_servers import RecordingSmtpServer
from tests.test_service import wait_for_events

ADDRESS = "reception@smile.example"
PASSWORD = "Right-smtp-Pw-7"
TECHNICIAN = "it@support.example"
EXE = Path(sys.executable).with_name("email-service")
STEP = 90  # seconds allowed for each screen to appear (a bound, not a measurement)


@pytest.fixture
def smtp_server() -> Iterator[RecordingSmtpServer]:
    with RecordingSmtpServer(users={ADDRESS: PASSWORD}) as server:
        yield server


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_SERVICE_")}
    env[KEY_FILE_VARIABLE] = os.environ[KEY_FILE_VARIABLE]  # the test's own key file
    env["TERM"] = "dumb"
    env["TZ"] = "Europe/Berlin"
    return env


def test_the_wizard_sends_a_test_message_to_the_address_given_and_shows_the_answer(
    tmp_path: Path, smtp_server: RecordingSmtpServer
) -> None:
    folder = tmp_path / "practices"
    folder.mkdir()
    init_practice_database(f"sqlite:///{folder / 'Smile Dental.sqlite3'}", practice_name="Smile")
    config = tmp_path / "service.toml"
    config.write_text(
        f"[service]\nevent_store = {json.dumps('sqlite:///' + str(tmp_path / 'ev.sqlite3'))}\n"
        f"[databases]\nserver_url = {json.dumps(f'sqlite:///{folder}')}\n"
        "[health]\ncheckin_seconds = 2.0\n"
        "[mail]\noutbox_poll_seconds = 0.5\nio_timeout_seconds = 2.0\n"
        '[http]\nlisten = "127.0.0.1:0"\n'
    )
    service = subprocess.Popen(
        [str(EXE), "--config", str(config), "serve"], env=_environment(), stderr=subprocess.DEVNULL
    )
    store = SqlEventStore(f"sqlite:///{tmp_path / 'ev.sqlite3'}")
    transcript = io.StringIO()
    try:
        wait_for_events(store, lambda r: isinstance(r.event, SelfTestPassed))
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
            answer("From address (the practice's email address):", ADDRESS)
            answer("Sender name patients see:", "Smile Dental")
            answer("Mail provider", "other")
            answer("SMTP server (host name):", "127.0.0.1")
            answer("SMTP security [none/starttls/tls] (starttls):", "none")
            answer("SMTP port", str(smtp_server.port))
            answer("SMTP user name", "")
            answer("SMTP password:", PASSWORD)
            answer("Import incoming email over IMAP? [y/N]:", "")
            answer("Send text messages (SMS)? [y/N]:", "")
            child.expect_exact("SMTP (sending)    ok")
            answer("Every test passed. Save these settings? [Y/n]:", "")
            child.expect_exact("Saved.")
            answer(f"Send a test message to {ADDRESS}? [Y/n]:", "n")
            answer("Send a test message to another address (empty: none):", TECHNICIAN)
            child.expect_exact(f"Sent: the mail server 127.0.0.1:{smtp_server.port} accepted")
            child.expect(pexpect.EOF)
        finally:
            child.close()
        assert child.exitstatus == 0, transcript.getvalue()
        [message] = smtp_server.messages
        assert message.rcpt_tos == (TECHNICIAN,)
        assert message.authenticated_as == ADDRESS
        assert f"Message-ID {message.message_id})" in " ".join(transcript.getvalue().split())
        assert PASSWORD not in transcript.getvalue()
    finally:
        service.terminate()
        service.wait(timeout=20)
        store.close()
