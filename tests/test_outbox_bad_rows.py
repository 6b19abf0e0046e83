"""One badly written outbox row never blocks the others (issue 13, item 1, the outbox side).

Rows are inserted by plain SQL, as practice software writes them: on SQLite with values of
any type the column lets through (text in ``raw``, dates in other formats, numbers as
text), on PostgreSQL and MariaDB in the text forms their columns accept. A real SMTP server
(aiosmtpd) receives the mail. The good rows before and after a bad one are sent, the bad
one is failed with the reason in ``last_error``, and nothing crashes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from actors.mail.outbox import Outbox
from actors.mail.smtp_transport import SmtpSender
from actors.practice_db import make_engine
from events.clock import FakeClock
from events.store import read_all
from events.types import MailboxCrashed, MessageSendFailed, MessageSent, RestartScheduled
from supervisor.service import start_tree, stop_tree
from tests.mail_helpers import (
    INCARNATION,
    EventLog,
    claimed_engine,
    mail_settings,
    settings_for,
    wait_until,
    write_email_settings,
)
from tests.servers import fresh_mariadb_database, fresh_postgres_database
from tests.smtp_servers import RecordingSmtpServer
from tests.test_service import make_practices
from tests.test_service import settings_for as service_settings

pytest_plugins = ["tests.conftest_mail"]

MESSAGE_LINES = (
    "From: Smile Dental <reception@practice.example>",
    "To: text-raw@example.org",
    "Subject: Written as text",
    "",
    "A message the practice software stored as text.",
)
NOT_A_MESSAGE = "Hello Ann, see you on Monday at 9."


def insert(engine: Engine, **values: Any) -> int:
    """Insert one queued outbox row by plain SQL (values bound as they are)."""
    row = {"folder": "outbox", "channel": "email", "status": "queued", **values}
    names = ", ".join(row)
    marks = ", ".join(f":{name}" for name in row)
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO email_messages ({names}) VALUES ({marks})"), row)
        found = conn.execute(text("SELECT MAX(id) FROM email_messages")).scalar_one()
    return int(found)


def insert_literal(engine: Engine, columns: dict[str, str]) -> int:
    """Insert one queued outbox row with SQL literals (``columns``: name -> SQL text), so
    the database converts text to the column's type as it does for practice software."""
    row = {"folder": "'outbox'", "channel": "'email'", "status": "'queued'", **columns}
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO email_messages ({', '.join(row)}) VALUES ({', '.join(row.values())})"
        )
        found = conn.execute(text("SELECT MAX(id) FROM email_messages")).scalar_one()
    return int(found)


def stored(engine: Engine, row_id: int) -> dict[str, Any]:
    """The row's status columns read by plain SQL (a typed read would trip on the very
    values under test)."""
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT status, folder, attempts, last_error, message_id "
                "FROM email_messages WHERE id = :id"
            ),
            {"id": row_id},
        ).one()
    return dict(found._mapping)


def outbox_for(engine: Engine, server: RecordingSmtpServer) -> tuple[Outbox, EventLog]:
    clock = FakeClock()
    settings = settings_for(server)
    log = EventLog()
    sender = SmtpSender(settings, timeout=5.0, clock=clock)
    outbox = Outbox(
        engine,
        INCARNATION,
        settings,
        mail_settings(),
        {"email": sender},
        log,
        clock,
        UTC,
    )
    return outbox, log


def recipients_received(server: RecordingSmtpServer) -> list[str]:
    return sorted(r for m in server.messages for r in m.rcpt_tos)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = claimed_engine(f"sqlite:///{tmp_path / 'practice.db'}")
    yield engine
    engine.dispose()


# --- SQLite: any value in any column -----------------------------------------------------


