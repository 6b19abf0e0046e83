"""The registry every SQL statement the service runs is made through.

Each statement has a builder: a function that returns the SQLAlchemy statement (or
``text``), registered here under a name with sample arguments and sample execution
parameters (``@statement``), or a module-level statement registered as it is made
(``constant``). The builders stay where they are used; this module only knows them by
name. The dialect contract (``tests/test_statement_contract.py``) renders every
registered statement as each supported driver receives it (SQLite, PostgreSQL through
psycopg, MariaDB through PyMySQL and through pyodbc, SQL Server through pyodbc), runs it
on the servers that run in the tests, parses the SQL Server text as T-SQL, and fails on
any statement built outside the registry (a scan of the source).

``driver_form`` hands a registered statement to ``Connection.exec_driver_sql`` compiled
once per kind of database for the whole process.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Dialect
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

ALL_BACKENDS = frozenset({"sqlite", "postgresql", "mysql", "mssql"})
"""The kinds of database (SQLAlchemy dialect names) the service supports; MariaDB is
``mysql`` to SQLAlchemy."""

PRACTICE = "practice"
"""A statement on a practice database's tables (made by ``db init``)."""
EVENTS = "events"
"""A statement on the event store's tables."""
SERVER = "server"
"""A statement that needs no table (a lock, a clock, the server's catalogue)."""
_TARGETS = frozenset({PRACTICE, EVENTS, SERVER})

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]
"""Execution parameters: one set, or a list for an ``executemany``."""


@dataclass(frozen=True)
class Registered:
    """One registered statement: how to build it, and samples to check it with."""

    name: str
    build: Callable[..., Any]
    args: tuple[Any, ...]
    """Sample arguments to ``build``."""
    params: Params
    """Sample execution parameters (the values for ``bindparam``s the statement leaves open)."""
    target: str
    backends: frozenset[str]
    """The kinds of database the service runs it on (dialect names)."""
    transaction: bool
    """False for a statement that starts a transaction itself (``BEGIN IMMEDIATE``)."""

    def sample(self) -> ClauseElement:
        """The statement, built from the sample arguments."""
        made = self.build(*self.args)
        assert isinstance(made, ClauseElement), f"{self.name}: a builder returns a statement"
        return made


REGISTRY: dict[str, Registered] = {}
"""Every registered statement by name (filled as the modules that build them are imported)."""

_F = TypeVar("_F", bound=Callable[..., Any])
_S = TypeVar("_S", bound=Executable)


def _register(entry: Registered) -> None:
    if entry.target not in _TARGETS:
        raise ValueError(f"statement {entry.name!r}: unknown target {entry.target!r}")
    if not entry.backends <= ALL_BACKENDS:
        raise ValueError(f"statement {entry.name!r}: unknown backends {set(entry.backends)}")
    known = REGISTRY.get(entry.name)
    # A reloaded module registers the same builder again; a second builder under one
    # name would leave one of the two unchecked.
    if known is not None and _origin(known.build) != _origin(entry.build):
        raise ValueError(f"statement {entry.name!r} is registered twice")
    REGISTRY[entry.name] = entry


def _origin(build: Callable[..., Any]) -> tuple[str, str]:
    return getattr(build, "__module__", ""), getattr(build, "__qualname__", "")


def statement(
    name: str,
    *args: Any,
    params: Params | None = None,
    target: str = PRACTICE,
    backends: frozenset[str] = ALL_BACKENDS,
    transaction: bool = True,
) -> Callable[[_F], _F]:
    """Register the decorated builder as ``name``; ``args`` are sample arguments for it and
    ``params`` sample values for the bound parameters it leaves open."""

    def register(build: _F) -> _F:
        _register(Registered(name, build, args, params or {}, target, backends, transaction))
        return build

    return register


def constant(
    name: str,
    made: _S,
    *,
    params: Params | None = None,
    target: str = PRACTICE,
    backends: frozenset[str] = ALL_BACKENDS,
    transaction: bool = True,
) -> _S:
    """Register a statement made once (a module constant) as ``name``; return it."""

    def build() -> _S:
        return made

    build.__qualname__ = f"constant:{name}"
    # Where it was made: the same name from a second module is a second statement.
    build.__module__ = sys._getframe(1).f_globals.get("__name__", "")
    _register(Registered(name, build, (), params or {}, target, backends, transaction))
    return made


def render(made: ClauseElement, dialect: Dialect, params: Mapping[str, Any]) -> tuple[str, Any]:
    """``made`` as the driver receives it: its SQL with every value SQLAlchemy puts into the
    text at execution rendered (SQL Server's ``TOP n``, expanding ``IN`` lists), and
    ``params`` in the driver's style (a tuple for positional drivers)."""
    # The parameters' names, as ``Connection.execute`` passes them: an INSERT without
    # ``values()`` takes its columns from them.
    compiled = made.compile(dialect=dialect, column_keys=list(params))
    assert isinstance(compiled, SQLCompiler)
    return _expanded(compiled, params)


def _expanded(compiled: SQLCompiler, params: Mapping[str, Any]) -> tuple[str, Any]:
    expanded = compiled.construct_expanded_state(dict(params))
    if compiled.positional:
        return expanded.statement, tuple(expanded.positional_parameters)
    return expanded.statement, dict(expanded.parameters)


_COMPILED: dict[tuple[type[Dialect], str, str, Hashable], SQLCompiler] = {}
"""Statements compiled once per kind of database for the whole process (``driver_form``)."""
_COMPILED_LOCK = threading.Lock()


def driver_form(
    name: str, dialect: Dialect, params: Mapping[str, Any], *args: Hashable
) -> tuple[str, Any]:
    """Return the registered statement ``name`` (built from ``args``) as the driver's SQL
    and ``params`` in the driver's style, for ``Connection.exec_driver_sql``.

    The statement is compiled once per kind of database and ``args`` for the whole
    process. SQLAlchemy otherwise keeps compiled statements per engine, and the service
    holds an engine per practice database: a statement every database runs all day (the
    check-in, the command poll) would be kept in a thousand copies. Only for statements
    whose values need no type processing (plain ints, strings, booleans) and whose
    results are read by position or name as the driver gives them.
    """
    cache_key = (type(dialect), dialect.driver, name, args)
    compiled = _COMPILED.get(cache_key)
    if compiled is None:
        with _COMPILED_LOCK:
            made = REGISTRY[name].build(*args).compile(dialect=dialect)
            assert isinstance(made, SQLCompiler)
            compiled = _COMPILED.setdefault(cache_key, made)
    return _expanded(compiled, params)
