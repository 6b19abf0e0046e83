"""The connection budget of one database server: how many connections the service may hold
there, which are idle, and whether the server has refused one lately.

One ``ServerBudget`` per database server, shared by every engine on it (``ServerBudgets``
keys them by server, ``server_key``): the practice databases' pooled engines, discovery's
listing and look-ups, the status page's reads. Every physical connection the service opens
to the server takes a slot first; at most ``limit`` slots are taken at once. A connection
given back is kept idle (one per practice database) while nobody needs its slot; when a
connection to another database is wanted and every slot is taken, the least recently used
idle connection is closed and its slot passed on. With no more practice databases than the
budget, each keeps its connection all day (today's behaviour); beyond it the slots move
between databases.

When the server refuses a connection for lack of slots (``is_refusal``), the whole server
is backed off, not each database: the service's ceiling drops to the connections it holds
then, and no new connection is tried until the backoff ends (doubling from
``BACKOFF_MIN_SECONDS`` to ``BACKOFF_MAX_SECONDS`` while refusals go on). After it, one
connection at a time tries the server, without closing any held one first (closing one
to make room would lose it if the server still refuses); each that opens raises the
ceiling by one, until it is the budget again. What the service holds goes on being used;
a database that needs a new connection meanwhile gets ``ServerFullError`` at once, whose
message is the one line its diagnostics show. The refusal is logged once per episode.

SQLite files have no server and no connection limit: no budget applies (``server_key``
returns None).

Thread-safe: every method may be called from any thread; closing connections happens
outside the lock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from actors.statements import SERVER, constant

log = logging.getLogger(__name__)

SERVER_SHARE = 0.25
"""The largest share of the connections a server reports (``server_limit``) the service
takes, whatever ``databases.max_connections`` says: the practice software, workstations,
backups and administrators need the rest."""

BACKOFF_MIN_SECONDS = 2.0
"""First wait after the server refused a connection for lack of slots."""
BACKOFF_MAX_SECONDS = 60.0
"""Longest wait between tries while the server goes on refusing."""

WAIT_SECONDS = 10.0
"""How long a connection may wait for a slot while all are in use (not idle)."""

REFUSAL_SQLSTATES = frozenset({"53300"})
"""PostgreSQL: too_many_connections (the server's limit, or a role's or database's)."""
REFUSAL_MYSQL_ERRNOS = frozenset({1040, 1203, 1226})
"""MariaDB/MySQL: Too many connections; too many for this user (``max_user_connections``);
the account's own limit (``MAX_USER_CONNECTIONS``) reached."""
REFUSAL_MSSQL_ERRNOS = frozenset({17809})
"""SQL Server: the maximum number of user connections has been reached."""
_REFUSAL_TEXTS = ("too many connections", "too many clients", "max_user_connections")


def budget_for(configured: int, server_limit: int | None) -> int:
    """Return the budget: ``configured``, but never more than ``SERVER_SHARE`` of
    ``server_limit`` (the connections the server accepts from clients like us), and at
    least 1. Pure."""
    if server_limit is None or server_limit <= 0:
        return max(1, configured)
    return max(1, min(configured, math.floor(server_limit * SERVER_SHARE)))


def server_key(url: str | URL) -> str | None:
    """Return the key of the server that holds the database at ``url``: its kind, host and
    port (and ODBC data source or connection string), without user, password or database.
    None for SQLite, which has no server. Pure."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return None
    kind = "mysql" if backend == "mariadb" else backend
    query = parsed.query
    extra = ""
    for name in ("dsn", "odbc_connect"):
        if name in query:
            value = query[name]
            extra += f"?{name}={value if isinstance(value, str) else value[-1]}"
    return f"{kind}://{parsed.host or ''}:{parsed.port or ''}{extra}"


def _driver_error(exc: BaseException) -> BaseException:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return exc.orig
    return exc


def is_refusal(exc: BaseException) -> bool:
    """Return whether ``exc`` (a driver's error, or SQLAlchemy's wrapping of one) is the
    server refusing a connection because it has no free slot for us. Pure."""
    orig = _driver_error(exc)
    if getattr(orig, "sqlstate", None) in REFUSAL_SQLSTATES:  # psycopg
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in REFUSAL_MYSQL_ERRNOS | REFUSAL_MSSQL_ERRNOS:
        return True  # PyMySQL: (errno, message)
    text = " ".join(str(a) for a in args).lower()
    numbers = REFUSAL_MYSQL_ERRNOS | REFUSAL_MSSQL_ERRNOS
    # pyodbc: ('HY000', '[ma-3.1.x][10.11]Too many connections (1040) (SQLDriverConnect)')
    return any(t in text for t in _REFUSAL_TEXTS) or any(f"({n})" in text for n in numbers)


def refusal_message(held: int) -> str:
    """The one line a practice's diagnostics show while its server has no free slot."""
    return f"the database server has no free connections; the email service is using {held} of them"


class ServerFullError(SQLAlchemyError):
    """Raised when a connection is wanted while the server is backed off after refusing one
    for lack of slots. ``str()`` is ``refusal_message``: fit for a practice's diagnostics."""


class BudgetWaitError(PoolTimeoutError):
    """Raised when every connection of the budget stayed in use for ``WAIT_SECONDS``."""


class Entry(Protocol):
    """What the budget needs of a pooled connection (SQLAlchemy's ``ConnectionPoolEntry``)."""

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BudgetView:
    """One server's budget as ``/metrics`` and ``email-service databases`` show it."""

    server: str
    budget: int
    configured: int
    server_limit: int | None
    held: int
    in_use: int
    peak: int
    refusals: int
    short_of_slots: bool
    """The server refused a connection lately, and the service holds no more than it let it."""
    moves: int = 0
    """Connections moved from one database to another without reconnecting (MariaDB)."""


class ServerBudget:
    """The slots, idle connections and refusal backoff of one database server."""

    def __init__(
        self,
        server: str,
        configured: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        self.server = server
        self._configured = max(1, configured)
        self._clock = clock
        self._wait_seconds = wait_seconds
        self._cond = threading.Condition()
        self._server_limit: int | None = None
        self._open = 0  # connections open, or being opened, to this server
        self._in_use = 0
        self._peak = 0
        self._idle: OrderedDict[int, tuple[object, Entry]] = OrderedDict()  # id(entry): LRU first
        self._refusals = 0
        self._ceiling: int | None = None  # after a refusal: what the server let us hold
        self._refused_until = 0.0
        self._backoff = 0.0
        self._probing = False  # one connection is trying the server after a refusal
        self._closed = False  # the service is stopping: no more connections
        self._moves = 0

    @property
    def limit(self) -> int:
        """The budget now: the configured number, within the server's share."""
        return budget_for(self._configured, self._server_limit)

    @property
    def knows_server_limit(self) -> bool:
        """Whether the server's own limit has been read yet."""
        return self._server_limit is not None

    def set_server_limit(self, limit: int | None) -> None:
        """Record the connections the server accepts from us (read on its first connection)."""
        with self._cond:
            self._server_limit = limit
            self._cond.notify_all()

    def view(self) -> BudgetView:
        """A consistent copy of the figures."""
        with self._cond:
            return BudgetView(
                self.server,
                self.limit,
                self._configured,
                self._server_limit,
                self._open,
                self._in_use,
                self._peak,
                self._refusals,
                self._ceiling is not None,
                self._moves,
            )

    def _backed_off(self) -> bool:
        return self._ceiling is not None and self._clock() < self._refused_until

    # --- taking and giving back ------------------------------------------------------

    def take_idle(self, owner: object) -> Entry | None:
        """Return an idle connection of ``owner`` (a pool), now in use; None if it has none."""
        with self._cond:
            for key, (who, entry) in self._idle.items():
                if who is owner:
                    del self._idle[key]
                    self._in_use += 1
                    return entry
        return None

    def reserve(self, *, movable: bool = False) -> Entry | None:
        """Take a slot for a new connection, closing the least recently used idle one if
        every slot is taken; wait while all are in use. Return None.

        ``movable``: the caller can point another database's connection at its own (MariaDB's
        ``USE``); then, when every slot is taken or the server refused one lately, the least
        recently used idle connection is returned instead, in use by the caller and still
        open, for it to move: no new connection is needed, even while backed off.

        After a refusal: raises ``ServerFullError`` while the server is backed off or
        another connection is trying it; else this one tries it, as one more connection.
        Raises ``BudgetWaitError`` when all slots stayed in use for ``wait_seconds``.
        """
        evicted: Entry | None = None
        deadline = self._clock() + self._wait_seconds
        with self._cond:
            while True:
                if self._closed:
                    raise BudgetWaitError("the email service is stopping")
                full = self._ceiling is not None or self._open >= self.limit
                parked = next((k for k, (who, _e) in self._idle.items() if who is _NOBODY), None)
                if movable and parked is not None:
                    moved = self._idle.pop(parked)[1]
                elif movable and full and self._idle:
                    _key, (_who, moved) = self._idle.popitem(last=False)
                else:
                    moved = None
                if moved is not None:
                    self._in_use += 1
                    self._moves += 1
                    return moved
                if self._ceiling is not None:
                    if self._backed_off() or self._probing or self._open >= self.limit:
                        raise ServerFullError(refusal_message(self._open))
                    self._probing = True
                    break
                if self._open < self.limit:
                    break
                if self._idle:
                    _key, (_who, evicted) = self._idle.popitem(last=False)
                    self._open -= 1
                    break
                left = deadline - self._clock()
                if left <= 0:
                    raise BudgetWaitError(
                        f"all {self._open} connections of the email service's budget on the "
                        f"database server stayed in use for {self._wait_seconds:g} s"
                    )
                self._cond.wait(timeout=min(left, 1.0))
            self._open += 1
            self._in_use += 1
            self._peak = max(self._peak, self._open)
        if evicted is not None:
            _close_quietly(evicted)
        return None

    def connected(self) -> None:
        """A reserved slot's connection opened: after a refusal, the ceiling rises by one."""
        with self._cond:
            self._probing = False
            if self._ceiling is None:
                return
            self._ceiling = max(self._ceiling, self._open)
            self._backoff = 0.0
            if self._ceiling >= self.limit:
                self._ceiling = None
                log.warning("the database server %s has free connections again", self.server)
            self._cond.notify_all()

    def failed(self, exc: BaseException) -> None:
        """A reserved slot's connection did not open: free the slot; a refusal for lack of
        slots backs the whole server off."""
        with self._cond:
            self._open -= 1
            self._in_use -= 1
            self._probing = False
            if is_refusal(exc):
                self._refusals += 1
                first = self._ceiling is None
                self._ceiling = self._open
                self._backoff = (
                    BACKOFF_MIN_SECONDS
                    if first
                    else min(BACKOFF_MAX_SECONDS, max(BACKOFF_MIN_SECONDS, self._backoff * 2))
                )
                self._refused_until = self._clock() + self._backoff
                if first:
                    log.warning(
                        "the database server %s refused a connection: %s; trying again in %g s",
                        self.server,
                        refusal_message(self._open),
                        self._backoff,
                    )
            self._cond.notify_all()

    def give_back(self, owner: object, entry: Entry, *, keep: bool, park: bool = False) -> None:
        """An in-use connection is given back: kept idle for ``owner`` if ``keep`` (and
        ``owner`` has no idle one yet); else, with ``park``, kept idle for nobody, for the
        next database that can move it to itself (a discovery visit's, on MariaDB); else
        closed and its slot freed."""
        close = True
        with self._cond:
            self._in_use -= 1
            if keep and not any(who is owner for who, _e in self._idle.values()):
                self._idle[id(entry)] = (owner, entry)
                close = False
            elif park:
                self._idle[id(entry)] = (_NOBODY, entry)
                close = False
            else:
                self._open -= 1
            self._cond.notify_all()
        if close:
            _close_quietly(entry)

    def close(self) -> None:
        """The service is stopping: refuse new connections, wake whoever waits for one."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def forget_owner(self, owner: object) -> None:
        """Close ``owner``'s idle connections (its engine is disposed of)."""
        gone: list[Entry] = []
        with self._cond:
            for key in [k for k, (who, _e) in self._idle.items() if who is owner]:
                gone.append(self._idle.pop(key)[1])
            self._open -= len(gone)
            self._cond.notify_all()
        for entry in gone:
            _close_quietly(entry)

    def lost(self) -> None:
        """An in-use connection was closed by its user (it broke): free its slot."""
        with self._cond:
            self._in_use -= 1
            self._open -= 1
            self._cond.notify_all()


def _close_quietly(entry: Entry) -> None:
    try:
        entry.close()
    except Exception:  # closing a connection the server already dropped
        log.debug("closing an idle connection failed", exc_info=True)


_NOBODY = object()  # the owner of a parked idle connection, which any database may move


class ServerBudgets:
    """The budget of every database server the process uses, made on first use."""

    def __init__(
        self,
        configured: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        self.configured = configured
        self._clock = clock
        self._wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self._budgets: dict[str, ServerBudget] = {}

    def for_url(self, url: str | URL) -> ServerBudget | None:
        """The budget of the server holding ``url``'s database; None for SQLite."""
        key = server_key(url)
        if key is None:
            return None
        with self._lock:
            budget = self._budgets.get(key)
            if budget is None:
                budget = self._budgets[key] = ServerBudget(
                    key, self.configured, clock=self._clock, wait_seconds=self._wait_seconds
                )
            return budget

    def close(self) -> None:
        """The service is stopping: every server's budget refuses new connections at once,
        so no thread waits for a slot while the tree stops."""
        with self._lock:
            budgets = list(self._budgets.values())
        for budget in budgets:
            budget.close()

    def views(self) -> list[BudgetView]:
        """Every server's figures, by server."""
        with self._lock:
            budgets = sorted(self._budgets.items())
        return [b.view() for _k, b in budgets]


def server_limit_sql(backend: str) -> str | None:
    """The query that reads how many connections the server accepts from this login, as
    one integer (None: none known for this kind of server). Pure.

    PostgreSQL: ``max_connections`` minus the slots reserved for superusers (and, from
    PostgreSQL 16, ``reserved_connections``), or the role's ``CONNECTION LIMIT`` if lower.
    MariaDB/MySQL: ``@@max_connections``, or ``@@max_user_connections`` if set and lower
    (the session value carries the account's ``MAX_USER_CONNECTIONS``). SQL Server:
    ``@@MAX_CONNECTIONS``.
    """
    kind = "mysql" if backend == "mariadb" else backend
    query = _SERVER_LIMITS.get(kind)
    return None if query is None else query.text


_SERVER_LIMITS = {
    "postgresql": constant(
        "budget.server_limit.postgresql",
        text(
            "SELECT LEAST("
            "current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - COALESCE(NULLIF(current_setting('reserved_connections', true), '')::int, 0),"
            " (SELECT CASE WHEN rolconnlimit >= 0 THEN rolconnlimit END"
            " FROM pg_catalog.pg_roles WHERE rolname = current_user))"
        ),
        target=SERVER,
        backends=frozenset({"postgresql"}),
    ),
    "mysql": constant(
        "budget.server_limit.mysql",
        text(
            "SELECT LEAST(@@max_connections,"
            " CASE WHEN @@max_user_connections > 0 THEN @@max_user_connections"
            " ELSE @@max_connections END)"
        ),
        target=SERVER,
        backends=frozenset({"mysql"}),
    ),
    "mssql": constant(
        "budget.server_limit.mssql",
        text("SELECT @@MAX_CONNECTIONS"),
        target=SERVER,
        backends=frozenset({"mssql"}),
    ),
}
"""The query reading the server's connection limit, per kind of server (run on the driver's
own connection as the pool connects: the text is the driver's)."""


def read_server_limit(dbapi_connection: Any, backend: str) -> int | None:
    """Run ``server_limit_sql`` on a fresh driver connection; None if it cannot be read.

    Leaves the connection as it found it (the read's transaction rolled back).
    """
    sql = server_limit_sql(backend)
    if sql is None:
        return None
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(sql)
            row = cursor.fetchone()
        finally:
            cursor.close()
        dbapi_connection.rollback()
    except Exception:  # a login that may not read the settings: the configured budget holds
        log.info("cannot read the database server's connection limit", exc_info=True)
        return None
    if row is None or row[0] is None:
        return None
    return int(row[0])