def test_sqlite_rows_with_text_raw_and_odd_values_are_sent_and_the_bad_one_failed(
    sqlite_engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    before = insert(sqlite_engine, to_addrs="before@example.org", subject="First", body_text="1")
    text_raw = insert(
        sqlite_engine,
        raw="\r\n".join(MESSAGE_LINES),
        created_at="03.12.2026 10:00",
        attempts="2",
    )
    bad = insert(sqlite_engine, raw=NOT_A_MESSAGE, subject="Broken", to_addrs="bad@example.org")
    odd = insert(
        sqlite_engine,
        to_addrs="one@example.org\ntwo@example.org",
        subject=None,
        body_text=None,
        attempts="not a number",
        created_at="yesterday",
        next_attempt_at="2026-01-01T09:00:00Z",
    )
    number = insert(sqlite_engine, to_addrs="num@example.org", subject=4711, body_text=12.5)
    after = insert(sqlite_engine, to_addrs="after@example.org", subject="Last", body_text="2")
    outbox, log = outbox_for(sqlite_engine, smtp_server)

    assert outbox.send_due() == 6

    sent = [stored(sqlite_engine, i) for i in (before, text_raw, odd, number, after)]
    assert [(r["status"], r["folder"]) for r in sent] == [("sent", "sent")] * 5
    assert recipients_received(smtp_server) == sorted(
        [
            "before@example.org",
            "text-raw@example.org",
            "one@example.org",
            "two@example.org",
            "num@example.org",
            "after@example.org",
        ]
    )
    failed = stored(sqlite_engine, bad)
    assert (failed["status"], failed["folder"]) == ("failed", "outbox")
    assert failed["last_error"].startswith("not sent: raw is text that is not an email message")
    assert [e.row_id for e in log.of(MessageSendFailed)] == [bad]
    assert len(log.of(MessageSent)) == 5


def test_the_attempts_written_back_are_a_whole_number(
    sqlite_engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    row_id = insert(sqlite_engine, to_addrs="a@example.org", subject="x", attempts="2")
    outbox_for(sqlite_engine, smtp_server)[0].send_due()
    assert stored(sqlite_engine, row_id)["attempts"] == 3


def test_a_text_raw_message_is_sent_byte_for_byte_as_utf8(
    sqlite_engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    lines = (*MESSAGE_LINES[:-1], "Grüße aus der Praxis")
    insert(sqlite_engine, raw="\r\n".join(lines))
    outbox_for(sqlite_engine, smtp_server)[0].send_due()
    [received] = smtp_server.messages
    assert "Grüße aus der Praxis".encode() in received.content


def test_recovery_reads_attempts_written_as_text(
    sqlite_engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    row_id = insert(
        sqlite_engine,
        to_addrs="a@example.org",
        subject="x",
        status="sending",
        attempts="four",
        claimed_incarnation=INCARNATION - 1,
        wire_at="2026-12-01 10:00:00.000000",
    )
    outbox, _log = outbox_for(sqlite_engine, smtp_server)
    assert outbox.recover() == 1
    assert (stored(sqlite_engine, row_id)["status"], stored(sqlite_engine, row_id)["attempts"]) == (
        "queued",
        1,
    )


# --- PostgreSQL and MariaDB: the text forms their columns accept -------------------------


def _server_rows(engine: Engine, server: RecordingSmtpServer, crlf: str) -> None:
    message = crlf.join(MESSAGE_LINES).replace("'", "''")
    before = insert_literal(engine, {"to_addrs": "'before@example.org'", "subject": "'First'"})
    as_text = insert_literal(
        engine,
        {"raw": f"'{message}'", "attempts": "'2'", "created_at": "'2026-12-03 10:00'"},
    )
    bad = insert_literal(
        engine,
        {"raw": f"'{NOT_A_MESSAGE}'", "subject": "'Broken'", "to_addrs": "'bad@example.org'"},
    )
    odd = insert_literal(
        engine,
        {
            "to_addrs": "'one@example.org two@example.org'",
            "subject": "NULL",
            "body_text": "NULL",
            "next_attempt_at": "'2026-01-01 09:00:00'",
        },
    )
    after = insert_literal(engine, {"to_addrs": "'after@example.org'", "subject": "'Last'"})
    outbox, log = outbox_for(engine, server)
    assert outbox.send_due() == 5
    assert [stored(engine, i)["status"] for i in (before, as_text, odd, after)] == ["sent"] * 4
    assert recipients_received(server) == sorted(
        [
            "before@example.org",
            "text-raw@example.org",
            "one@example.org",
            "two@example.org",
            "after@example.org",
        ]
    )
    failed = stored(engine, bad)
    assert failed["status"] == "failed"
    assert failed["last_error"].startswith("not sent: raw is bytes that are not an email message")
    assert [e.row_id for e in log.of(MessageSendFailed)] == [bad]


@pytest.mark.postgres
def test_postgresql_rows_written_as_text_are_sent_and_the_bad_one_failed(
    smtp_server: RecordingSmtpServer,
) -> None:
    with fresh_postgres_database("pes_badrows") as url:
        engine = claimed_engine(url)
        try:
            _server_rows(engine, smtp_server, "\n")
        finally:
            engine.dispose()


@pytest.mark.mariadb
def test_mariadb_rows_written_as_text_are_sent_and_the_bad_one_failed(
    smtp_server: RecordingSmtpServer,
) -> None:
    with fresh_mariadb_database("pes_badrows") as url:
        engine = claimed_engine(url)
        try:
            _server_rows(engine, smtp_server, "\r\n")
        finally:
            engine.dispose()


# --- the whole service: no crash, no restart ---------------------------------------------


def test_the_running_service_fails_the_bad_row_without_a_crash_or_restart(
    tmp_path: Path, smtp_server: RecordingSmtpServer
) -> None:
    folder = tmp_path / "practices"
    make_practices(folder, "Smile Dental")
    engine = make_engine(f"sqlite:///{folder / 'Smile Dental.sqlite3'}")
    try:
        write_email_settings(
            engine,
            smtp_host=smtp_server.host,
            smtp_port=smtp_server.port,
            smtp_security="none",
            from_address="reception@practice.example",
        )
        good = [insert(engine, to_addrs=f"p{i}@example.org", subject=f"Row {i}") for i in range(2)]
        bad = insert(engine, raw=NOT_A_MESSAGE, subject="Broken", created_at="03/12/2026 10:00")
        good.append(insert(engine, to_addrs="p2@example.org", subject="Row 2", attempts="0"))
        tree = start_tree(service_settings(tmp_path))
        try:

            def done() -> bool:
                sent = all(stored(engine, i)["status"] == "sent" for i in good)
                return sent and stored(engine, bad)["status"] == "failed"

            wait_until(done, "the good rows sent and the bad one failed", timeout=30)
            events = [r.event for r in read_all(tree.store)]
        finally:
            stop_tree(tree, "test over")
        assert not [e for e in events if isinstance(e, (MailboxCrashed, RestartScheduled))]
        assert "raw is text that is not an email message" in stored(engine, bad)["last_error"]
    finally:
        engine.dispose()
