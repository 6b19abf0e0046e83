"""A SQLAlchemy pool whose connections fit a database server's connection budget.

One ``BudgetPool`` per engine (so per practice database, or per short visit of
discovery or the status page); every pool on one server shares that server's
``actors.server_budget.ServerBudget``. A connection is taken from the pool's own idle one if
it has it, else a slot is reserved in the budget (closing another database's least
recently used idle connection if every slot is taken) and a connection opened. Given
back, it is kept idle for this database (``keep_idle``) until another database needs the
slot, or closed at once (``keep_idle=False``: discovery's and the status page's visits).

A refusal for lack of slots (``server_budget.is_refusal``) backs the whole server off and
is raised as ``ServerFullError``, whose message says how many connections the service
holds; other connection errors are raised as the driver raised them.

Runs in the calling thread; thread-safe through the budget's lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry, Pool

from actors.server_budget import (
    ServerBudget,
    ServerFullError,
    is_refusal,
    read_server_limit,
    refusal_message,
)

log = logging.getLogger(__name__)

MoveConnection = Callable[[Any], None]
"""Points a driver connection to another database on the server at this pool's database
(MariaDB: ``COM_INIT_DB``, PyMySQL's ``select_db``); raises if it cannot."""


class BudgetPool(Pool):
    """A pool that holds at most one idle connection and takes every slot from a budget."""

    def __init__(
        self,
        creator: Any,
        connection_budget: ServerBudget | None = None,
        keep_idle: bool = True,
        move_connection: MoveConnection | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(creator, **kw)
        if connection_budget is None:
            raise TypeError("BudgetPool needs connection_budget")
        self._budget = connection_budget
        self._keep_idle = keep_idle
        self._move = move_connection
        self._disposed = False
        # A connection moved here from another database, for the creator to hand over
        # instead of opening one (so the engine's connect events still run on it).
        self._handoff = threading.local()
        opener = self._invoke_creator

        def invoke(rec: ConnectionPoolEntry) -> DBAPIConnection:
            moved = getattr(self._handoff, "connection", None)
            if moved is not None:
                self._handoff.connection = None
                return cast(DBAPIConnection, moved)
            return opener(rec)

        self._invoke_creator = invoke

    @property
    def budget(self) -> ServerBudget:
        """The server budget this pool takes its slots from."""
        return self._budget

    def status(self) -> str:
        return f"BudgetPool({self._budget.server})"

    def _do_get(self) -> ConnectionPoolEntry:
        idle = self._budget.take_idle(self)
        if idle is not None:
            assert isinstance(idle, ConnectionPoolEntry)
            return idle
        moved = self._budget.reserve(movable=self._move is not None)
        if moved is not None:
            assert isinstance(moved, ConnectionPoolEntry)
            record = self._adopt(moved)
            if record is not None:
                return record
            self._budget.reserve()  # the move failed and freed its slot: open one
        try:
            record = self._create_connection()
        except BaseException as exc:
            self._budget.failed(exc)
            if is_refusal(exc):
                raise ServerFullError(refusal_message(self._budget.view().held)) from exc
            raise
        self._budget.connected()
        if not self._budget.knows_server_limit:
            backend = getattr(self._dialect, "name", "")
            limit = read_server_limit(record.dbapi_connection, backend)
            self._budget.set_server_limit(limit)
        return record

    def _adopt(self, entry: ConnectionPoolEntry) -> ConnectionPoolEntry | None:
        """Take another database's idle connection, point it at this one, and return it as
        this pool's; None (its slot freed) if it could not be moved."""
        assert self._move is not None
        connection = entry.dbapi_connection
        cast(Any, entry).dbapi_connection = None  # the other pool's record lets it go, unclosed
        try:
            if connection is None:
                raise ValueError("the idle connection was already closed")
            self._move(connection)
        except Exception as exc:
            log.debug("moving a connection failed; opening one instead", exc_info=True)
            if connection is not None:
                try:
                    connection.close()
                except Exception:
                    log.debug("closing it failed too", exc_info=True)
            self._budget.failed(exc)
            return None
        self._handoff.connection = connection
        try:
            record = self._create_connection()
        except BaseException as exc:
            self._handoff.connection = None
            self._budget.failed(exc)
            raise
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        usable = record.dbapi_connection is not None
        keep = self._keep_idle and not self._disposed and usable
        self._budget.give_back(self, record, keep=keep, park=usable and self._move is not None)

    def recreate(self) -> BudgetPool:
        return self.__class__(
            self._creator,
            connection_budget=self._budget,
            keep_idle=self._keep_idle,
            move_connection=self._move,
            recycle=self._recycle,
            echo=self.echo,
            logging_name=self._orig_logging_name,
            reset_on_return=self._reset_on_return,
            pre_ping=self._pre_ping,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )

    def dispose(self) -> None:
        self._disposed = True
        self._budget.forget_owner(self)
