"""``events tail`` and ``events replay`` print an event's text (a server's reply, a
diagnostic, a database's name) with its control characters escaped, on one line each;
``--json`` keeps the text exactly. Against a real SQLite log, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from events.clock import FakeClock
from events.sql_store import SqlEventStore
from events.types import (
    DatabaseDiscovered,
    Diagnostic,
    MailboxStarted,
    MessageSendFailed,
    SelfTestFailed,
    stream_for,
)
from supervisor import exit_codes
from tests.test_cli_events import run

DB = "Smile\x1b]0;x\x07 Dental"
REPLY = "550 5.1.1 \x1b]0;pwned\x07\x1b[2J no such user\nFAKE LINE"
FAULT = Diagnostic("smtp", "error", "535 \x1b[31mdenied\x07\nFAKE LINE")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    db_file = tmp_path / "events.sqlite3"
    config = tmp_path / "service.toml"
    config.write_text(f'[service]\nevent_store = "sqlite:///{db_file}"\n')
    store = SqlEventStore(f"sqlite:///{db_file}", clock=FakeClock())
    store.append(
        stream_for(DB),
        0,
        [
            DatabaseDiscovered(DB, "eligible"),
            MailboxStarted(1),
            MessageSendFailed(1, 7, "<m@x>", REPLY, True),
            SelfTestFailed(1, (FAULT,)),
        ],
    )
    store.close()
    return config


def _safe(out: str) -> bool:
    """No control character but the line breaks between lines, and no line forged by one."""
    controls = any(ord(c) < 32 and c != "\n" for c in out)
    return not controls and not any(line.startswith("FAKE") for line in out.splitlines())


def test_tail_prints_an_events_control_characters_escaped(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    code, out, _ = run(capsys, "--config", str(config), "events", "tail", "--no-follow")
    assert code == exit_codes.OK
    assert _safe(out)
    assert len(out.splitlines()) == 4  # one line per event: no line break gets through
    assert "Smile\\x1b]0;x\\x07 Dental" in out
    assert "\\x1b]0;pwned\\x07" in out


def test_replay_prints_the_last_failure_and_timeline_escaped(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    code, out, _ = run(capsys, "--config", str(config), "events", "replay")
    assert code == exit_codes.OK
    assert _safe(out)
    assert "  [smtp] error: 535 \\x1b[31mdenied\\x07\\x0aFAKE LINE" in out.splitlines()
    assert "Last failure of Smile\\x1b]0;x\\x07 Dental at " in out


def test_tail_json_keeps_the_text_exactly(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    code, out, _ = run(capsys, "--config", str(config), "events", "tail", "--no-follow", "--json")
    assert code == exit_codes.OK
    events = [json.loads(line) for line in out.splitlines()]
    assert events[2]["data"]["error"] == REPLY
    assert events[0]["db"] == DB
