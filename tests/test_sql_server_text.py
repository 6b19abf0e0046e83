"""The statements run at the driver's level, as SQL Server would receive them.

No SQL Server runs here, so each statement ``driver_form`` hands to pyodbc for
``mssql+pyodbc`` is parsed as T-SQL by sqlglot and checked for what SQLAlchemy leaves
for execution time (``__[POSTCOMPILE_…]``) and for one parameter per ``?``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlglot
from sqlalchemy import create_engine, delete, select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ClauseElement

from actors.checkin_writer import _NEWEST_OK, _plain_insert
from actors.checkins_table import checkins
from actors.commands_table import _PENDING
from actors.practice_db import _READ_PRACTICE, driver_form
from actors.practice_schema import utcnow_plus


@pytest.fixture(scope="module")
def mssql() -> Dialect:
    """The dialect as an ``mssql+pyodbc`` engine has it (pyodbc's ``qmark`` style)."""
    return create_engine("mssql+pyodbc://user:pw@practice_dsn").dialect


DRIVER_LEVEL: list[tuple[str, ClauseElement, dict[str, Any]]] = [
    ("newest_checkin_ok", _NEWEST_OK, {"server_name": "PRACTICE-SRV"}),
    ("pending_commands", _PENDING, {"limit": 100}),
    ("read_practice", _READ_PRACTICE, {}),
    (
        "plain_checkin",
        _plain_insert(15.0),
        {
            "ok": True,
            "summary": "The email service is operating normally",
            "server_name": "PRACTICE-SRV",
            "service_version": "0.1.0",
            "holder": 3,
        },
    ),
]


@pytest.mark.parametrize(
    ("key", "statement", "params"), DRIVER_LEVEL, ids=[d[0] for d in DRIVER_LEVEL]
)
def test_driver_level_statement_is_complete_t_sql(
    mssql: Dialect, key: str, statement: ClauseElement, params: dict[str, Any]
) -> None:
    sql, values = driver_form(statement, ("sql-server-text", key), mssql, params)
    assert "POSTCOMPILE" not in sql
    sqlglot.parse_one(sql, read="tsql")  # raises ParseError on text SQL Server would refuse
    assert isinstance(values, tuple)
    assert sql.count("?") == len(values)


def test_newest_check_in_asks_for_the_top_row(mssql: Dialect) -> None:
    sql, values = driver_form(_NEWEST_OK, ("sql-server-text", "top"), mssql, {"server_name": "S"})
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
