"""One SQLAlchemy engine per served practice database, shared by everything that uses it.

A database's mailbox (its self-test, later its outbox and inbox) and the command reader
all reach the same database; each engine holds its own pool, dialect and compiled-SQL
cache, and on SQLite each open connection holds about 150 KB of SQLite's own memory,
so one engine per database, not one per user, keeps a thousand databases small.

The supervisor owns the registry: it names a database's URL when it starts serving it
(``serve``) and disposes of its engine when the database is stopped for good
(``forget``); a restart of the mailbox keeps the engine. Engines are made lazily, on
the first ``get``, in the caller's thread. Every method is thread-safe.

With ``budgets`` (``actors.server_budget``), the engines of databases on one server share
that server's connection budget: at most ``databases.max_connections`` connections at
once, the idle ones moving to the databases that need them (SQLite files have no budget).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Engine

from actors import practice_db
from actors.server_budget import ServerBudget, ServerBudgets

DB_TIMEOUT_SECONDS = 10.0
"""How long connecting to a practice database, or any wait on it, may take at most; the
service makes it shorter still when its hang limit asks (``default_engine``'s ``timeout``)."""

QUERY_CACHE_SIZE = 50
"""Compiled statements kept per engine: the service uses a handful per database."""

POOL_SIZE = 1
"""Idle connections kept per database: the mailbox and the command reader take turns; when
they meet, the second connection is closed after use (on SQLite each one holds about
150 KB)."""

SQLITE_STATEMENT_CACHE = 4
"""Prepared statements kept per SQLite connection (the driver's default is 128): the
steady state runs two (the self-test's write, the command poll); more would keep the
start's one-off statements, and SQLite's memory for them, alive."""


def default_engine(
    url: str, budget: ServerBudget | None = None, timeout: float = DB_TIMEOUT_SECONDS
) -> Engine:
    """Return the engine the service uses for one practice database (within ``budget``):
    connecting and every wait on it (a lock, a statement, a pooled connection) bounded by
    ``timeout``."""
    return practice_db.make_engine(
        url,
        timeout=timeout,
        query_cache_size=QUERY_CACHE_SIZE,
        sqlite_statement_cache=SQLITE_STATEMENT_CACHE,
        pool_size=POOL_SIZE,
        wait_timeout=timeout,
        budget=budget,
    )


class UnknownDatabaseError(KeyError):
    """Raised when an engine is asked for a database the registry does not serve."""


class EngineRegistry:
    """The served databases' URLs and their engines."""

    def __init__(
        self,
        make: Callable[[str], Engine] | None = None,
        *,
        budgets: ServerBudgets | None = None,
        timeout: float = DB_TIMEOUT_SECONDS,
    ) -> None:
        if make is None:

            def make(url: str) -> Engine:
                budget = None if budgets is None else budgets.for_url(url)
                return default_engine(url, budget, timeout)

        self._make = make
        self.budgets = budgets
        self._urls: dict[str, str] = {}
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def serve(self, db: str, url: str) -> None:
        """Remember ``db``'s URL; a changed URL replaces (and disposes) its engine."""
        with self._lock:
            old = self._engines.pop(db, None) if self._urls.get(db) != url else None
            self._urls[db] = url
        if old is not None:
            old.dispose()

    def url(self, db: str) -> str:
        """Return ``db``'s URL; raise ``UnknownDatabaseError`` if it is not served."""
        with self._lock:
            try:
                return self._urls[db]
            except KeyError:
                raise UnknownDatabaseError(db) from None

    def get(self, db: str) -> Engine:
        """Return ``db``'s engine, made on first use (connecting lazily).

        Raises ``UnknownDatabaseError`` if ``db`` is not served, and
        ``sqlalchemy.exc.ArgumentError`` for a URL SQLAlchemy cannot use.
        """
        with self._lock:
            engine = self._engines.get(db)
            if engine is not None:
                return engine
            try:
                url = self._urls[db]
            except KeyError:
                raise UnknownDatabaseError(db) from None
            engine = self._engines[db] = self._make(url)
            return engine

    def served_engine(self, db: str, url: str) -> Engine | None:
        """Return ``db``'s engine if it is served at ``url`` (made on first use), else None.

        For the periodic rescan: a database already served is read through its own engine
        and pooled connection instead of a new engine and connection each time.
        """
        with self._lock:
            if self._urls.get(db) != url:
                return None
        try:
            return self.get(db)
        except UnknownDatabaseError:  # forgotten in between
            return None

    def forget(self, db: str) -> None:
        """Stop serving ``db``: drop its URL and dispose of its engine's connections.

        A hung thread of an abandoned incarnation that still holds the engine gets its
        own connection errors; the fence already refuses its writes.
        """
        with self._lock:
            self._urls.pop(db, None)
            engine = self._engines.pop(db, None)
        if engine is not None:
            engine.dispose()

    def close(self) -> None:
        """Dispose of every engine (at shutdown)."""
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
            self._urls.clear()
        for engine in engines:
            engine.dispose()
