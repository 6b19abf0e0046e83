"""A large message is stored byte for byte in pieces (SQLite's incremental blob I/O in a
table made by ``db init``, ``raw`` its last column; a PostgreSQL large object), and bound
whole as before in a SQLite table laid out by an older version (``raw`` in the middle);
issue 13, item 8, the memory figure is ``bench/mail.py``'s. Real Dovecot, real databases."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from actors.mail import raw_blob
from actors.practice_schema import email_messages
from config.settings import MailSettings
from events.types import Event, MessageReceived
from tests.dovecot import Dovecot, new_practice_engine
from tests.old_layout import lay_out_as_before
from tests.servers import fresh_database
from tests.test_inbox_limits import _big_message, _inbox

pytest_plugins = ["tests.conftest_imap"]

SIZE = 3 * raw_blob.STREAM_FROM + 12_345  # several pieces and a short last one


@pytest.fixture(params=["sqlite", "postgresql"])
def practice(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(request.param, tmp_path) as url:
        engine = new_practice_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def _stored(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(email_messages.c.raw, email_messages.c.raw_sha256)).one()


def _import(engine: Engine, dovecot: Dovecot, user: str, mail: MailSettings) -> list[Event]:
    events: list[Event] = []
    inbox = _inbox(engine, dovecot, user, mail, events)
    try:
        inbox.poll()
    finally:
        inbox.close()
    return events


def test_a_large_message_is_stored_whole(
    practice: Engine, dovecot: Dovecot, imap_user: str, mail_settings: MailSettings
) -> None:
    message = _big_message(SIZE)
    dovecot.append(imap_user, message)
    events = _import(practice, dovecot, imap_user, mail_settings)
    raw, digest = _stored(practice)
    assert [type(e) for e in events][:1] == [MessageReceived]
    assert bytes(raw) == message
    assert digest == hashlib.sha256(message).hexdigest()


def test_db_init_makes_raw_the_last_column_so_it_is_written_in_pieces(tmp_path: Path) -> None:
    engine = new_practice_engine(f"sqlite:///{tmp_path / 'practice.sqlite3'}")
    try:
        with engine.connect() as conn:
            last = raw_blob.raw_is_last(conn)
            rows, held = raw_blob.held_back(conn, [{"raw": b"x" * SIZE}, {"raw": b"small"}])
    finally:
        engine.dispose()
    assert last
    assert (rows, list(held)) == ([{"raw": None}, {"raw": b"small"}], [0])


def _largest_bound(engine: Engine, run: Any) -> int:
    """The largest value (bytes) bound to any statement ``engine`` runs during ``run()``."""
    largest = 0

    def record(_conn: Any, _cursor: Any, _sql: str, params: Any, *_rest: Any) -> None:
        nonlocal largest
        sets = params if isinstance(params, list) else [params]
        for values in sets:
            items = values.values() if isinstance(values, dict) else values or ()
            for bound in items:
                value = getattr(bound, "obj", bound)  # psycopg wraps bytes in Binary
                if isinstance(value, bytes | bytearray | memoryview):
                    largest = max(largest, len(value))

    event.listen(engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return largest


def test_a_large_message_is_never_bound_whole(
    practice: Engine, dovecot: Dovecot, imap_user: str, mail_settings: MailSettings
) -> None:
    message = _big_message(SIZE)
    dovecot.append(imap_user, message)
    largest = _largest_bound(practice, lambda: _import(practice, dovecot, imap_user, mail_settings))
    raw, _ = _stored(practice)
    assert bytes(raw) == message
    assert largest <= raw_blob.CHUNK


def test_a_table_with_raw_in_the_middle_binds_a_large_message_whole(
    tmp_path: Path, dovecot: Dovecot, imap_user: str, mail_settings: MailSettings
) -> None:
    engine = new_practice_engine(f"sqlite:///{tmp_path / 'practice.sqlite3'}")
    try:
        lay_out_as_before(engine)
        message = _big_message(SIZE)
        dovecot.append(imap_user, message)
        largest = _largest_bound(engine, lambda: _import(engine, dovecot, imap_user, mail_settings))
        raw, digest = _stored(engine)
    finally:
        engine.dispose()
    assert bytes(raw) == message
    assert digest == hashlib.sha256(message).hexdigest()
    assert largest == len(message)
