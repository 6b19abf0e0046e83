"""A mailbox's waits on its practice database end within the engine's wait timeout.

Every wait of a mailbox must end below its hang limit (``supervisor.hang_rule``): the
service's engines are made with ``wait_timeout`` (``actors.engines.default_engine``).
Here another connection holds the fence row's lock, as a practice program or a second
service might, and the fenced write must fail in time instead of waiting on and on.
No timing assertion: the wait runs in a thread, and the test only asks that it has
ended (with the database's lock error) long before it would without the timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from actors.engines import default_engine
from actors.practice_db import check_incarnation, claim_incarnation, make_engine
from actors.practice_schema import init_practice_database
from tests.servers import fresh_postgres_database

WAIT = 1.0
"""The engine's wait timeout in these tests."""
GIVE_UP = 20.0
"""How long the test waits for the wait to end: far beyond WAIT, far below forever."""


def fenced_write_in_thread(engine: Engine) -> tuple[threading.Thread, list[BaseException]]:
    """Run a fenced write (``check_incarnation`` then an update) in a thread."""
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with engine.begin() as conn:
                check_incarnation(conn, 1)
                conn.execute(text("UPDATE email_service_mailbox SET server_name = 'w'"))
        except BaseException as exc:  # the outcome is what the test looks at
            errors.append(exc)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread, errors


@pytest.fixture
def postgres_practice() -> Iterator[str]:
    with fresh_postgres_database() as url:
        init_practice_database(url, practice_name="Smile")
        yield url


def test_a_lock_held_on_postgresql_ends_the_wait_within_the_wait_timeout(
    postgres_practice: str,
) -> None:
    engine = default_engine(postgres_practice, timeout=WAIT)
    holder = make_engine(postgres_practice)
    try:
        claim_incarnation(engine, 1, "SRV1", datetime.now(UTC))
        with holder.begin() as held:
            held.execute(text("SELECT incarnation FROM email_service_mailbox FOR UPDATE"))
            thread, errors = fenced_write_in_thread(engine)
            thread.join(GIVE_UP)
            assert not thread.is_alive(), "the fenced write still waits on the lock"
        assert len(errors) == 1
        assert isinstance(errors[0], OperationalError)
        assert "timeout" in str(errors[0]).lower()
    finally:
        engine.dispose()
        holder.dispose()


def test_a_lock_held_on_sqlite_ends_the_wait_within_the_wait_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'Smile.sqlite3'}"
    init_practice_database(url, practice_name="Smile")
    engine = default_engine(url, timeout=WAIT)
    holder = make_engine(url)
    try:
        claim_incarnation(engine, 1, "SRV1", datetime.now(UTC))
        with holder.begin() as held:  # BEGIN; a write takes SQLite's one write lock
            held.execute(text("UPDATE email_service_mailbox SET server_name = 'held'"))
            thread, errors = fenced_write_in_thread(engine)
            thread.join(GIVE_UP)
            assert not thread.is_alive(), "the fenced write still waits on the lock"
        assert len(errors) == 1
        assert "database is locked" in str(errors[0])
    finally:
        engine.dispose()
        holder.dispose()
