"""``email-service events tail | replay | stats`` against a real SQLite log."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from events.clock import FakeClock
from events.sql_store import SqlEventStore
from events.types import (
    DatabaseDiscovered,
    DatabaseIgnored,
    Diagnostic,
    MailboxCrashed,
    MailboxStarted,
    MessageSent,
    RestartScheduled,
    SelfTestFailed,
    SelfTestPassed,
    ServiceStarted,
    stream_for,
)
from supervisor import exit_codes
from supervisor.cli import main

SMTP_DOWN = Diagnostic("smtp", "error", "535 5.7.8 authentication failed")


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, FakeClock]:
    """A config file whose event log holds a short, known history."""
    db_file = tmp_path / "events.sqlite3"
    config = tmp_path / "service.toml"
    config.write_text(f'[service]\nevent_store = "sqlite:///{db_file}"\n')
    clock = FakeClock()
    store = SqlEventStore(f"sqlite:///{db_file}", clock=clock)
    smile, demo = stream_for("Smile Dental"), stream_for("Demo Practice")
    store.append("service", 0, [ServiceStarted("SRV1", "0.1.0", 77)])
    store.append(demo, 0, [DatabaseIgnored("name contains 'demo'")])
    store.append(smile, 0, [DatabaseDiscovered("Smile Dental", "eligible"), MailboxStarted(1)])
    clock.advance(15)
    store.append(smile, 2, [SelfTestPassed(1, ("database", "smtp")), MessageSent(1, 1, "<a@b>", 1)])
    clock.advance(15)
    store.append(smile, 4, [SelfTestFailed(1, (SMTP_DOWN,))])
    clock.advance(15)
    store.append(smile, 5, [MailboxCrashed(1, "TimeoutError: timed out", "tb")])
    store.append(smile, 6, [RestartScheduled(0.0, "crashed", 1), MailboxStarted(2)])
    store.close()
    return config, clock


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_replay_prints_each_databases_state(capsys: pytest.CaptureFixture[str], log) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "--config", str(log[0]), "events", "replay")
    assert code == exit_codes.OK
    assert "Replayed 10 events" in out
    smile = next(line for line in out.splitlines() if line.startswith("Smile Dental"))
    assert "starting" in smile
    assert "incarnation 2" in smile
    demo = next(line for line in out.splitlines() if line.startswith("Demo Practice"))
    assert "not served: name contains 'demo'" in demo


def test_replay_until_shows_the_past_state(capsys: pytest.CaptureFixture[str], log) -> None:  # type: ignore[no-untyped-def]
    config, clock = log
    at = (clock.now() - timedelta(seconds=10)).isoformat()  # after the failure, before the crash
    code, out, _ = run(capsys, "--config", str(config), "events", "replay", "--until", at, "--json")
    state = json.loads(out)
    smile = next(d for d in state["databases"] if d["name"] == "Smile Dental")
    assert (code, smile["status"]) == (0, "failing")
    assert smile["last_failure"] == [
        {"component": "smtp", "level": "error", "message": "535 5.7.8 authentication failed"}
    ]


def test_replay_of_one_database_shows_its_timeline(capsys: pytest.CaptureFixture[str], log) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "--config", str(log[0]), "events", "replay", "--db", "Smile Dental")
    timeline = out.split("Timeline")[1].splitlines()[1:]
    assert code == 0
    assert len(timeline) == 8
    assert "MailboxCrashed incarnation=1 error='TimeoutError: timed out'" in timeline[5]


def test_replay_of_an_unknown_database_says_so(capsys: pytest.CaptureFixture[str], log) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "--config", str(log[0]), "events", "replay", "--db", "Nope")
    assert (code, err) == (
        exit_codes.NO_INPUT,
        "email-service: no events for database 'Nope' in the log (exit 66 NO_INPUT)\n",
    )


def _corrupt(config: Path, seq: int) -> None:
    db_file = config.parent / "events.sqlite3"
    engine = create_engine(f"sqlite:///{db_file}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE events SET data = x'c1' WHERE seq = :s"), {"s": seq})
    engine.dispose()


def test_a_corrupt_record_stops_replay_naming_its_seq(
    capsys: pytest.CaptureFixture[str], log
) -> None:  # type: ignore[no-untyped-def]
    _corrupt(log[0], 4)
    code, _, err = run(capsys, "--config", str(log[0]), "events", "replay")
    assert code == exit_codes.DATA_ERROR
    assert err.startswith("email-service: event seq 4: not a valid record")
    assert err.count("\n") == 1


def test_skip_corrupt_goes_on_and_counts(capsys: pytest.CaptureFixture[str], log) -> None:  # type: ignore[no-untyped-def]
    _corrupt(log[0], 4)
    code, out, _ = run(
        capsys, "--config", str(log[0]), "events", "replay", "--skip-corrupt", "--json"
    )
    state = json.loads(out)
    assert code == 0
    assert [s["seq"] for s in state["skipped"]] == [4]
    assert state["events"] == 10


def test_stats_counts_by_type_and_database(capsys: pytest.CaptureFixture[str], log) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "--config", str(log[0]), "events", "stats", "--json")
    stats = json.loads(out)
    assert (code, stats["events"]) == (0, 10)
    assert stats["by_type"]["MailboxStarted"] == 2
    assert stats["by_database"] == {"Smile Dental": 8, "(service)": 1, "Demo Practice": 1}


def test_tail_without_follow_prints_the_last_events(
    capsys: pytest.CaptureFixture[str], log
) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "--config", str(log[0]), "events", "tail", "-n", "2", "--no-follow")
    lines = out.splitlines()
    assert code == 0
    assert [line.split()[2] for line in lines] == ["#9", "#10"]


def test_a_missing_log_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[service]\nevent_store = "sqlite:///{tmp_path / "none.sqlite3"}"\n')
    code, _, err = run(capsys, "--config", str(config), "events", "stats")
    assert code == exit_codes.NO_INPUT
    assert err.count("\n") == 1
    assert "no event log at" in err


def test_tail_follows_new_events_in_a_real_process(log) -> None:  # type: ignore[no-untyped-def]
    config, clock = log
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "supervisor.cli",
            "--config",
            str(config),
            "events",
            "tail",
            "-n",
            "1",
            "--json",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["seq"] == 10  # it has read the log: now follow
        store = SqlEventStore(f"sqlite:///{config.parent / 'events.sqlite3'}", clock=clock)
        store.append(stream_for("Smile Dental"), 8, [SelfTestPassed(2, ("database",))])
        store.close()
        line = json.loads(proc.stdout.readline())
        assert (line["seq"], line["type"], line["db"]) == (11, "SelfTestPassed", "Smile Dental")
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
