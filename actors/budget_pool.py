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

from typing import Any

from sqlalchemy.pool import ConnectionPoolEntry, Pool

from actors.server_budget import (
    ServerBudget,
    ServerFullError,
    is_refusal,
    read_server_limit,
    refusal_message,
)


class BudgetPool(Pool):
    """A pool that holds at most one idle connection and takes every slot from a budget."""

    def __init__(
        self,
        creator: Any,
        connection_budget: ServerBudget | None = None,
        keep_idle: bool = True,
        **kw: Any,
    ) -> None:
        super().__init__(creator, **kw)
        if connection_budget is None:
            raise TypeError("BudgetPool needs connection_budget")
        self._budget = connection_budget
        self._keep_idle = keep_idle
        self._disposed = False

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
        self._budget.reserve()
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

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        keep = self._keep_idle and not self._disposed and record.dbapi_connection is not None
        self._budget.give_back(self, record, keep=keep)

    def recreate(self) -> BudgetPool:
        return self.__class__(
            self._creator,
            connection_budget=self._budget,
            keep_idle=self._keep_idle,
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
