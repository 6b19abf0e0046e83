"""``email-service mail send-test`` against a real service and a real SMTP server.

One ``serve`` process (a subprocess, as in production) serves one SQLite practice
database whose settings point at aiosmtpd (``tests.smtp_servers``); each test runs the
command as a subprocess and reads what it printed and its exit status. Recipients decide
the server's answer: ``refused@`` gets ``550`` at RCPT, ``later@`` ``451`` at DATA.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import update

from actors import practice_db
from actors.practice_schema import email_settings, init_practice_database
from supervisor.commands.send_test import SEND_FAILED, STILL_QUEUED
from tests.serve_process import serving
from tests.smtp_servers import RecordingSmtpServer

DB = "Smile Dental"
REFUSED = "550 5.1.1 No such user here"
LATER = "451 4.3.0 Try again later"
HOSTILE = "550 5.1.1 \x1b]0;pwned\x07\x1b[2J no such user"
START_SECONDS = 60.0


@dataclass
class Service:
    config: Path

    def send_test(self, to: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "supervisor.cli",
                "--config",
                str(self.config),
                "mail",
                "send-test",
                "--db",
                DB,
                "--to",
                to,
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "TZ": "Europe/Berlin"},
        )


@pytest.fixture(scope="module")
def smtp() -> Iterator[RecordingSmtpServer]:
    with RecordingSmtpServer() as server:
        server.script.rcpt["refused@example.org"] = REFUSED
        server.script.data_for["later@example.org"] = LATER
        server.script.rcpt["hostile@example.org"] = HOSTILE
        yield server


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, smtp: RecordingSmtpServer
) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("send-test")
    folder = root / "practices"
    folder.mkdir()
    url = f"sqlite:///{folder / DB}.sqlite3"
    init_practice_database(url, practice_name=DB)
    engine = practice_db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            update(email_settings).values(
                smtp_host=smtp.host,
                smtp_port=smtp.port,
                smtp_security="none",
                from_address="reception@smile.example",
                from_name=DB,
            )
        )
    engine.dispose()
    config = root / "service.toml"
    config.write_text(
        f'[service]\nevent_store = "sqlite:///{root / "events.sqlite3"}"\n'
        f'[databases]\nserver_url = "sqlite:///{folder}"\n'
        "[health]\ncheckin_seconds = 2.0\n"
        "[mail]\noutbox_poll_seconds = 0.5\nio_timeout_seconds = 2.0\n"
        '[http]\nlisten = "127.0.0.1:0"\n'
    )
    with serving(config, START_SECONDS):
        yield Service(config)


def test_an_accepted_test_message_exits_0_and_names_its_message_id(
    service: Service, smtp: RecordingSmtpServer
) -> None:
    done = service.send_test("me@example.org", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    [outcome] = json.loads(done.stdout)
    assert outcome["status"] == "sent"
    assert outcome["message_id"] in smtp.message_ids()


def test_an_accepted_test_message_is_reported_in_the_servers_local_time(
    service: Service,
) -> None:
    done = service.send_test("me@example.org")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Sent: the mail server ")
    assert " CET (message " in done.stdout or " CEST (message " in done.stdout


def test_a_refused_test_message_exits_1_with_the_servers_words(service: Service) -> None:
    done = service.send_test("refused@example.org")
    assert done.returncode == SEND_FAILED, done.stdout + done.stderr
    assert done.stdout.startswith("Failed: ")
    assert REFUSED in done.stdout


def test_a_deferred_test_message_is_still_queued_after_the_wait(service: Service) -> None:
    done = service.send_test("later@example.org", "--wait", "5")
    assert done.returncode == STILL_QUEUED, done.stdout + done.stderr
    assert done.stdout.startswith("Still queued after ")
    assert LATER in done.stdout


def test_a_refusal_with_control_characters_is_printed_escaped(service: Service) -> None:
    done = service.send_test("hostile@example.org")
    assert done.returncode == SEND_FAILED, done.stdout + done.stderr
    assert not any(c in done.stdout for c in "\x1b\x07")
    # The server's words are kept; its control characters never reach the terminal (the
    # stored reason already drops them: actors.mail.redact.one_line).
    assert "]0;pwned" in done.stdout
    assert "no such user" in done.stdout
