"""The secrets canary: distinctive secrets in a practice's settings, a real service that
uses them and fails with them, and every route, command output, log line and the event
log searched for them (as written, base64, and the AUTH PLAIN string): nothing.

One ``serve`` process (a subprocess, as in production) serves one SQLite practice whose
SMTP password is wrong for a real aiosmtpd (so the refusal of that password goes through
the self-test, the diagnostics, the tooltip and the log), whose IMAP server does not
listen, and whose SMS and OAuth secrets are set but unused. The settings are stored as
older practice software writes them: plain text, the form most likely to leak.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import update

from actors import practice_db
from actors.practice_schema import email_settings, init_practice_database
from tests.serve_process import START_SECONDS, Served, serving
from tests.smtp_servers import RecordingSmtpServer, free_port

DB = "Canary Dental"
SMTP_PASSWORD = "Cnry-smtp-7Qx9"
IMAP_PASSWORD = "Cnry-imap-4Wz2"
SMS_PASSWORD = "Cnry-sms-8Kd5"
CLIENT_SECRET = "Cnry-client-secret-3Jv6"
REFRESH_TOKEN = "Cnry-refresh-1Hb0"
SECRETS = (SMTP_PASSWORD, IMAP_PASSWORD, SMS_PASSWORD, CLIENT_SECRET, REFRESH_TOKEN)


def _needles() -> list[bytes]:
    """Every form a secret could take on the way out."""
    found: list[bytes] = []
    for secret in SECRETS:
        raw = secret.encode()
        found += [raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw)]
    plain_auth = b"\0reception\0" + SMTP_PASSWORD.encode()  # AUTH PLAIN's initial response
    found.append(base64.b64encode(plain_auth))
    return found


def _leaks(what: str, data: bytes) -> list[str]:
    return [f"{what}: {n!r}" for n in _needles() if n in data]


@dataclass
class Running:
    root: Path
    config: Path
    served: Served

    @property
    def stderr(self) -> list[str]:
        return self.served.stderr

    def cli(self, *args: str) -> bytes:
        done = subprocess.run(
            [sys.executable, "-m", "supervisor.cli", "--config", str(self.config), *args],
            capture_output=True,
            timeout=120,
            check=False,
        )
        return done.stdout + done.stderr

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.served.url + path, timeout=30) as answer:
            body: bytes = answer.read()
            return body


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("canary")
    folder = root / "practices"
    folder.mkdir()
    with RecordingSmtpServer(users={"reception": "the-right-one"}) as smtp:
        url = f"sqlite:///{folder / DB}.sqlite3"
        init_practice_database(url, practice_name=DB)
        engine = practice_db.make_engine(url)
        with engine.begin() as conn:
            conn.execute(
                update(email_settings).values(
                    smtp_host=smtp.host,
                    smtp_port=smtp.port,
                    smtp_security="none",
                    smtp_username="reception",
                    smtp_password=SMTP_PASSWORD,
                    from_address="reception@canary.example",
                    imap_enabled=True,
                    imap_host="127.0.0.1",
                    imap_port=free_port(),
                    imap_security="none",
                    imap_username="reception",
                    imap_password=IMAP_PASSWORD,
                    sms_username="canary",
                    sms_password=SMS_PASSWORD,
                    oauth_client_secret=CLIENT_SECRET,
                    oauth_refresh_token=REFRESH_TOKEN,
                )
            )
        engine.dispose()
        config = root / "service.toml"
        config.write_text(
            f'[service]\nevent_store = "sqlite:///{root / "events.sqlite3"}"\n'
            f'[databases]\nserver_url = "sqlite:///{folder}"\n'
            "[health]\ncheckin_seconds = 2.0\nprobe_seconds = 2.0\n"
            "[mail]\noutbox_poll_seconds = 0.5\nio_timeout_seconds = 2.0\n"
            '[http]\nlisten = "127.0.0.1:0"\n'
        )
        with serving(config) as served:
            state = Running(root, config, served)
            state.cli("mail", "send-test", "--db", DB, "--to", "x@canary.example", "--wait", "3")
            deadline = time.monotonic() + START_SECONDS
            while time.monotonic() < deadline:  # until the refused password is on show
                diagnostics = state.get(f"/api/databases/{DB.replace(' ', '%20')}/diagnostics")
                if b"535" in diagnostics:
                    break
                time.sleep(0.5)
            yield state


def test_the_refused_password_reached_every_place_searched(running: Running) -> None:
    # Else the searches below prove nothing: the failure must be there to leak from.
    diagnostics = running.get(f"/api/databases/{DB.replace(' ', '%20')}/diagnostics")
    assert b"535" in diagnostics
    assert b"535" in running.cli("diagnostics", "--db", DB)


def test_no_route_shows_a_secret(running: Running) -> None:
    name = DB.replace(" ", "%20")
    leaks: list[str] = []
    for path in ("/", "/api/status", f"/api/databases/{name}/diagnostics", "/metrics"):
        leaks += _leaks(path, running.get(path))
    spec = json.loads(running.get("/openapi.json"))
    assert spec["paths"]
    assert leaks == []


def test_no_command_prints_a_secret(running: Running) -> None:
    leaks: list[str] = []
    for args in (
        ("status",),
        ("status", "--json"),
        ("status", "--db", DB),
        ("diagnostics", "--db", DB),
        ("diagnostics", "--db", DB, "--json"),
        ("databases",),
        ("databases", "--json"),
        ("mail", "list", "--db", DB, "--folder", "outbox"),
        ("mail", "list", "--db", DB, "--folder", "outbox", "--json"),
        ("events", "tail", "-n", "1000", "--no-follow"),
        ("events", "tail", "-n", "1000", "--no-follow", "--json"),
        ("events", "replay", "--db", DB, "--json"),
        ("events", "stats"),
        ("login-check", "--db", DB),
        ("key", "status"),
    ):
        leaks += _leaks(" ".join(args), running.cli(*args))
    assert leaks == []


def test_neither_the_log_lines_nor_the_event_log_hold_a_secret(running: Running) -> None:
    log = "".join(running.stderr).encode()
    assert b"status page at" in log  # the service's own lines are what is searched
    stored = b"".join(p.read_bytes() for p in running.root.glob("events.sqlite3*") if p.is_file())
    assert stored
    assert _leaks("serve's log", log) + _leaks("event log", stored) == []
