"""Which commits on a SQLite practice database wait for the disk (``synchronous``).

Every transaction's commit is durable (``synchronous=FULL``): the outbox's ``wire_at``,
the inbox's import and every setting rely on it. Only ``one_statement(durable=False)``,
used for the plain check-in, commits without the ``fsync`` (``NORMAL``, safe against a
crash or a kill in WAL mode), and the connection is durable again for the next
transaction. A read leaves the connection as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from actors import practice_db
from actors.checkin_writer import CheckInWriter
from actors.practice_schema import init_practice_database
from events.clock import FakeClock
from events.projections.health import DbHealth, HealthStatus

FULL, NORMAL = 2, 1


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'practice.sqlite3'}"
    init_practice_database(url, practice_name="Smile Dental")
    made = practice_db.make_engine(url, pool_size=1)
    try:
        yield made
    finally:
        made.dispose()


def mode_in_transaction(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


def mode_in_one_statement(engine: Engine, *, durable: bool) -> int:
    with practice_db.one_statement(engine, durable=durable) as conn:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


def mode_in_read(engine: Engine) -> int:
    with practice_db.one_read(engine) as conn:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


def test_a_transaction_commits_durably(engine: Engine) -> None:
    assert mode_in_transaction(engine) == FULL


def test_one_statement_commits_durably_by_default(engine: Engine) -> None:
    mode_in_one_statement(engine, durable=False)
    assert mode_in_one_statement(engine, durable=True) == FULL


def test_a_relaxed_statement_skips_the_fsync(engine: Engine) -> None:
    assert mode_in_one_statement(engine, durable=False) == NORMAL


def test_a_transaction_after_a_relaxed_statement_is_durable_again(engine: Engine) -> None:
    mode_in_one_statement(engine, durable=False)
    assert mode_in_transaction(engine) == FULL


def test_a_read_leaves_the_connection_as_it_is(engine: Engine) -> None:
    mode_in_one_statement(engine, durable=False)
    assert mode_in_read(engine) == NORMAL


def test_without_wal_a_relaxed_statement_stays_durable() -> None:
    # NORMAL outside WAL mode can corrupt the file on a power cut: never relaxed there.
    # An in-memory database refuses WAL (its journal mode stays "memory").
    made = practice_db.make_engine("sqlite://")
    try:
        with made.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "memory"
        assert mode_in_one_statement(made, durable=False) == FULL
    finally:
        made.dispose()


def test_the_plain_check_in_commits_without_the_fsync(engine: Engine) -> None:
    practice_db.claim_incarnation(engine, 3, "SRV1", datetime.now(UTC))
    writer = CheckInWriter(
        lambda: engine,
        server_name="SRV1",
        service_version="1.2.3",
        interval_seconds=15.0,
        clock=FakeClock(datetime.now(UTC)),
    )
    assert writer.write(DbHealth(HealthStatus.RUNNING), incarnation=3)
    assert mode_in_read(engine) == NORMAL
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM email_service_checkins")).scalar_one() == 1
