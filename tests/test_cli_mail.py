"""``email-service mail list|show|move|restore|action|retry-failed``, end to end through
``supervisor.cli.main`` with a configuration file, on SQLite practice databases made by
``db init`` and on PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from actors.practice_db import make_engine
from actors.practice_schema import email_messages, patients
from supervisor import exit_codes
from supervisor.cli import main
from supervisor.discovery import database_url
from tests.servers import POSTGRES_ADMIN_URL, named_databases, server_url
from tests.test_cli_databases import one_line_error, run, write_config

DB = "Smile Dental"
T0 = datetime(2026, 1, 5, 9, 0)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    practices = tmp_path / "practices"
    practices.mkdir()
    return practices


@pytest.fixture
def config(capsys: pytest.CaptureFixture[str], tmp_path: Path, folder: Path) -> Path:
    """A config on a folder with the practice database "Smile Dental", made by ``db init``."""
    path = write_config(tmp_path / "service.toml", f"sqlite:///{folder}")
    code, _, err = run(capsys, "--config", str(path), "db", "init", sqlite_url(folder))
    assert (code, err) == (exit_codes.OK, "")
    return path


def sqlite_url(folder: Path, name: str = DB) -> str:
    return f"sqlite:///{folder / name}.sqlite3"


def add_rows(url: str, *rows: dict[str, Any]) -> list[int]:
    """Insert ``email_messages`` rows as the practice software or the service would."""
    engine = make_engine(url)
    try:
        ids = []
        with engine.begin() as conn:
            for row in rows:
                key = conn.execute(insert(email_messages).values(**row)).inserted_primary_key
                assert key is not None
                ids.append(int(key[0]))
        return ids
    finally:
        engine.dispose()


def read_row(url: str, message_id: int) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(email_messages).where(email_messages.c.id == message_id)
            ).one()
        return dict(row._mapping)
    finally:
        engine.dispose()


def inbox(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "folder": "inbox",
        "status": "received",
        "message_id": f"<in{n}@patient.example>",
        "from_addr": f"patient{n}@example.com",
        "to_addrs": "reception@smile.example",
        "subject": f"Question {n}",
        "body_text": f"Hello, question number {n}.",
        "received_at": T0,
        **extra,
    }


def outbox(n: int, status: str = "queued", **extra: Any) -> dict[str, Any]:
    return {
        "folder": "outbox",
        "status": status,
        "from_addr": "reception@smile.example",
        "to_addrs": f"patient{n}@example.com",
        "subject": f"Reminder {n}",
        "body_text": "See you tomorrow.",
        **extra,
    }


def mail(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    return run(capsys, "--config", str(config), "mail", *argv)


def mail_json(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> Any:
    code, out, err = mail(capsys, config, *argv, "--json")
    assert (code, err) == (exit_codes.OK, ""), err
    return json.loads(out)


# --- list ----------------------------------------------------------------------------------


def test_list_shows_a_folder_newest_first(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    ids = add_rows(sqlite_url(folder), inbox(1), inbox(2), outbox(3), inbox(4))
    rows = mail_json(capsys, config, "list", "--db", DB, "--folder", "inbox")
    assert [r["id"] for r in rows] == [ids[3], ids[1], ids[0]]
    assert rows[0]["from_addr"] == "patient4@example.com"
    assert rows[0]["received_at"] == "2026-01-05T09:00:00"
    assert "body_text" not in rows[0]


def test_list_limit_keeps_the_newest(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    ids = add_rows(sqlite_url(folder), *(inbox(n) for n in range(5)))
    rows = mail_json(capsys, config, "list", "--db", DB, "--limit", "2")
    assert [r["id"] for r in rows] == [ids[4], ids[3]]


def test_list_outbox_counts_failed_messages(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    add_rows(
        sqlite_url(folder),
        outbox(1, "failed", last_error="550 5.1.1 no such user"),
        outbox(2, "failed"),
        outbox(3, "queued"),
    )
    code, out, _ = mail(capsys, config, "list", "--db", DB, "--folder", "outbox", "--limit", "1")
    assert code == exit_codes.OK
    assert out.splitlines()[0].split() == [
        "ID",
        "When",
        "Status",
        "Channel",
        "To",
        "Subject",
        "Patient",
    ]
    assert "1 of 3 message(s) in outbox of 'Smile Dental'." in out
    assert (
        "Outbox: 2 failed, 1 queued. `email-service mail retry-failed --db 'Smile Dental'`" in out
    )


def test_list_status_filters(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    ids = add_rows(sqlite_url(folder), outbox(1, "failed"), outbox(2, "queued"))
    rows = mail_json(capsys, config, "list", "--db", DB, "--folder", "outbox", "--status", "failed")
    assert [r["id"] for r in rows] == [ids[0]]


def test_list_of_an_empty_folder_says_so(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    code, out, _ = mail(capsys, config, "list", "--db", DB, "--folder", "sent")
    assert (code, out) == (exit_codes.OK, "No messages in sent of 'Smile Dental'.\n")


def test_list_of_a_wrong_folder_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    with pytest.raises(SystemExit) as raised:
        mail(capsys, config, "list", "--db", DB, "--folder", "spam")
    assert raised.value.code == exit_codes.USAGE
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "email-service mail list: error: argument --folder: invalid choice: 'spam'"
    )


def test_list_of_an_unknown_database_is_one_line(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    code, _, err = mail(capsys, config, "list", "--db", "smile dental")
    assert code == exit_codes.NO_INPUT
    assert one_line_error(err) == (
        "email-service: no database 'smile dental' on the server; did you mean 'Smile Dental'?"
    )


# --- show ----------------------------------------------------------------------------------


def test_show_prints_the_fields_and_the_text(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    [n] = add_rows(sqlite_url(folder), inbox(1, raw=b"Subject: Question 1\r\n\r\nHello\r\n"))
    code, out, _ = mail(capsys, config, "show", str(n), "--db", DB)
    assert code == exit_codes.OK
    assert "subject:            Question 1" in out
    assert "raw_size:           30" in out  # bytes of raw
    assert out.endswith("\nHello, question number 1.\n")


def test_show_json_has_the_body_and_raw_size(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    [n] = add_rows(sqlite_url(folder), outbox(1))
    [row] = mail_json(capsys, config, "show", str(n), "--db", DB)
    assert (row["id"], row["body_text"], row["raw_size"], row["folder"]) == (
        n,
        "See you tomorrow.",
        None,
        "outbox",
    )


def test_show_raw_prints_the_message_as_stored(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    raw = b"Subject: Question 1\r\n\r\nHello\r\n"
    [n] = add_rows(sqlite_url(folder), inbox(1, raw=raw))
    code, out, _ = mail(capsys, config, "show", str(n), "--db", DB, "--raw")
    assert (code, out) == (exit_codes.OK, raw.decode())


def test_show_an_unknown_id_is_one_line(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    code, _, err = mail(capsys, config, "show", "999", "--db", DB)
    assert (code, one_line_error(err)) == (
        exit_codes.NO_INPUT,
        "email-service: no message 999 in 'Smile Dental'",
    )


@pytest.mark.parametrize("bad", ["0", "x1", "-3"])
def test_show_an_id_that_is_not_one_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], config: Path, bad: str
) -> None:
    with pytest.raises(SystemExit) as raised:
        mail(capsys, config, "show", bad, "--db", DB)
    assert raised.value.code == exit_codes.USAGE
    assert f"{bad!r} is not a message id" in capsys.readouterr().err


# --- move and restore ----------------------------------------------------------------------


def test_move_to_deleted_remembers_the_folder(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    [n] = add_rows(sqlite_url(folder), inbox(1))
    code, out, _ = mail(capsys, config, "move", str(n), "--to", "deleted", "--db", DB)
    assert (code, out) == (exit_codes.OK, f"Moved message {n} from inbox to deleted.\n")
    row = read_row(sqlite_url(folder), n)
    assert (row["folder"], row["deleted_from"]) == ("deleted", "inbox")


def test_restore_puts_it_back_and_forgets_deleted_from(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    [n] = add_rows(sqlite_url(folder), outbox(1, "failed"))
    mail(capsys, config, "move", str(n), "--to", "deleted", "--db", DB)
    [row] = mail_json(capsys, config, "restore", str(n), "--db", DB)
    assert (row["folder"], row["status"], row["deleted_from"]) == ("outbox", "failed", None)


def test_move_a_message_being_sent_is_refused(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    [n] = add_rows(sqlite_url(folder), outbox(1, "sending"))
    code, _, err = mail(capsys, config, "move", str(n), "--to", "deleted", "--db", DB)
    assert code == exit_codes.USAGE
    assert "is being sent right now (status sending)" in one_line_error(err)
    assert read_row(sqlite_url(folder), n)["folder"] == "outbox"


def test_move_twice_is_one_line(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    [n] = add_rows(sqlite_url(folder), inbox(1))
    mail(capsys, config, "move", str(n), "--to", "deleted", "--db", DB)
    code, _, err = mail(capsys, config, "move", str(n), "--to", "deleted", "--db", DB)
    assert (code, one_line_error(err)) == (
        exit_codes.USAGE,
        f"email-service: message {n} is already in deleted",
    )


def test_move_anywhere_but_deleted_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    with pytest.raises(SystemExit) as raised:
        mail(capsys, config, "move", "1", "--to", "sent", "--db", DB)
    assert raised.value.code == exit_codes.USAGE


def test_restore_a_message_not_in_deleted_is_one_line(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    [n] = add_rows(sqlite_url(folder), inbox(1))
    code, _, err = mail(capsys, config, "restore", str(n), "--db", DB)
    assert (code, one_line_error(err)) == (
        exit_codes.USAGE,
        f"email-service: message {n} is not in deleted (it is in inbox)",
    )


def test_restore_without_deleted_from_needs_to(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    [n] = add_rows(sqlite_url(folder), inbox(1, folder="deleted"))
    code, _, err = mail(capsys, config, "restore", str(n), "--db", DB)
    assert code == exit_codes.USAGE
    assert "give --to inbox, outbox or sent" in one_line_error(err)
    [row] = mail_json(capsys, config, "restore", str(n), "--db", DB, "--to", "inbox")
    assert row["folder"] == "inbox"


# --- action ----------------------------------------------------------------------------------


def test_action_links_a_patient_with_who_and_the_servers_time(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    [n] = add_rows(sqlite_url(folder), inbox(1))
    code, out, _ = mail(
        capsys, config, "action", str(n), "--patient", "42", "--by", "Dr Jones", "--db", DB
    )
    assert code == exit_codes.OK
    row = read_row(sqlite_url(folder), n)
    assert (row["patient_id"], row["actioned_by"]) == (42, "Dr Jones")
    assert isinstance(row["actioned_at"], datetime)
    assert out.startswith(f"Message {n} linked to patient 42 by Dr Jones at ")


def test_action_checks_a_patient_against_a_filled_patients_table(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    [n] = add_rows(sqlite_url(folder), inbox(1))
    engine = make_engine(sqlite_url(folder))
    with engine.begin() as conn:
        conn.execute(insert(patients).values(id=7, email="patient1@example.com"))
    engine.dispose()
    code, _, err = mail(
        capsys, config, "action", str(n), "--patient", "8", "--by", "Ann", "--db", DB
    )
    assert (code, one_line_error(err)) == (
        exit_codes.NO_INPUT,
        "email-service: no patient 8 in the patients table of 'Smile Dental'",
    )
    [row] = mail_json(capsys, config, "action", str(n), "--patient", "7", "--by", "Ann", "--db", DB)
    assert row["patient_id"] == 7


def test_action_needs_a_name(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    with pytest.raises(SystemExit) as raised:
        mail(capsys, config, "action", "1", "--patient", "7", "--by", "  ", "--db", DB)
    assert raised.value.code == exit_codes.USAGE
    assert "the name must not be empty" in capsys.readouterr().err


# --- retry-failed ----------------------------------------------------------------------------


def test_retry_failed_requeues_every_failed_outbox_row(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    failed = {
        "attempts": 5,
        "next_attempt_at": T0,
        "last_error": "554 5.7.1 rejected",
        "wire_at": T0,
    }
    ids = add_rows(
        sqlite_url(folder), outbox(1, "failed", **failed), outbox(2, "queued"), outbox(3, "failed")
    )
    rows = mail_json(capsys, config, "retry-failed", "--db", DB)
    assert [(r["id"], r["attempts_made"]) for r in rows] == [(ids[0], 5), (ids[2], 0)]
    row = read_row(sqlite_url(folder), ids[0])
    assert (row["status"], row["attempts"], row["next_attempt_at"], row["wire_at"]) == (
        "queued",
        0,
        None,
        None,
    )
    assert row["last_error"] == "554 5.7.1 rejected"


def test_retry_failed_with_id_requeues_only_that_row(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    ids = add_rows(sqlite_url(folder), outbox(1, "failed"), outbox(2, "failed"))
    code, out, _ = mail(capsys, config, "retry-failed", "--id", str(ids[1]), "--db", DB)
    assert code == exit_codes.OK
    assert "Queued 1 failed message(s) again in 'Smile Dental'." in out
    statuses = [read_row(sqlite_url(folder), n)["status"] for n in ids]
    assert statuses == ["failed", "queued"]


def test_retry_failed_with_id_of_a_row_that_did_not_fail_is_one_line(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    [n] = add_rows(sqlite_url(folder), outbox(1, "queued"))
    code, _, err = mail(capsys, config, "retry-failed", "--id", str(n), "--db", DB)
    assert (code, one_line_error(err)) == (
        exit_codes.USAGE,
        f"email-service: message {n} is not a failed outbox message (it is in outbox with "
        "status queued)",
    )


def test_retry_failed_with_nothing_failed_says_so(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    code, out, _ = mail(capsys, config, "retry-failed", "--db", DB)
    assert (code, out) == (exit_codes.OK, "No failed messages in the outbox of 'Smile Dental'.\n")


# --- every subcommand ------------------------------------------------------------------------


@pytest.mark.parametrize("sub", ["list", "show", "move", "restore", "action", "retry-failed"])
def test_each_mail_subcommand_has_help_with_db_and_json(
    capsys: pytest.CaptureFixture[str], sub: str
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["mail", sub, "--help"])
    out = capsys.readouterr().out
    assert raised.value.code == 0
    assert "--db NAME" in out
    assert "--json" in out


def test_a_database_without_the_practice_table_is_one_line(
    capsys: pytest.CaptureFixture[str], config: Path, folder: Path
) -> None:
    import sqlite3

    sqlite3.connect(folder / "other.sqlite3").close()
    code, _, err = mail(capsys, config, "list", "--db", "other")
    assert (code, one_line_error(err)) == (
        exit_codes.NO_INPUT,
        "email-service: database 'other' is not a practice database (it has no practice table)",
    )


# --- on PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A config on the PostgreSQL server, and one practice database made by ``db init``."""
    name = f"pesm{uuid.uuid4().hex[:6]} Smile Dental"
    with named_databases(POSTGRES_ADMIN_URL, [name]) as urls:
        server = server_url(POSTGRES_ADMIN_URL)
        yield write_config(tmp_path / "pg.toml", server), name, urls[name]


