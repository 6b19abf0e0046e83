"""Every wait of a mailbox on its practice database ends within the engine's wait timeout,
on every backend, and the mailbox reports it as a diagnostic instead of hanging.

Another connection holds the fence row's lock, as a practice program or a second service
might; the mailbox's self-test (what it runs every check-in) must come back with a
"does not answer" diagnostic naming the database's lock or statement timeout, long
before it would without the timeout. No timing assertion: the self-test runs in a
thread and the test only asks that it has ended, far below forever. SQL Server cannot
run here: its session statement is parsed as T-SQL instead.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime

import pytest
import sqlglot
from sqlalchemy import Engine, text

from actors import practice_db
from actors.checkin_writer import CheckInWriter
from actors.database_selftest import DatabaseSelfTest
from actors.engines import default_engine
from actors.mail.steps import CheckInStep
from actors.practice_db import make_engine, session_wait_statements
from actors.practice_schema import init_practice_database
from actors.selftest import SelfTestResult
from actors.server_budget import ServerBudgets
from events.clock import FakeClock
from supervisor.discovery import database_url
from tests.servers import (
    MARIADB_ADMIN_URL,
    MARIADB_ODBC_SERVER_URL,
    fresh_mariadb_database,
    fresh_postgres_database,
    named_databases,
)

WAIT = 1.0
"""The engine's wait timeout in these tests."""
GIVE_UP = 30.0
"""How long the test waits for the self-test to end: far beyond WAIT, far below forever."""


ODBC_NAME = f"pes_timeouts_{uuid.uuid4().hex[:12]}"


@contextmanager
def odbc_database() -> Iterator[str]:
    """A fresh MariaDB database's URL through pyodbc and the MariaDB ODBC driver."""
    with named_databases(MARIADB_ADMIN_URL, [ODBC_NAME]):
        yield database_url(MARIADB_ODBC_SERVER_URL, ODBC_NAME)


@pytest.fixture(params=["postgresql", "mariadb-pymysql", "mariadb-pyodbc"])
def practice_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "postgresql":
        with fresh_postgres_database() as url:
            init_practice_database(url, practice_name="Smile")
            yield url
    elif request.param == "mariadb-pymysql":
        with fresh_mariadb_database() as url:
            init_practice_database(url, practice_name="Smile")
            yield url
    else:
        with odbc_database() as url:
            init_practice_database(url, practice_name="Smile")
            yield url


