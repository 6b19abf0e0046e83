"""``status --db NAME`` on a SQLite folder without SQLAlchemy (``supervisor.sqlite_status``):
on the same database it gives what the regular path gives (``workstation_view.read_status``:
SQLAlchemy, discovery), and where it cannot say, it leaves the answer to that path."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from actors import checkins_table, practice_db
from actors.checkins_table import NewCheckIn
from actors.practice_schema import email_service_checkins, init_practice_database
from supervisor import discovery, sqlite_status, workstation_view
from supervisor.cli import main

GRACE = timedelta(seconds=15)
INTERVAL = timedelta(seconds=15)
A = "host-a pid 1 start 0000000a"
B = "host-b pid 2 start 0000000b"


def url_of(folder: Path, name: str = "Smile") -> str:
    return f"sqlite:///{folder / name}.sqlite3"


def write(folder: Path, *checkins: NewCheckIn) -> None:
    """Write check-ins as the service does (times from the database's clock)."""
    engine = practice_db.make_engine(url_of(folder))
    try:
        for new in checkins:
            with engine.begin() as conn:
                checkins_table.write_checkin(conn, new)
    finally:
        engine.dispose()


def write_old(folder: Path, ago: timedelta) -> None:
    """An ok check-in ``ago`` before now, written with explicit times (naive UTC)."""
    at = datetime.now(UTC).replace(tzinfo=None, microsecond=123456) - ago
    engine = practice_db.make_engine(url_of(folder))
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(email_service_checkins).values(
                    checked_in_at=at,
                    next_checkin_due_at=at + INTERVAL,
                    ok=True,
                    summary="old",
                    server_name="SRV1",
                    service_version="0.1.0",
                    service_instance=A,
                )
            )
    finally:
        engine.dispose()


def ok(instance: str | None = A, server: str = "SRV1") -> NewCheckIn:
    return NewCheckIn(True, "", INTERVAL, server, "0.1.0", service_instance=instance)


STATES: dict[str, Callable[[Path], None]] = {
    "no check-in": lambda f: None,
    "running": lambda f: write(f, ok()),
    "failed": lambda f: write(
        f, NewCheckIn(False, "SMTP: 535 authentication failed", INTERVAL, "SRV1", "0.1.0")
    ),
    "late by days": lambda f: write_old(f, timedelta(days=3, minutes=30)),
    "two server names": lambda f: write(f, ok(server="SRV1"), ok(server="SRV2")),
    "two starts taking turns": lambda f: write(f, ok(A), ok(B), ok(A)),
    "a restart": lambda f: write(f, ok(A), ok(A), ok(B)),
    "an older version's rows": lambda f: write(f, ok(None), ok(None)),
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    init_practice_database(url_of(tmp_path), practice_name="Smile")
    return tmp_path


@pytest.mark.parametrize("state", sorted(STATES))
def test_both_paths_give_the_same_status(folder: Path, state: str) -> None:
    STATES[state](folder)
    fast = sqlite_status.read_status(folder, "Smile", GRACE)
    regular = workstation_view.read_status("Smile", url_of(folder), GRACE)
    assert fast == regular


@pytest.mark.parametrize("state", sorted(STATES))
def test_the_command_prints_the_same_with_either_path(
    folder: Path, state: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    STATES[state](folder)
    monkeypatch.setenv("EMAIL_SERVICE_DATABASES_SERVER_URL", f"sqlite:///{folder}")
    fast = main(["status", "--db", "Smile", "--json"]), capsys.readouterr()
    monkeypatch.setattr(sqlite_status, "read_status", lambda *_args: None)
    regular = main(["status", "--db", "Smile", "--json"]), capsys.readouterr()
    assert fast == regular
    assert json.loads(fast[1].out)[0]["name"] == "Smile"


def test_a_database_without_service_instance_is_left_to_the_regular_path(folder: Path) -> None:
    write(folder, ok())
    engine = practice_db.make_engine(url_of(folder))
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE email_service_checkins DROP COLUMN service_instance")
    engine.dispose()
    assert sqlite_status.read_status(folder, "Smile", GRACE) is None
    assert workstation_view.read_status("Smile", url_of(folder), GRACE).status.running


def test_two_files_of_one_name_are_left_to_the_regular_path(folder: Path) -> None:
    init_practice_database(f"sqlite:///{folder / 'Smile'}.db", practice_name="Smile")
    assert sqlite_status.read_status(folder, "Smile", GRACE) is None


def test_a_database_without_the_practice_table_is_left_to_the_regular_path(
    tmp_path: Path,
) -> None:
    engine = practice_db.make_engine(url_of(tmp_path, "Other"))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (id INTEGER)")
    engine.dispose()
    assert sqlite_status.read_status(tmp_path, "Other", GRACE) is None


def test_the_fast_path_reads_the_files_and_rows_the_regular_one_reads() -> None:
    assert sqlite_status.SQLITE_SUFFIXES == discovery.SQLITE_SUFFIXES
    assert sqlite_status.NEWEST_CHECKINS == checkins_table.NEWEST_CHECKINS
    assert sqlite_status.LOCK_WAIT_SECONDS < workstation_view.READ_TIMEOUT_SECONDS


def test_status_of_one_sqlite_practice_never_imports_sqlalchemy(folder: Path) -> None:
    write(folder, ok())
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['email-service', 'status', '--db', 'Smile']\n"
        "try:\n"
        "    runpy.run_module('supervisor.cli', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "print('SQLALCHEMY', 'sqlalchemy' in sys.modules)\n"
    )
    env = dict(os.environ)
    env["EMAIL_SERVICE_DATABASES_SERVER_URL"] = f"sqlite:///{folder}"
    env["EMAIL_SERVICE_SERVICE_EVENT_STORE"] = f"sqlite:///{folder / 'events.db'}"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, env=env, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "running" in done.stdout
    assert done.stdout.splitlines()[-1] == "SQLALCHEMY False"


def test_the_fast_path_walks_the_checkins_time_index_from_the_newest(folder: Path) -> None:
    for _ in range(30):
        write(folder, ok())
    conn = sqlite3.connect(folder / "Smile.sqlite3")
    try:
        plan = conn.execute("EXPLAIN QUERY PLAN " + sqlite_status._CHECKINS, (10,)).fetchall()
    finally:
        conn.close()
    [step] = [r[-1] for r in plan]
    assert step.startswith("SCAN email_service_checkins USING INDEX "), step


def test_a_database_locked_by_a_writer_is_left_to_the_regular_path(folder: Path) -> None:
    write(folder, ok())
    holder = sqlite3.connect(folder / "Smile.sqlite3", isolation_level=None)
    try:
        holder.execute("PRAGMA journal_mode=DELETE")
        holder.execute("BEGIN EXCLUSIVE")  # a writer that does not let go
        assert sqlite_status.read_status(folder, "Smile", GRACE) is None
    finally:
        holder.close()
