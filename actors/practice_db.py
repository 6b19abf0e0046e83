"""A small adapter over one practice database: opening it, reading its ``practice`` row,
and the incarnation fence.

The tables are ``actors.practice_schema``'s. Nothing here creates a table in a database
that lacks ``practice`` (the contract's promise): ``has_practice_table`` and
``read_practice`` only read, and ``claim_incarnation`` refuses a database without it.

The fence (``docs/databases.md``, DESIGN decision 3): each start of a database's mailbox
gets a higher incarnation number. ``claim_incarnation`` records it in the service-owned
``email_service_mailbox`` row; every later write transaction calls ``check_incarnation``
first, so a hung thread of an older incarnation, waking up, is refused
(``actors.stale_incarnation.StaleIncarnationError``, the one error of both sides of the fence)
instead of writing over its successor's work.

Every function runs on the calling thread and blocks on the database; none keeps a
connection open after it returns except through the caller's engine pool.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Update,
    create_engine,
    event,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import NullPool

from actors.budget_pool import BudgetPool
from actors.practice_schema import SINGLE_ROW_ID, email_service_mailbox, practice
from actors.server_budget import ServerBudget
from actors.stale_incarnation import StaleIncarnationError
from actors.statements import constant, driver_form, statement

__all__ = [
    "PracticeDbError",
    "PracticeRow",
    "StaleIncarnationError",
    "check_incarnation",
    "claim_incarnation",
    "connect_args",
    "has_practice_table",
    "make_engine",
    "one_read",
    "one_statement",
    "read_practice",
]

SQLITE_CACHE_KIB = 24
"""Page cache per SQLite connection, in KiB (SQLite's default is 2,000): six 4 KiB pages,
about what one check-in, command poll and settings read touch. The service holds a
connection to every database all day; with the page cache's up-front allocation off
(``actors/sqlite_memory.py``) the cache grows to this cap as it is used, so the cap is the
memory: at 1,000 databases 64 KiB gave 308 MB after a minute of idle, 24 KiB 287 MB, with
no difference in idle CPU (pages past the cap are read from the OS's file cache)."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite connection waits for another writer's lock before failing."""

APPLICATION_NAME = "email-service"
"""How the service's connections name themselves to PostgreSQL (``application_name`` in
``pg_stat_activity``) and MariaDB (the ``program_name`` connection attribute)."""

MOVE_CONNECTIONS = True
"""Whether a budgeted MariaDB (PyMySQL) engine may take another database's idle connection
and point it at its own (``_select_db``) instead of opening one; ``bench/supervision.py
--server mariadb --no-move`` turns it off to measure the difference."""

log = logging.getLogger(__name__)

_CLAIM_ATTEMPTS = 5  # concurrent first claims race on the INSERT; each retry sees the winner


class PracticeDbError(Exception):
    """Raised when a practice database cannot be used the way the service needs."""


@dataclass(frozen=True, slots=True)
class PracticeRow:
    """The ``practice`` row (id 1): what the practice software says this database is."""

    practice_name: str
    registered_server: str | None


def connect_args(url: str | URL, timeout: float | None) -> dict[str, Any]:
    """Return the driver's connect arguments that bound connecting to ``timeout`` seconds.

    PostgreSQL (psycopg) and pyodbc get a login timeout (whole seconds, at least 1);
    PyMySQL a connect, read and write timeout; SQLite its lock wait. Other drivers, or
    ``timeout`` None: no arguments. Pure.
    """
    if timeout is None:
        return {}
    parsed = make_url(url)
    whole = max(1, math.ceil(timeout))
    driver = parsed.get_driver_name()
    if parsed.get_backend_name() == "sqlite":
        return {"timeout": timeout}
    if driver in ("psycopg", "psycopg2"):
        return {"connect_timeout": whole}
    if driver == "pymysql":
        return {"connect_timeout": whole, "read_timeout": whole, "write_timeout": whole}
    if driver == "pyodbc":
        return {"timeout": whole}
    return {}


_WAL = "practice_db_wal"  # connection info: the SQLite connection is in WAL mode
_BUSY_MS = "practice_db_busy_ms"  # connection info: its lock wait, when not the default
_RELAXED = "practice_db_relaxed"  # connection info: its commits now skip their fsync


def _sqlite_on_connect(dbapi_connection: Any, record: Any) -> None:
    # Driver-level autocommit, so that SQLAlchemy's "begin" event below starts every
    # transaction, reads included (the pysqlite recipe in SQLAlchemy's SQLite docs):
    # otherwise a SELECT runs outside the transaction and check_incarnation would not
    # fence the write that follows it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # The file's journal mode is its owner's: read, never set (WAL persists in the file,
    # and does not work on a network share). In rollback mode readers and the writer
    # block each other more; the busy timeout below covers that wait.
    mode = cursor.execute("PRAGMA journal_mode").fetchone()
    record.info[_WAL] = mode is not None and str(mode[0]).lower() == "wal"
    # Every commit reaches the disk before it returns (SQLite's own default, said here
    # because the outbox relies on it); only ``one_statement(durable=False)`` relaxes it.
    cursor.execute("PRAGMA synchronous=FULL")
    record.info[_RELAXED] = False
    cursor.execute(f"PRAGMA busy_timeout={record.info.get(_BUSY_MS, SQLITE_BUSY_TIMEOUT_MS)}")
    # A small page cache: the service keeps a connection open to every practice database
    # for as long as it runs, and SQLite's default (2 MB each) fills as the check-in
    # table grows: a thousand databases would slowly take gigabytes.
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


_ONE_STATEMENT = "practice_db_one_statement"  # a user-defined execution option


def _sqlite_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(_ONE_STATEMENT):
        return
    if conn.info.get(_RELAXED):
        _relax(conn, False)  # every transaction's commit is durable
    conn.exec_driver_sql("BEGIN")


def _relax(conn: Connection, relaxed: bool) -> None:
    """Make a SQLite connection's commits skip their ``fsync`` (``synchronous=NORMAL``), or
    not (``FULL``), remembering which in the connection's info so a connection that is
    already so is not told again (a pragma per statement would cost about what the
    ``fsync`` does). Marked relaxed before it is, and durable only after: a failure
    leaves it marked relaxed, so the next transaction sets it again. Through SQLAlchemy,
    so a failure is the usual ``SQLAlchemyError`` the callers handle."""
    if relaxed:
        conn.info[_RELAXED] = True
        conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
    else:
        conn.exec_driver_sql("PRAGMA synchronous=FULL")
        conn.info[_RELAXED] = False


@contextmanager
def one_statement(engine: Engine, *, durable: bool = True) -> Iterator[Connection]:
    """Yield a connection for ONE statement that needs no transaction around it.

    A single statement is atomic on its own. On SQLite it then runs without the
    ``BEGIN`` that ``make_engine`` otherwise issues (the driver autocommits it); on
    other databases the driver's implicit transaction is committed when the block
    ends. For work that runs for every database all day (the self-test's write, the
    command poll), where the extra round trips are most of the cost. Run only one
    statement in it (a second one would not share a transaction with the first).

    ``durable=False``: the write may be lost by a power cut (never by a crash or a kill
    of the process, and never half-done). On a SQLite database in WAL mode its commit
    then skips the ``fsync`` (``synchronous=NORMAL``; the next durable commit on the
    connection syncs it too, and every transaction is durable again); elsewhere it
    changes nothing. For the check-in, written for every database all day: the
    ``fsync`` was most of a check-in's cost, and a check-in a power cut takes back can
    only make the status look older, never better.
    """
    with _one(engine) as conn:
        if conn.info.get(_WAL) and conn.info.get(_RELAXED) == durable:
            _relax(conn, not durable)
        yield conn


@contextmanager
def one_read(engine: Engine) -> Iterator[Connection]:
    """``one_statement`` for a statement that only reads (and so commits nothing)."""
    with _one(engine) as conn:
        yield conn


@contextmanager
def _one(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        conn.execution_options(**{_ONE_STATEMENT: True})
        yield conn
        conn.commit()


def _select_db(database: str) -> Callable[[Any], None]:
    """Point a PyMySQL connection at ``database`` (``COM_INIT_DB``): a connection moved
    between practice databases on one MariaDB server instead of a new one, which costs
    PyMySQL about 40 ms of CPU (it builds a TLS context for every connection)."""

    def move(connection: Any) -> None:
        connection.select_db(database)

    return move


def _mariadb_odbc_port(url: URL) -> URL:
    """Move a ``mysql+pyodbc`` URL's port into ``?port=``.

    SQLAlchemy's pyodbc connector writes the port SQL Server's way (``Server=host,port``),
    which the MariaDB ODBC driver ignores (it connects to 3306 whatever the URL says);
    given as a query parameter it becomes the ``PORT=`` attribute the driver reads.
    """
    if (
        url.get_backend_name() in ("mysql", "mariadb")
        and url.get_driver_name() == "pyodbc"
        and url.port is not None
        and "port" not in url.query
        and "odbc_connect" not in url.query
    ):
        return url.set(port=None).update_query_dict({"port": str(url.port)})
    return url


def make_engine(
    url: str | URL,
    *,
    timeout: float | None = None,
    pooled: bool = True,
    query_cache_size: int | None = None,
    sqlite_statement_cache: int | None = None,
    pool_size: int | None = None,
    wait_timeout: float | None = None,
    budget: ServerBudget | None = None,
) -> Engine:
    """Return an engine for the one practice database at ``url``.

    SQLite: every connection gets a busy timeout and keeps the file's journal mode (WAL
    or rollback, as its owner set it; ``use_wal`` is for files the service made), and
    transactions are real (``BEGIN`` on ``Connection.begin()``). Servers:
    ``pool_pre_ping``, so a connection the server dropped is replaced instead of failing
    the next query; a ``mysql+pyodbc``
    port is passed the way the MariaDB ODBC driver reads it. ``timeout`` bounds
    connecting (see ``connect_args``); ``pooled=False`` opens a connection per use (for
    short visits such as discovery). ``query_cache_size`` bounds SQLAlchemy's cache of
    compiled statements (default: SQLAlchemy's 500), which each engine holds on its own;
    ``sqlite_statement_cache`` the prepared statements each SQLite connection keeps
    (default: the driver's 128), which hold SQLite's memory. ``pool_size`` is how many
    idle connections the pool keeps (default SQLAlchemy's 5); more may be open at once,
    and those beyond it are closed when given back. ``wait_timeout`` bounds every wait
    once connected, for a caller that must never wait longer (a mailbox, whose waits
    must stay below its hang limit): SQLite's lock wait (default 30 s), PostgreSQL's
    ``statement_timeout`` and ``lock_timeout``, MariaDB's ``max_statement_time`` and
    ``innodb_lock_wait_timeout`` (MySQL: ``max_execution_time``), SQL Server's
    ``LOCK_TIMEOUT`` (``session_wait_statements``), pyodbc's query timeout (whole
    seconds), and the wait for a pooled connection; PyMySQL's reads are also bounded, a
    second later (for a server that stopped answering), and its writes by ``timeout``.
    ``budget`` (a server database only; SQLite files have no server): every connection
    takes a slot of that server's connection budget (``actors.budget_pool``); pooled, one
    idle connection is kept while no other database needs its slot, else (``pooled=False``)
    each is closed after use, except on MariaDB (PyMySQL), where it is kept for the next
    database to move to itself (``MOVE_CONNECTIONS``). The wait for a slot is the
    budget's own (``ServerBudgets(wait_seconds=…)``).
    Connects lazily: nothing is opened until first use.
    Raises ``sqlalchemy.exc.ArgumentError`` for a URL SQLAlchemy cannot use.
    """
    parsed = _mariadb_odbc_port(make_url(url))
    kwargs: dict[str, Any] = {"connect_args": connect_args(parsed, timeout)}
    driver = parsed.get_driver_name()
    if driver in ("psycopg", "psycopg2") and "application_name" not in parsed.query:
        kwargs["connect_args"]["application_name"] = APPLICATION_NAME
    elif driver == "pymysql":
        kwargs["connect_args"]["program_name"] = APPLICATION_NAME
    if budget is not None and parsed.get_backend_name() != "sqlite":
        kwargs["poolclass"] = BudgetPool
        kwargs["connection_budget"] = budget
        kwargs["keep_idle"] = pooled
        if driver == "pymysql" and parsed.database and MOVE_CONNECTIONS:
            kwargs["move_connection"] = _select_db(parsed.database)
        pooled = False  # the budget pool decides what is kept
    elif not pooled:
        kwargs["poolclass"] = NullPool
    if query_cache_size is not None:
        kwargs["query_cache_size"] = query_cache_size
    if pooled and pool_size is not None and "poolclass" not in kwargs:
        kwargs["pool_size"] = pool_size
    if pooled and wait_timeout is not None:
        kwargs["pool_timeout"] = wait_timeout
    if parsed.get_backend_name() == "sqlite":
        if sqlite_statement_cache is not None:
            kwargs["connect_args"]["cached_statements"] = sqlite_statement_cache
        engine = create_engine(parsed, **kwargs)
        if wait_timeout is not None:
            busy_ms = max(1, round(wait_timeout * 1000))
            # Registered first, so it runs before _sqlite_on_connect reads it.
            event.listen(
                engine, "connect", lambda _c, record: record.info.__setitem__(_BUSY_MS, busy_ms)
            )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if wait_timeout is not None:
        kwargs["connect_args"].update(_wait_args(parsed, wait_timeout))
    engine = create_engine(parsed, pool_pre_ping=True, **kwargs)
    if wait_timeout is not None:
        _bound_session_waits(engine, wait_timeout)
    return engine


def _wait_args(url: URL, wait_timeout: float) -> dict[str, Any]:
    """Connect arguments that bound waits once connected (see ``make_engine``). Pure."""
    if url.get_driver_name() in ("psycopg", "psycopg2"):
        ms = max(1, round(wait_timeout * 1000))
        return {"options": f"-c statement_timeout={ms} -c lock_timeout={ms}"}
    if url.get_driver_name() == "pymysql":
        # The server's own limits (``session_wait_statements``) end a wait first, with
        # its own error; the read timeout, a second later, is for a server gone silent.
        return {"read_timeout": max(1, math.ceil(wait_timeout)) + 1}
    return {}


def session_wait_statements(backend: str, wait_timeout: float, *, mariadb: bool) -> list[str]:
    """Return the statements that bound a new connection's waits to ``wait_timeout``
    seconds, for databases that take them as session settings rather than connect
    arguments. Pure.

    MariaDB: ``max_statement_time`` (seconds, fractions allowed) and
    ``innodb_lock_wait_timeout`` (whole seconds, at least 1); MySQL has no
    ``max_statement_time``: ``max_execution_time`` (milliseconds; SELECTs only) instead.
    SQL Server: ``SET LOCK_TIMEOUT`` (milliseconds; the statement as a whole is bounded
    by the ODBC query timeout). PostgreSQL's come as connect arguments (``_wait_args``);
    SQLite's is its busy timeout. Others: none.
    """
    ms = max(1, round(wait_timeout * 1000))
    whole = max(1, math.ceil(wait_timeout))
    if backend == "mssql":
        return [f"SET LOCK_TIMEOUT {ms}"]
    if backend in ("mysql", "mariadb"):
        limit = f"max_statement_time = {ms / 1000:.3f}" if mariadb else f"max_execution_time = {ms}"
        return [f"SET SESSION {limit}, innodb_lock_wait_timeout = {whole}"]
    return []


def _bound_session_waits(engine: Engine, wait_timeout: float) -> None:
    """Bound every new connection's waits on ``engine`` to ``wait_timeout`` seconds: the
    session statements above, and pyodbc's query timeout (``SQL_ATTR_QUERY_TIMEOUT``,
    whole seconds: the driver cancels a statement that runs longer)."""
    dialect = engine.dialect
    pyodbc = dialect.driver == "pyodbc"
    whole = max(1, math.ceil(wait_timeout))

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if pyodbc:
            dbapi_connection.timeout = whole
        # Runs after SQLAlchemy's first-connect set-up, so the dialect knows the server.
        mariadb = bool(getattr(dialect, "is_mariadb", False))
        statements = session_wait_statements(dialect.name, wait_timeout, mariadb=mariadb)
        if not statements:
            return
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
        except dialect.loaded_dbapi.Error as exc:
            # A server without these settings (an old MySQL) is still served: its waits
            # are then bounded by the driver's timeouts only.
            log.warning("cannot bound waits on %s by %r: %s", engine.url.database, statement, exc)
        finally:
            cursor.close()

    event.listen(engine, "connect", on_connect)


def use_wal(url: str) -> None:
    """Put the SQLite file at ``url`` in WAL mode, which persists in the file: only for a
    file the service made itself (``db init`` of a new file, the demo), never for one it
    was given. Readers (workstations, the status page) then never block its writes."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    finally:
        engine.dispose()


def _once(engine: Engine) -> Engine:
    """Return ``engine`` without its compiled-statement cache, for statements run once.

    Each engine caches the SQL it compiled; a claim runs once per incarnation, so
    caching its statements would only keep memory in every one of a thousand engines.
    """
    return engine.execution_options(compiled_cache=None)


def has_practice_table(engine: Engine) -> bool:
    """Return whether the database has a ``practice`` table (or view) in its default schema.

    Read-only: reflection queries only; creates nothing, not even on SQLite (the caller's
    engine decides how the file is opened).
    """
    with _once(engine).connect() as conn:
        return inspect(conn).has_table(practice.name)


_READ_PRACTICE = constant(
    "practice.read",
    select(practice.c.practice_name, practice.c.registered_server).where(
        practice.c.id == SINGLE_ROW_ID
    ),
)


def read_practice(engine: Engine) -> PracticeRow | None:
    """Return the ``practice`` row with id 1, or None when the table has no such row.

    Read-only. A database without the ``practice`` table raises the database's own error
    (call ``has_practice_table`` first). A NULL ``practice_name`` reads as "".
    One statement without a transaction, compiled once per kind of database
    (``driver_form``): the rescan reads every served database's row every minute.
    """
    sql, params = driver_form("practice.read", engine.dialect, {})
    with one_read(engine) as conn:
        row = conn.exec_driver_sql(sql, params).first()
    if row is None:
        return None
    return PracticeRow(practice_name=row[0] or "", registered_server=row[1])


def _naive_utc(now: datetime) -> datetime:
    """Times are stored as naive UTC (see ``actors.practice_schema``)."""
    return now if now.tzinfo is None else now.astimezone(UTC).replace(tzinfo=None)


def claim_incarnation(engine: Engine, incarnation: int, server_name: str, now: datetime) -> None:
    """Record ``incarnation`` as the one allowed to write to this practice database.

    Upserts the ``email_service_mailbox`` row (id 1) with ``incarnation``, ``server_name``
    and ``started_at`` = ``now`` (aware, or naive meaning UTC), creating that service-owned
    table first if this practice database lacks it. A higher number than the stored one
    wins; the stored number itself is claimed again only by the same service
    (``same_service``: a process whose predecessor was killed before its start reached
    the log gets the same number); a lower one is refused.

    So two services with event logs of their own, whose numbers run independently, can
    never both hold one number: each claim of one fences the other out, and the winner's
    outbox recovery settles the loser's rows (``MessageDeliveryUncertain`` for those on
    the wire). Before, a second service claiming the number the first held got it too,
    and both sent the same outbox row without a word in either log.

    The update is a compare-and-swap (``WHERE incarnation < :n``), so two services or two
    incarnations racing can never both win. It is tried first on its own: when it changes
    the row (every claim but a database's very first) or finds the fence table without
    the row, the table checks are skipped, since the service creates the fence table
    only in a database that has the ``practice`` table. Raises ``StaleIncarnationError``
    when the stored incarnation is higher, or equal and another service's;
    ``PracticeDbError`` when the database has no ``practice`` table, and the database's
    own errors when it cannot be reached.
    """
    values = {"incarnation": incarnation, "server_name": server_name, "started_at": _naive_utc(now)}
    swapped = _swap(engine, incarnation, values)
    if swapped:
        return  # the usual case (a restart): the row exists and the tables need no check
    if swapped is None:  # no fence table yet: is this a practice database at all?
        if not has_practice_table(engine):
            raise PracticeDbError("not a practice database (no practice table): nothing claimed")
        with _once(engine).begin() as conn:
            email_service_mailbox.create(conn, checkfirst=True)
    for _attempt in range(_CLAIM_ATTEMPTS):
        with _once(engine).begin() as conn:
            changed = conn.execute(_claim_swap(incarnation, values)).rowcount
            if changed == 1:
                return
            stored = conn.execute(_READ_CLAIM).one_or_none()
            if stored is not None and stored.incarnation == incarnation:
                if not same_service(stored.server_name or "", server_name):
                    raise StaleIncarnationError(incarnation, stored.incarnation)
                conn.execute(_claim_again(incarnation, values))
                return  # ours already (our predecessor's): taken over
        if stored is not None:
            if stored.incarnation > incarnation:
                raise StaleIncarnationError(incarnation, stored.incarnation)
            continue  # a lower claim committed between our UPDATE and SELECT: swap again
        try:
            with _once(engine).begin() as conn:
                conn.execute(_claim_first(values))
            return
        except IntegrityError:
            continue  # another claim inserted the row first: compare with it
    raise PracticeDbError(
        f"could not claim incarnation {incarnation}: {_CLAIM_ATTEMPTS} concurrent claims won first"
    )


def same_service(stored: str, claiming: str) -> bool:
    """Return whether two fence holders' names are one service on one host. Pure.

    Names are ``server_id (host pid N start W)`` (``supervisor.instance_lock.instance_name``)
    or, from older versions and tests, a bare name. A new process of the same service on
    the same host differs only from " pid " on (one host runs one service: its lock), so
    the part before it, ``server_id (host``, is compared.
    """
    return _service_and_host(stored) == _service_and_host(claiming)


def _service_and_host(name: str) -> str:
    head, pid, _ = name.rpartition(" pid ")
    return head if pid else name


def _swap(engine: Engine, incarnation: int, values: dict[str, Any]) -> bool | None:
    """Try the compare-and-swap alone: whether it changed the row; None: no fence table."""
    try:
        with _once(engine).begin() as conn:
            changed = conn.execute(_claim_swap(incarnation, values)).rowcount
    except DBAPIError:
        return None  # no fence table yet (or no database): the full path says which
    return changed == 1


_CLAIM_SAMPLE = (
    7,
    {"incarnation": 7, "server_name": "SRV (host pid 1)", "started_at": datetime(2026, 1, 5, 8)},
)


@statement("fence.claim_swap", *_CLAIM_SAMPLE)
def _claim_swap(incarnation: int, values: dict[str, Any]) -> Update:
    """The claim's compare-and-swap: a higher incarnation takes the fence row."""
    table = email_service_mailbox
    return (
        update(table)
        .where(table.c.id == SINGLE_ROW_ID, table.c.incarnation < incarnation)
        .values(**values)
    )


@statement("fence.claim_again", *_CLAIM_SAMPLE)
def _claim_again(incarnation: int, values: dict[str, Any]) -> Update:
    """The same service's new process takes over the number its predecessor held."""
    table = email_service_mailbox
    return (
        update(table)
        .where(table.c.id == SINGLE_ROW_ID, table.c.incarnation == incarnation)
        .values(**values)
    )


@statement("fence.claim_first", _CLAIM_SAMPLE[1])
def _claim_first(values: dict[str, Any]) -> Insert:
    """A database's very first claim: the fence row."""
    return insert(email_service_mailbox).values(id=SINGLE_ROW_ID, **values)


_READ_CLAIM = constant(
    "fence.read_claim",
    select(email_service_mailbox.c.incarnation, email_service_mailbox.c.server_name).where(
        email_service_mailbox.c.id == SINGLE_ROW_ID
    ),
)

_READ_FENCE_SHARED = constant(
    "fence.read_shared",
    select(email_service_mailbox.c.incarnation)
    .where(email_service_mailbox.c.id == SINGLE_ROW_ID)
    .with_for_update(read=True)
    # SQL Server ignores FOR UPDATE/SHARE: its table hint holds the shared lock instead.
    .with_hint(email_service_mailbox, "WITH (HOLDLOCK, ROWLOCK)", dialect_name="mssql"),
)
"""Built once: every fenced write transaction runs it first (building it cost 50 us)."""


def check_incarnation(conn: Connection, incarnation: int) -> None:
    """Raise ``StaleIncarnationError`` unless ``incarnation`` holds this database's fence.

    Call it first inside the write transaction it guards, on that transaction's
    connection. It reads the ``email_service_mailbox`` row with a shared row lock where
    the database has one (``FOR SHARE``, ``LOCK IN SHARE MODE``, SQL Server's
    ``HOLDLOCK``), so a concurrent claim
    waits until this transaction ends; on SQLite a claim committed after this read makes
    the transaction's first write fail with "database is locked" (its snapshot is stale),
    so a stale write never lands either way. A missing row means nobody has claimed the
    database: refused too.
    """
    stored = conn.execute(_READ_FENCE_SHARED).scalar_one_or_none()
    if stored != incarnation:
        raise StaleIncarnationError(incarnation, stored)
