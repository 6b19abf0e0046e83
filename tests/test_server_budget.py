"""The connection budget's rules (``actors.server_budget``): with a fake clock and fake
connections for the slots and the backoff, and with real servers for what a refusal
looks like and what limit a server reports."""

from __future__ import annotations

import itertools
import math
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlglot
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from actors.server_budget import (
    BACKOFF_MAX_SECONDS,
    BACKOFF_MIN_SECONDS,
    SERVER_SHARE,
    BudgetWaitError,
    ServerBudget,
    ServerFullError,
    budget_for,
    is_refusal,
    read_server_limit,
    refusal_message,
    server_key,
    server_limit_sql,
)
from tests.servers import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeEntry:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Refused(Exception):
    """Stands for a driver's "too many connections" (PyMySQL's shape: errno, text)."""

    def __init__(self) -> None:
        super().__init__(1040, "Too many connections")


def budget(limit: int = 2) -> tuple[ServerBudget, FakeClock]:
    clock = FakeClock()
    return ServerBudget("postgresql://db:5432", limit, clock=clock, wait_seconds=0.0), clock


def open_one(b: ServerBudget, owner: object, name: str) -> FakeEntry:
    b.reserve()
    b.connected()
    return FakeEntry(name)


# --- the budget's size -----------------------------------------------------------------


@given(st.integers(1, 10_000), st.none() | st.integers(-1, 100_000))
def test_the_budget_never_exceeds_the_setting_nor_the_servers_share(
    configured: int, server_limit: int | None
) -> None:
    got = budget_for(configured, server_limit)
    assert 1 <= got <= configured
    if server_limit is not None and server_limit * SERVER_SHARE >= 1:
        assert got <= math.floor(server_limit * SERVER_SHARE)


def test_a_server_of_100_connections_gets_the_default_budget_of_10() -> None:
    assert budget_for(10, 97) == 10  # PostgreSQL's default: 100 - 3 reserved


def test_a_small_server_gets_a_quarter_of_its_connections() -> None:
    assert budget_for(10, 20) == 5


def test_sqlite_has_no_server_and_so_no_budget() -> None:
    assert server_key("sqlite:////var/practices/a.sqlite3") is None


def test_databases_on_one_server_share_one_key_without_login_or_password() -> None:
    a = server_key("postgresql+psycopg://alice:secret@db.example:5432/practice_a")
    b = server_key("postgresql+psycopg://bob@db.example:5432/practice_b")
    assert a == b == "postgresql://db.example:5432"


# --- slots -------------------------------------------------------------------------------


def test_a_connection_given_back_is_kept_for_its_database() -> None:
    b, _clock = budget()
    owner = object()
    entry = open_one(b, owner, "a")
    b.give_back(owner, entry, keep=True)
    assert b.take_idle(owner) is entry
    assert b.view().held == 1


def test_when_every_slot_is_taken_the_least_recently_used_idle_one_is_closed() -> None:
    b, _clock = budget(limit=2)
    first, second, third = object(), object(), object()
    entry_1 = open_one(b, first, "1")
    entry_2 = open_one(b, second, "2")
    b.give_back(first, entry_1, keep=True)
    b.give_back(second, entry_2, keep=True)
    open_one(b, third, "3")
    assert entry_1.closed
    assert not entry_2.closed
    assert b.view().held == 2


def test_when_every_slot_is_in_use_a_new_connection_waits_then_fails() -> None:
    b, _clock = budget(limit=1)
    open_one(b, object(), "busy")
    with pytest.raises(BudgetWaitError):
        b.reserve()
    assert b.view().held == 1


def test_a_connection_given_back_without_keeping_frees_its_slot() -> None:
    b, _clock = budget(limit=1)
    owner = object()
    entry = open_one(b, owner, "a")
    b.give_back(owner, entry, keep=False)
    assert entry.closed
    assert b.view().held == 0


# --- refusals ----------------------------------------------------------------------------


def refuse(b: ServerBudget) -> None:
    b.reserve()
    b.failed(Refused())


def test_a_refusal_backs_the_whole_server_off_with_one_line_to_show() -> None:
    b, _clock = budget(limit=3)
    owner = object()
    entry = open_one(b, owner, "a")
    b.give_back(owner, entry, keep=True)
    refuse(b)
    with pytest.raises(ServerFullError) as raised:
        b.reserve()
    assert str(raised.value) == refusal_message(1)
    assert str(raised.value) == (
        "the database server has no free connections; the email service is using 1 of them"
    )


def test_what_it_holds_keeps_working_while_the_server_is_backed_off() -> None:
    b, _clock = budget(limit=3)
    owner = object()
    entry = open_one(b, owner, "a")
    b.give_back(owner, entry, keep=True)
    refuse(b)
    assert b.take_idle(owner) is entry
    assert not entry.closed


def test_after_the_backoff_one_connection_tries_the_server_without_closing_a_held_one() -> None:
    b, clock = budget(limit=1)
    owner = object()
    entry = open_one(b, owner, "a")
    b.give_back(owner, entry, keep=True)
    b.forget_owner(owner)  # the server dropped to 0 held...
    refuse(b)  # ...and still refuses
    clock.now += BACKOFF_MIN_SECONDS
    b.reserve()  # the one try
    with pytest.raises(ServerFullError):
        b.reserve()  # no second try alongside it
    b.connected()
    assert not b.view().short_of_slots  # back to its budget of 1