def in_thread(run: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(run())
        except BaseException as exc:  # the outcome is what the test looks at
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


FENCE_ROW_LOCK = "SELECT incarnation FROM email_service_mailbox FOR UPDATE"


def check_in_lock(url: str) -> str:
    """A lock the plain check-in waits for: on MariaDB its INSERT ... SELECT reads the fence
    row with a shared lock; PostgreSQL reads it without waiting (MVCC), so there the
    check-in table itself is locked, as a practice program's maintenance might."""
    if url.startswith("postgresql"):
        return "LOCK TABLE email_service_checkins IN EXCLUSIVE MODE"
    return FENCE_ROW_LOCK


def lock_fence_row(
    holder: Engine, statement: str = FENCE_ROW_LOCK
) -> AbstractContextManager[object]:
    """Hold a lock (the fence row's write lock) until the block ends."""
    conn = holder.connect()
    trans = conn.begin()
    conn.execute(text(statement))

    class Held:
        def __enter__(self) -> object:
            return conn

        def __exit__(self, *_exc: object) -> None:
            trans.rollback()
            conn.close()

    return Held()


def test_a_held_lock_is_a_diagnostic_within_the_wait_timeout(practice_url: str) -> None:
    engine = default_engine(practice_url, timeout=WAIT)
    holder = make_engine(practice_url)
    clock = FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    selftest = DatabaseSelfTest("Smile", practice_url, 1, "SRV1", clock, lambda: engine)
    try:
        assert selftest.run().diagnostics == ()  # claims the fence; nothing held yet
        with lock_fence_row(holder):
            thread, outcome = in_thread(selftest.run)
            thread.join(GIVE_UP)
            assert not thread.is_alive(), "the self-test still waits on the lock"
        assert len(outcome) == 1
        result = outcome[0]
        assert isinstance(result, SelfTestResult), result
        [diagnostic] = result.diagnostics
        assert diagnostic.component == "database"
        assert "does not answer" in diagnostic.message
        lowered = diagnostic.message.lower()
        assert "timeout" in lowered or "max_statement_time" in lowered, diagnostic.message
    finally:
        selftest.close()
        engine.dispose()
        holder.dispose()


@pytest.mark.parametrize(
    ("backend", "mariadb", "expected"),
    [
        ("mariadb", True, ["SET SESSION max_statement_time = 1.500, innodb_lock_wait_timeout = 2"]),
        ("mysql", True, ["SET SESSION max_statement_time = 1.500, innodb_lock_wait_timeout = 2"]),
        ("mysql", False, ["SET SESSION max_execution_time = 1500, innodb_lock_wait_timeout = 2"]),
        ("mssql", False, ["SET LOCK_TIMEOUT 1500"]),
        ("postgresql", False, []),
        ("sqlite", False, []),
    ],
)
def test_each_backend_gets_its_session_wait_statements(
    backend: str, mariadb: bool, expected: list[str]
) -> None:
    assert session_wait_statements(backend, 1.5, mariadb=mariadb) == expected


def test_the_sql_server_lock_timeout_parses_as_t_sql() -> None:
    [statement] = session_wait_statements("mssql", 10.0, mariadb=False)
    parsed = sqlglot.parse_one(statement, read="tsql")
    assert parsed.sql(dialect="tsql").upper().replace(" ", "") == "SETLOCK_TIMEOUT10000"


def test_a_pyodbc_connection_gets_the_query_timeout_and_the_session_limits() -> None:
    # Real pyodbc on the MariaDB ODBC driver: the same hook SQL Server's connections run.
    with odbc_database() as url:
        engine = default_engine(url, timeout=3.0)
        try:
            with engine.connect() as conn:
                assert conn.connection.dbapi_connection.timeout == 3  # type: ignore[union-attr]
                row = conn.execute(
                    text("SELECT @@max_statement_time, @@innodb_lock_wait_timeout")
                ).one()
            assert (float(row[0]), int(row[1])) == (3.0, 3)
        finally:
            engine.dispose()


def test_budgeted_mariadb_connections_keep_their_limits_when_moved_between_databases() -> None:
    # The service's engines share the server's budget; a connection moved to another
    # database (COM_INIT_DB) is the same session, limits and all.
    budgets = ServerBudgets(1, wait_seconds=5.0)
    names = [f"pes_timeouts_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    with named_databases(MARIADB_ADMIN_URL, names) as urls:
        engines = [
            default_engine(urls[name], budgets.for_url(urls[name]), timeout=2.0) for name in names
        ]
        try:
            seen = []
            for engine in engines:  # one slot: the second database gets the first's connection
                with engine.connect() as conn:
                    seen.append(
                        conn.execute(
                            text(
                                "SELECT CONNECTION_ID(), @@max_statement_time,"
                                " @@innodb_lock_wait_timeout"
                            )
                        ).one()
                    )
            assert seen[0][0] == seen[1][0], "the connection was not moved"
            assert [(float(a), int(b)) for _, a, b in seen] == [(2.0, 2), (2.0, 2)]
        finally:
            for engine in engines:
                engine.dispose()
            budgets.close()


def test_a_server_that_refuses_the_limits_is_still_served(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        practice_db,
        "session_wait_statements",
        lambda *_a, **_k: ["SET SESSION no_such_limit = 1"],
    )
    with fresh_mariadb_database() as url:
        engine = default_engine(url, timeout=2.0)
        try:
            with (
                caplog.at_level(logging.WARNING, logger="actors.practice_db"),
                engine.connect() as conn,
            ):
                assert conn.execute(text("SELECT 1")).scalar_one() == 1
            assert "cannot bound waits" in caplog.text
        finally:
            engine.dispose()


def test_a_held_lock_fails_the_check_in_with_a_diagnostic_within_the_wait_timeout(
    practice_url: str,
) -> None:
    """The serving process's own path: the self-test only claims, and the fenced
    check-in written after it is the database's read and write."""
    engine = default_engine(practice_url, timeout=WAIT)
    holder = make_engine(practice_url)
    clock = FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    selftest = DatabaseSelfTest(
        "Smile", practice_url, 1, "SRV1", clock, lambda: engine, write=False
    )
    writer = CheckInWriter(
        lambda: engine,
        server_name="SRV1",
        service_version="1.2.3",
        interval_seconds=15.0,
        clock=clock,
        url=practice_url,
    )
    step = CheckInStep(writer, 1)
    try:
        passed = selftest.run()
        assert step.report(passed) == ()  # claimed and checked in; nothing held yet
        with lock_fence_row(holder, check_in_lock(practice_url)):
            thread, outcome = in_thread(lambda: step.report(selftest.run()))
            thread.join(GIVE_UP)
            assert not thread.is_alive(), "the check-in still waits on the lock"
        [diagnostics] = outcome
        assert isinstance(diagnostics, tuple), diagnostics
        [diagnostic] = diagnostics
        assert diagnostic.component == "database"
        assert "does not answer" in diagnostic.message
        lowered = diagnostic.message.lower()
        assert "timeout" in lowered or "max_statement_time" in lowered, diagnostic.message
    finally:
        selftest.close()
        engine.dispose()
        holder.dispose()
