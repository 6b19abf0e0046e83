"""``mail list`` and ``mail show`` read the times and the ``raw`` that practice software wrote,
whatever it wrote: a time in another format is read as the outbox reads it, text that is
no time is shown as it is (escaped for people), and nothing crashes. On SQLite, whose
columns keep whatever text was inserted, through the real command line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from supervisor import exit_codes
from tests.test_cli_mail import DB, add_rows, config, folder, mail, outbox, sqlite_url

__all__ = ["config", "folder"]  # fixtures used here


def _write_text(folder: Path, row_id: int, column: str, value: object) -> None:
    """Store ``value`` in ``column`` as the practice software would: through sqlite3, no
    conversion (SQLite keeps text in a DATETIME column as text)."""
    path = sqlite_url(folder).removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE email_messages SET {column} = ? WHERE id = ?", (value, row_id))


@pytest.fixture
def queued(folder: Path) -> int:
    [row_id] = add_rows(sqlite_url(folder), outbox(1))
    return row_id


def test_list_json_reads_a_day_first_created_at_as_the_outbox_does(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path, queued: int
) -> None:
    _write_text(folder, queued, "created_at", "01.12.2026 10:00")
    code, out, err = mail(capsys, config, "list", "--db", DB, "--folder", "outbox", "--json")
    assert (code, err) == (exit_codes.OK, "")
    [row] = json.loads(out)
    assert row["created_at"] == "2026-12-01T10:00:00"


def test_list_shows_a_created_at_that_is_no_time_as_its_text(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path, queued: int
) -> None:
    _write_text(folder, queued, "created_at", "gestern\x1b[2J")
    code, out, err = mail(capsys, config, "list", "--db", DB, "--folder", "outbox")
    assert (code, err) == (exit_codes.OK, "")
    assert "gestern\\x1b[2J" in out
    assert "\x1b" not in out


def test_list_json_keeps_a_created_at_that_is_no_time_as_stored(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path, queued: int
) -> None:
    _write_text(folder, queued, "created_at", "gestern")
    code, out, err = mail(capsys, config, "list", "--db", DB, "--folder", "outbox", "--json")
    assert (code, err) == (exit_codes.OK, "")
    assert json.loads(out)[0]["created_at"] == "gestern"


def test_show_reads_unix_seconds_and_shows_text_that_is_no_time(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path, queued: int
) -> None:
    _write_text(folder, queued, "created_at", 1764583200)  # 2025-12-01 10:00:00 UTC
    _write_text(folder, queued, "next_attempt_at", "soon\x07")
    code, out, err = mail(capsys, config, "show", str(queued), "--db", DB, "--json")
    assert (code, err) == (exit_codes.OK, "")
    [row] = json.loads(out)
    assert (row["created_at"], row["next_attempt_at"]) == ("2025-12-01T10:00:00", "soon\x07")
    code, out, err = mail(capsys, config, "show", str(queued), "--db", DB)
    assert (code, err) == (exit_codes.OK, "")
    assert "next_attempt_at:    soon\\x07" in out.splitlines()


def test_show_of_raw_written_as_text_prints_it_and_its_size(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path, queued: int
) -> None:
    raw = "From: a@example.org\r\nSubject: Grüße\r\n\r\nHallo\r\n"
    _write_text(folder, queued, "raw", raw)
    code, out, err = mail(capsys, config, "show", str(queued), "--db", DB, "--json")
    assert (code, err) == (exit_codes.OK, "")
    assert json.loads(out)[0]["raw_size"] == len(raw.encode())
    code, out, err = mail(capsys, config, "show", str(queued), "--db", DB, "--raw")
    assert (code, err) == (exit_codes.OK, "")
    assert out == raw


def test_move_reports_a_row_whose_times_are_no_times(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path, queued: int
) -> None:
    _write_text(folder, queued, "created_at", "n/a")
    code, out, err = mail(capsys, config, "move", str(queued), "--to", "deleted", "--db", DB)
    assert (code, err) == (exit_codes.OK, "")
    assert out == f"Moved message {queued} from outbox to deleted.\n"