def test_on_postgresql_list_action_move_restore_retry(
    capsys: pytest.CaptureFixture[str], postgres: tuple[Path, str, str]
) -> None:
    config, name, url = postgres
    code, _, err = run(
        capsys,
        "--config",
        str(config),
        "db",
        "init",
        database_url(server_url(POSTGRES_ADMIN_URL), name),
    )
    assert (code, err) == (exit_codes.OK, "")
    received, failed = add_rows(url, inbox(1), outbox(2, "failed", attempts=3))

    assert [r["id"] for r in mail_json(capsys, config, "list", "--db", name)] == [received]
    [row] = mail_json(
        capsys, config, "action", str(received), "--patient", "9", "--by", "Ann", "--db", name
    )
    assert (row["patient_id"], row["actioned_by"]) == (9, "Ann")
    assert row["actioned_at"] is not None
    mail_json(capsys, config, "move", str(received), "--to", "deleted", "--db", name)
    assert read_row(url, received)["deleted_from"] == "inbox"
    mail_json(capsys, config, "restore", str(received), "--db", name)
    assert read_row(url, received)["folder"] == "inbox"
    assert [r["id"] for r in mail_json(capsys, config, "retry-failed", "--db", name)] == [failed]
    assert (read_row(url, failed)["status"], read_row(url, failed)["attempts"]) == ("queued", 0)
