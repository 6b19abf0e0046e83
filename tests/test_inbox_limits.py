"""What a practice database cannot store is cut with a note or parked, never a crash.

Against real servers with their default limits: MariaDB (65,535-byte TEXT columns,
strict mode, ``max_allowed_packet`` 16 MiB), PostgreSQL and SQLite, with messages from a
real Dovecot.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from email import policy
from email.header import Header
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text

from actors.mail.inbox import Inbox
from actors.mail.storage_limits import ColumnLimit, StorageLimits, fit_row, read_limits
from actors.practice_schema import email_messages
from config.settings import MailSettings
from events.clock import FakeClock
from events.types import Event, MessageParked, MessageReceived
from tests.dovecot import Dovecot, imap_settings_for, make_message, new_practice_engine
from tests.servers import fresh_database

pytest_plugins = ["tests.conftest_imap"]


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def practice(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(request.param, tmp_path) as url:
        engine = new_practice_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture
def mariadb_practice(tmp_path: Path) -> Iterator[Engine]:
    with fresh_database("mariadb", tmp_path) as url:
        engine = new_practice_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def _inbox(
    engine: Engine,
    dovecot: Dovecot,
    user: str,
    mail: MailSettings,
    events: list[Event],
    **settings: Any,
) -> Inbox:
    return Inbox(
        engine, 1, imap_settings_for(dovecot, user, **settings), mail, events.extend, FakeClock()
    )


def _rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(email_messages).order_by(email_messages.c.id)))


def _big_message(size: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "pat@example.org"
    msg["To"] = "reception@smile.example"
    msg["Subject"] = "X-ray images"
    msg["Message-ID"] = f"<big.{size}@example.org>"
    msg.set_content("The images are attached.\n")
    msg.add_attachment(
        os.urandom(size), maintype="application", subtype="octet-stream", filename="xray.bin"
    )
    return msg.as_bytes(policy=policy.SMTP)


LONG_SUBJECT = "ü" * 40_000  # 80,000 bytes in UTF-8: more than a MariaDB TEXT column


def _long_subject_message() -> bytes:
    subject = Header(LONG_SUBJECT, "utf-8").encode()  # encoded words, folded
    return (
        (
            f"From: pat@example.org\r\nTo: reception@smile.example\r\nSubject: {subject}\r\n"
            "Message-ID: <long.subject@example.org>\r\n\r\nHello\r\n"
        )
        .replace("\n ", "\r\n ")
        .replace("\r\r", "\r")
        .encode("ascii")
    )


def test_a_subject_longer_than_mariadbs_text_column_is_cut_with_a_note(
    mariadb_practice: Engine, dovecot: Dovecot, imap_user: str, mail_settings: MailSettings
) -> None:
    raw = _long_subject_message()
    dovecot.append(imap_user, raw)
    events: list[Event] = []
    inbox = _inbox(
        mariadb_practice, dovecot, imap_user, mail_settings, events, imap_after_import="delete"
    )
    assert inbox.poll() == 1
    [row] = _rows(mariadb_practice)
    assert row.subject == "ü" * (65_535 // 2)
    assert row.raw == raw
    assert "subject cut from 40,000 to 32,767 characters" in row.last_error
    assert dovecot.uids(imap_user) == []  # raw is whole: the server's copy is not needed
    inbox.close()


def test_a_long_subject_is_stored_whole_on_postgresql_and_sqlite(
    practice: Engine, dovecot: Dovecot, imap_user: str, mail_settings: MailSettings
) -> None:
    dovecot.append(imap_user, _long_subject_message())
    inbox = _inbox(practice, dovecot, imap_user, mail_settings, [])
    inbox.poll()
    [row] = _rows(practice)
    assert (row.subject, row.last_error) == (LONG_SUBJECT, None)
    inbox.close()


def test_a_message_over_max_allowed_packet_is_parked_and_left_on_the_server(
    mariadb_practice: Engine, dovecot: Dovecot, imap_user: str, mail_settings: MailSettings
) -> None:
    with mariadb_practice.connect() as conn:
        packet = conn.execute(text("SELECT @@max_allowed_packet")).scalar_one()
    big = _big_message(packet * 3 // 4 + 1024)  # base64: 4/3 of it, more than a packet
    big_uid = dovecot.append(imap_user, big)
    dovecot.append(imap_user, make_message("after it"))
    events: list[Event] = []
    inbox = _inbox(
        mariadb_practice, dovecot, imap_user, mail_settings, events, imap_after_import="delete"
    )
    assert inbox.poll() == 2
    parked, after = _rows(mariadb_practice)
    assert (parked.subject, parked.raw, after.subject) == ("X-ray images", None, "after it")
    assert parked.body_text == "The images are attached.\n"
    assert "max_allowed_packet 16.0 MiB" in parked.last_error
    assert "left on the IMAP server" in parked.last_error
    assert dovecot.uids(imap_user) == [big_uid]
    [event] = [e for e in events if isinstance(e, MessageParked)]
    assert (event.uid, event.row_id) == (big_uid, parked.id)
    assert len([e for e in events if isinstance(e, MessageReceived)]) == 2
    inbox.close()
    again = _inbox(
        mariadb_practice, dovecot, imap_user, mail_settings, events, imap_after_import="delete"
    )
    assert again.poll() == 0  # neither imported again nor deleted by the catch-up
    assert dovecot.uids(imap_user) == [big_uid]
    again.close()


def test_mariadbs_limits_are_read_from_the_server(mariadb_practice: Engine) -> None:
    with mariadb_practice.connect() as conn:
        limits = read_limits(conn)
    assert limits.statement_bytes == 16 * 1024 * 1024
    assert limits.columns["subject"] == ColumnLimit(chars=65_535, octets=65_535)
    assert limits.columns["message_id"].chars == 255


_limits = st.builds(
    StorageLimits,
    st.fixed_dictionaries(
        {"subject": st.builds(ColumnLimit, st.integers(0, 50), st.integers(0, 50))}
    ),
    st.integers(64 * 1024 + 100, 64 * 1024 + 400),
)


@given(st.text(max_size=80), st.text(max_size=400), st.binary(max_size=400), _limits)
def test_a_fitted_row_fits(subject: str, body: str, raw: bytes, limits: StorageLimits) -> None:
    fit = fit_row({"subject": subject, "body_text": body, "raw": raw}, limits)
    cut = fit.row["subject"]
    limit = limits.columns["subject"]
    assert subject.startswith(cut)
    assert len(cut) <= (limit.chars or 0)
    assert len(cut.encode()) <= (limit.octets or 0)
    assert fit.parked == (fit.row["raw"] != raw or fit.row["body_text"] != body)
    assert bool(fit.notes) == (fit.row != {"subject": subject, "body_text": body, "raw": raw})
