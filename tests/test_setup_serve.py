"""The wizard beside a running service: settings saved for a new practice database are
taken up at once, and within one check-in interval `email-service status` says running
with the new mail server tested (issue: the Email Setup Wizard, "Show")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from actors.practice_schema import init_practice_database
from events.sql_store import SqlEventStore
from events.types import SelfTestPassed, db_of
from supervisor.cli import main
from tests.smtp_servers import RecordingSmtpServer
from tests.test_service import wait_for_events

pytest_plugins = ["tests.conftest_mail"]

CHECKIN_SECONDS = 2.0


def test_saved_settings_are_tested_and_running_within_a_check_in_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], smtp_server: RecordingSmtpServer
) -> None:
    practices = tmp_path / "practices"
    practices.mkdir()
    init_practice_database(f"sqlite:///{practices / 'New Smile.sqlite3'}", practice_name="New")
    config = tmp_path / "service.toml"
    config.write_text(
        f'[service]\nserver_id = "SRV1"\nevent_store = "sqlite:///{tmp_path / "events.db"}"\n'
        f'[databases]\nserver_url = "sqlite:///{practices}"\n'
        f"[health]\ncheckin_seconds = {CHECKIN_SECONDS}\n"
        f"[mail]\nio_timeout_seconds = {CHECKIN_SECONDS}\n"
        '[http]\nlisten = "127.0.0.1:0"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "--config", str(config), "serve"],
        stderr=subprocess.DEVNULL,
    )
    store = SqlEventStore(f"sqlite:///{tmp_path / 'events.db'}")
    try:
        wait_for_events(store, lambda r: isinstance(r.event, SelfTestPassed))
        code = main(
            [
                "--config", str(config), "setup", "--no-input", "--db", "New Smile",
                "--from-address", "reception@newsmile.example",
                "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp_server.port),
                "--smtp-security", "none", "--no-imap", "--save",
            ]
        )  # fmt: skip
        out = capsys.readouterr().out
        assert code == 0, out
        assert "Saved." in out
        # The mailbox restarts with the new settings: its first self-test includes SMTP.
        # (A wait on the log, bounded by a few intervals; not a timing assertion.)
        wait_for_events(
            store,
            lambda r: (
                isinstance(r.event, SelfTestPassed)
                and db_of(r.stream) == "New Smile"
                and "smtp" in r.event.components
            ),
            timeout=6 * CHECKIN_SECONDS + 10,
        )
        code = main(["--config", str(config), "status", "--db", "New Smile", "--json"])
        (row,) = json.loads(capsys.readouterr().out)
        assert (code, row["status"]) == (0, "running"), row
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        store.close()
