"""The statements run at the driver's level, as SQL Server would receive them.

No SQL Server runs here, so each statement ``driver_form`` hands to pyodbc for
``mssql+pyodbc`` is parsed as T-SQL by sqlglot and checked for what SQLAlchemy leaves
for execution time (``__[POSTCOMPILE_…]``) and for one parameter per ``?``. Every other
registered statement gets the same checks in ``tests/test_statement_contract.py``; this
file keeps the two defects issue 15 named (the check-in's ``TOP``, ``DATEADD``'s int)
and the DDL the registry does not hold.
"""

from __future__ import annotations

import re

import pytest
import sqlglot
from sqlalchemy import create_engine, delete, select
from sqlalchemy.engine import Dialect

from actors import checkin_writer, commands_table, practice_db
from actors.checkins_table import checkins
from actors.practice_db import session_wait_statements
from actors.practice_schema import METADATA, utcnow_plus
from actors.schema_upgrade import add_column_sql
from actors.statements import REGISTRY, driver_form
from events import sql_store

REGISTERING = (checkin_writer, commands_table, practice_db, sql_store)
"""The modules whose statements this file reads from the registry (imported to register)."""


@pytest.fixture(scope="module")
def mssql() -> Dialect:
    """The dialect as an ``mssql+pyodbc`` engine has it (pyodbc's ``qmark`` style)."""
    return create_engine("mssql+pyodbc://user:pw@practice_dsn").dialect


DRIVER_LEVEL = ["checkin.newest_ok", "commands.pending", "practice.read", "checkin.fenced_plain"]
"""The statements handed to the driver as text (``driver_form``), compiled once per process."""


@pytest.mark.parametrize("name", DRIVER_LEVEL)
def test_driver_level_statement_is_complete_t_sql(mssql: Dialect, name: str) -> None:
    entry = REGISTRY[name]
    params = entry.params
    assert isinstance(params, dict)
    sql, values = driver_form(name, mssql, params, *entry.args)
    assert "POSTCOMPILE" not in sql
    sqlglot.parse_one(sql, read="tsql")  # raises ParseError on text SQL Server would refuse
    assert isinstance(values, tuple)
    assert sql.count("?") == len(values)


def test_newest_check_in_asks_for_the_top_row(mssql: Dialect) -> None:
    params = {"server_id": "S"}  # server_name is the server_id (service_instance beside it)
    sql, values = driver_form("checkin.newest_ok", mssql, params)
    assert "TOP 1 " in sql
    assert values == ("S",)


def _dateadd_amounts(days: float, mssql: Dialect) -> list[int]:
    """The amounts of the DATEADDs ``utcnow_plus(-days)`` compiles to, outermost first."""
    sql = str(select(utcnow_plus(-days * 86_400)).compile(dialect=mssql))
    sqlglot.parse_one(sql, read="tsql")
    return [int(n) for n in re.findall(r"DATEADD\(\w+, (-?\d+),", sql)]


@pytest.mark.parametrize("days", [7, 24.9, 30, 365, 3650])
def test_time_offsets_stay_within_sql_servers_int(mssql: Dialect, days: float) -> None:
    # DATEADD takes an int: 30 days in milliseconds (2,592,000,000) is past 2**31 - 1.
    amounts = _dateadd_amounts(days, mssql)
    assert all(-(2**31) <= n < 2**31 for n in amounts)


@pytest.mark.parametrize("days", [0.5, 7, 30, 365])
def test_time_offset_parts_add_up_to_the_offset(mssql: Dialect, days: float) -> None:
    seconds, millis = _dateadd_amounts(days, mssql)
    assert seconds * 1000 + millis == round(-days * 86_400 * 1000)


def test_thirty_day_prune_parses_as_t_sql(mssql: Dialect) -> None:
    # The statement prune_checkins runs, at a history of 30 days.
    cutoff = utcnow_plus(-30 * 86_400)
    sql = str(delete(checkins).where(checkins.c.checked_in_at < cutoff).compile(dialect=mssql))
    sqlglot.parse_one(sql, read="tsql")


def test_every_added_column_parses_as_t_sql(mssql: Dialect) -> None:
    # The start-up upgrade's ALTER TABLE for every column it could add (DDL, outside
    # the statement registry): what SQL Server would receive for a database made by an
    # older version.
    for table in METADATA.sorted_tables:
        for column in table.columns:
            sql = add_column_sql(table, column, mssql)
            assert sql.startswith(f"ALTER TABLE {table.name} ADD ")
            sqlglot.parse_one(sql, read="tsql")


def test_session_wait_limit_parses_as_t_sql() -> None:
    # Run on every new SQL Server connection of a mailbox (the connect hook), outside
    # the statement registry.
    for statement in session_wait_statements("mssql", 12.5, mariadb=False):
        sqlglot.parse_one(statement, read="tsql")


def test_event_log_writer_takes_its_range_lock_on_sql_server(mssql: Dialect) -> None:
    # The event log's write lock on SQL Server: the max(seq) read holds an update range
    # lock to the end of the transaction, which a second writer's same read waits for.
    sql, values = driver_form("events.last_seq_locked", mssql, {})
    assert "FROM events WITH (UPDLOCK, HOLDLOCK)" in sql
    assert sql.count("?") == len(values)
    sqlglot.parse_one(sql, read="tsql")
