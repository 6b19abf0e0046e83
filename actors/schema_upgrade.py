"""Columns and indexes added to the practice tables since a database was made.

``email-service db init`` creates the tables a database lacks, never the columns a table
lacks; the service adds columns over time (the outbox's ``wire_at``, the per-recipient
record, ...). A practice database made by an older version would make every outbox claim
fail on a missing column, and the mailbox would crash until it gave up. So the columns
and indexes of ``METADATA`` missing from a table that exists are added: by ``db init``
run again, and by the service once per database per process before the mailbox's first
claim. Only additions: nothing is dropped, renamed or retyped, and only in a database
that has the ``practice`` table (the caller has checked).

The usual case costs one statement per table every practice database has: a ``SELECT``
of all its columns ``WHERE 1 = 0``; only when one fails are the tables inspected.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Column, Engine, Index, Table, false, inspect, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateColumn

from actors.practice_schema import CONTRACT_TABLES, METADATA
from actors.statements import constant

log = logging.getLogger(__name__)

_PROBED_TABLES = tuple(
    METADATA.tables[name] for name in CONTRACT_TABLES if name not in ("patients", "practice")
)
"""The tables every practice database has (``patients`` is optional, and may be a view)."""

_PROBES = tuple(
    constant(f"upgrade.probe.{t.name}", select(*t.columns).where(false())) for t in _PROBED_TABLES
)


class SchemaUpgradeError(Exception):
    """Raised when the database refuses to add a column the service needs (a database user
    without the right to change the tables): ``columns`` are what it still lacks, and
    ``__cause__`` is the database's own error."""

    def __init__(self, columns: list[str]) -> None:
        super().__init__(f"cannot add the columns {', '.join(columns)}")
        self.columns = columns


_done: set[str] = set()
_done_lock = threading.Lock()


def missing_columns(engine: Engine) -> list[tuple[Table, Column[object]]]:
    """Return the columns of ``METADATA`` missing from tables that exist in ``engine``'s
    database (read-only; a missing table is not reported: ``db init`` creates those)."""
    found: list[tuple[Table, Column[object]]] = []
    with engine.connect() as conn:
        inspector = inspect(conn)
        for table in METADATA.sorted_tables:
            if not inspector.has_table(table.name):
                continue
            have = {str(c["name"]).lower() for c in inspector.get_columns(table.name)}
            found.extend((table, c) for c in table.columns if c.name.lower() not in have)
    return found


def add_missing_columns(engine: Engine) -> list[str]:
    """Add every missing column (and the indexes on it); return ``table.column`` names.

    A column that is neither nullable nor has a server default cannot be added to a
    table with rows and is reported as an error (none of the service's is such). A
    second service adding the same column at once is harmless: the failure is checked
    against the table again.
    """
    added: list[str] = []
    for table, column in missing_columns(engine):
        name = f"{table.name}.{column.name}"
        if not column.nullable and column.server_default is None:
            raise SQLAlchemyError(f"cannot add the required column {name} to existing rows")
        sql = add_column_sql(table, column, engine.dialect)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(sql)
        except SQLAlchemyError as exc:
            still = missing_columns(engine)
            if (table, column) in still:
                raise SchemaUpgradeError([f"{t.name}.{c.name}" for t, c in still]) from exc
            continue  # another process added it meanwhile
        added.append(name)
        for index in _indexes_on(table, column):
            with engine.begin() as conn:
                index.create(conn, checkfirst=True)
    if added:
        log.warning("added the columns %s to %s", ", ".join(added), engine.url.database)
    return added


def add_column_sql(table: Table, column: Column[object], dialect: Dialect) -> str:
    """The DDL that adds ``column`` to ``table`` on ``dialect``. Pure.

    DDL, made from the table's metadata by SQLAlchemy's ``CreateColumn``; the dialect
    contract's registry holds statements with parameters, so this one is checked apart
    (every column, as T-SQL too: ``tests/test_sql_server_text.py``).
    """
    keyword = "ADD" if dialect.name == "mssql" else "ADD COLUMN"
    ddl = CreateColumn(column).compile(dialect=dialect)
    return f"ALTER TABLE {dialect.identifier_preparer.format_table(table)} {keyword} {ddl}"


def _indexes_on(table: Table, column: Column[object]) -> list[Index]:
    return [ix for ix in table.indexes if column.name in {c.name for c in ix.columns}]


def upgrade_once(engine: Engine, key: str) -> None:
    """Add what ``engine``'s database lacks, the first time ``key`` is seen in this process.

    Raises SQLAlchemy's errors when the database does not answer, and
    ``SchemaUpgradeError`` when it refuses the change; the next call tries again.
    """
    with _done_lock:
        if key in _done:
            return
    try:
        with engine.connect() as conn:
            for probe in _PROBES:
                conn.execute(probe).close()
    except SQLAlchemyError:
        add_missing_columns(engine)
    with _done_lock:
        _done.add(key)