def test_a_held_idle_connection_is_not_closed_to_try_a_server_that_refused() -> None:
    b, clock = budget(limit=2)
    first = object()
    entry = open_one(b, first, "1")
    b.give_back(first, entry, keep=True)
    refuse(b)  # held 1, ceiling 1
    clock.now += BACKOFF_MIN_SECONDS
    b.reserve()
    assert not entry.closed
    b.connected()
    assert b.view().held == 2


def test_refusals_in_a_row_double_the_backoff_up_to_its_limit() -> None:
    b, clock = budget(limit=2)
    waits = []
    refuse(b)
    for _ in range(8):
        start = clock.now
        while True:
            try:
                b.reserve()
                break
            except ServerFullError:
                clock.now += 1.0
        waits.append(clock.now - start)
        b.failed(Refused())
    assert waits[0] == BACKOFF_MIN_SECONDS
    assert waits[1] == BACKOFF_MIN_SECONDS * 2
    assert waits[-1] == BACKOFF_MAX_SECONDS
    assert all(a <= b for a, b in itertools.pairwise(waits))


def test_a_refusal_counts_once_per_attempt_not_per_database() -> None:
    b, _clock = budget(limit=3)
    refuse(b)
    for _ in range(5):  # five databases want a connection during the backoff
        with pytest.raises(ServerFullError):
            b.reserve()
    assert b.view().refusals == 1


# --- real servers: what a refusal is, what limit a server reports -------------------------


@contextmanager
def login_with_limit(backend: str, limit: int) -> Iterator[str]:
    """A new login allowed ``limit`` connections; yield its URL; drop it afterwards."""
    tag = f"pes_budget_{uuid.uuid4().hex[:10]}"
    admin_url = POSTGRES_ADMIN_URL if backend == "postgresql" else MARIADB_ADMIN_URL
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            if backend == "postgresql":
                conn.execute(text(f'CREATE ROLE "{tag}" LOGIN CONNECTION LIMIT {limit}'))
            else:
                conn.execute(text(f"CREATE USER '{tag}'@'%' WITH MAX_USER_CONNECTIONS {limit}"))
        yield make_url(admin_url).set(username=tag).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            if backend == "postgresql":
                conn.execute(text(f'DROP ROLE IF EXISTS "{tag}"'))
            else:
                conn.execute(text(f"DROP USER IF EXISTS '{tag}'@'%'"))
        admin.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_login_over_its_limit_is_a_refusal(backend: str) -> None:
    with login_with_limit(backend, 1) as url:
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect(), pytest.raises(OperationalError) as raised:
                engine.connect()
        finally:
            engine.dispose()
    assert is_refusal(raised.value)
    assert is_refusal(raised.value.orig)  # the driver's own error, as the pool sees it


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_an_unknown_database_is_not_a_refusal(backend: str) -> None:
    admin_url = POSTGRES_ADMIN_URL if backend == "postgresql" else MARIADB_ADMIN_URL
    url = make_url(admin_url).set(database=f"pes_missing_{uuid.uuid4().hex[:8]}")
    engine = create_engine(url, poolclass=NullPool)
    try:
        with pytest.raises(OperationalError) as raised:
            engine.connect()
    finally:
        engine.dispose()
    assert not is_refusal(raised.value)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_the_servers_limit_is_the_logins_own_when_lower(backend: str) -> None:
    with login_with_limit(backend, 7) as url:
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                limit = read_server_limit(conn.connection.dbapi_connection, backend)
        finally:
            engine.dispose()
    assert limit == 7


def test_the_postgresql_limit_leaves_out_the_superusers_reserved_slots() -> None:
    engine = create_engine(POSTGRES_ADMIN_URL, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            total = int(conn.execute(text("SHOW max_connections")).scalar_one())
            reserved = int(conn.execute(text("SHOW superuser_reserved_connections")).scalar_one())
            limit = read_server_limit(conn.connection.dbapi_connection, "postgresql")
    finally:
        engine.dispose()
    assert limit == total - reserved


def test_the_mariadb_limit_is_max_connections() -> None:
    engine = create_engine(MARIADB_ADMIN_URL, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            total = int(conn.execute(text("SELECT @@max_connections")).scalar_one())
            limit = read_server_limit(conn.connection.dbapi_connection, "mysql")
    finally:
        engine.dispose()
    assert limit == total


def test_the_sql_server_limit_query_compiles_for_sql_server() -> None:
    # No SQL Server runs here: the statement is only compiled by SQLAlchemy's dialect.
    sql = server_limit_sql("mssql")
    assert sql is not None
    compiled = str(text(sql).compile(dialect=mssql.dialect()))
    parsed = sqlglot.parse_one(compiled, read="tsql")  # raises on text SQL Server rejects
    assert parsed.sql(dialect="tsql").upper() == "SELECT @@MAX_CONNECTIONS"


def test_a_closed_budget_wakes_and_refuses_whoever_waits_for_a_slot() -> None:
    clock = FakeClock()
    b = ServerBudget("postgresql://db:5432", 1, clock=clock, wait_seconds=3600.0)
    open_one(b, object(), "busy")
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            b.reserve()
        except BudgetWaitError as exc:
            raised.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    b.close()
    waiter.join(timeout=10)
    assert not waiter.is_alive()
    assert len(raised) == 1
