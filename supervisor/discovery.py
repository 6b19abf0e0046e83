"""Finding the practice databases on the database server, and whether each is eligible.

The service is given one server URL (``databases.server_url``), never a list of databases.
``list_databases`` lists every user database on that server; ``discover`` also opens each
one, read-only, to see whether it is a practice database (it has the ``practice`` table),
reads its ``practice`` row, and decides eligibility with ``supervisor.eligibility`` (the
one rule, shared with the login check). ``docs/databases.md`` is the operator's version.

What is listed, by the URL's backend:

- ``sqlite:///FOLDER``: every ``*.sqlite3``, ``*.sqlite`` and ``*.db`` file directly in the
  folder; the name is the file's stem, the database URL the file's path.
- PostgreSQL: ``pg_database`` rows that are not templates and allow connections, except
  ``postgres``.
- MySQL/MariaDB (PyMySQL or pyodbc): ``information_schema.schemata`` except
  ``information_schema``, ``mysql``, ``performance_schema`` and ``sys``.
- SQL Server (pyodbc): ``sys.databases`` that are ``ONLINE``, except ``master``, ``tempdb``,
  ``model`` and ``msdb``.

A database's URL is the server URL with the database name set (``database_url``). Names are
never pasted into SQL: they travel as bound parameters or in the driver's connect arguments.

Nothing is ever written: a server database is only reflected and read, and a SQLite file
is opened read-only (``mode=ro``; ``immutable=1`` for a WAL-mode file that has no ``-wal``
file beside it, because a read-only open of such a file would create ``-wal``/``-shm``).

Runs on the calling thread and blocks on the network; every connection is bounded by
``timeout`` and closed before the function returns.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Boolean, Engine, Select, String, column, create_engine, select, table
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from actors.mail import redact
from actors.practice_db import (
    PracticeRow,
    has_practice_table,
    make_engine,
    read_practice,
)
from actors.server_budget import ServerBudgets
from actors.statements import SERVER, constant
from config import mask_url
from supervisor.eligibility import Eligibility, eligibility

SQLITE_SUFFIXES: tuple[str, ...] = (".sqlite3", ".sqlite", ".db")
"""The file name endings of SQLite practice databases in a folder (compared case-insensitively)."""

SYSTEM_DATABASES: dict[str, tuple[str, ...]] = {
    "postgresql": ("postgres",),
    "mysql": ("information_schema", "mysql", "performance_schema", "sys"),
    "mssql": ("master", "tempdb", "model", "msdb"),
}
"""Databases of each server kind that are the server's own: never listed, never opened."""

DEFAULT_TIMEOUT = 10.0
"""Seconds allowed for connecting to one database (and, with PyMySQL, for each read)."""

# The database each server kind is listed from when the server URL names none: one that
# always exists and that every login may use. Not PostgreSQL's template1: a session
# there makes CREATE DATABASE fail for everyone else.
_LISTING_DATABASE = {"postgresql": "postgres", "mysql": "information_schema", "mssql": "master"}

_SQLITE_HEADER = b"SQLite format 3\x00"
_SQLITE_WAL = 2  # header bytes 18/19 (write/read format version): 1 legacy, 2 WAL


class DiscoveryError(Exception):
    """Raised when the database server itself cannot be listed: unreachable, refused, a
    SQLite folder that does not exist, or a server kind discovery does not know.

    ``str()`` is one line that names the server (password masked) and what went wrong.
    """


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    """One database on the server, as discovery found it.

    ``url`` opens this one database and carries the password: use it, never show it
    (``display_url`` is the masked form; the repr leaves ``url`` out). ``practice_name``
    and ``registered_server`` come from the ``practice`` row (None when the database is not
    a practice database or has no row with id 1). ``error`` is one line, without a
    password, when the database could not be opened or read; it is then neither a
    practice database nor eligible, and ``eligibility.reason`` says so.
    """

    name: str
    url: str = field(repr=False)
    is_practice: bool
    practice_name: str | None
    registered_server: str | None
    eligibility: Eligibility
    error: str | None = None

    @property
    def display_url(self) -> str:
        """``url`` with its password masked, fit to show a person or a log."""
        return mask_url(self.url)


@dataclass(frozen=True, slots=True)
class _Found:
    name: str
    url: str
    problem: str | None = None  # known before opening (a duplicate name)


# --- the listing statements ------------------------------------------------------------

_pg_database = table(
    "pg_database",
    column("datname", String),
    column("datistemplate", Boolean),
    column("datallowconn", Boolean),
    schema="pg_catalog",
)
_schemata = table("schemata", column("schema_name", String), schema="information_schema")
_sys_databases = table(
    "databases", column("name", String), column("state_desc", String), schema="sys"
)


OpenEngine = Callable[[str, str], Engine | None]
"""``(name, url)`` -> an engine the caller already holds on that database, or None."""


_LISTINGS = {
    "postgresql": constant(
        "discovery.list.postgresql",
        select(_pg_database.c.datname).where(
            ~_pg_database.c.datistemplate,
            _pg_database.c.datallowconn,
            _pg_database.c.datname.not_in(SYSTEM_DATABASES["postgresql"]),
        ),
        target=SERVER,
        backends=frozenset({"postgresql"}),
    ),
    "mysql": constant(
        "discovery.list.mysql",
        select(_schemata.c.schema_name).where(
            _schemata.c.schema_name.not_in(SYSTEM_DATABASES["mysql"])
        ),
        target=SERVER,
        backends=frozenset({"mysql"}),
    ),
    "mssql": constant(
        "discovery.list.mssql",
        select(_sys_databases.c.name).where(
            _sys_databases.c.state_desc == "ONLINE",
            _sys_databases.c.name.not_in(SYSTEM_DATABASES["mssql"]),
        ),
        target=SERVER,
        backends=frozenset({"mssql"}),
    ),
}
"""The statement listing a server's user databases, per kind of server."""


def list_statement(backend: str) -> Select[tuple[str]]:
    """Return the statement that lists the user databases of a ``backend`` server.

    ``backend`` is a SQLAlchemy backend name: ``postgresql``, ``mysql``/``mariadb`` or
    ``mssql``. Every constant is a bound parameter. Raises ``DiscoveryError`` for any other
    backend (SQLite folders are listed from the file system).
    """
    kind = "mysql" if backend == "mariadb" else backend
    listing = _LISTINGS.get(kind)
    if listing is not None:
        return listing
    raise DiscoveryError(
        f"cannot list databases on a {backend!r} server: use PostgreSQL, MariaDB/MySQL, "
        "SQL Server or a folder of SQLite files (sqlite:///FOLDER)"
    )


# --- URLs ------------------------------------------------------------------------------


def _odbc_dsn_in_host(url: URL) -> bool:
    """True for a pyodbc URL whose host part is an ODBC data source name (no ``driver``).

    SQLAlchemy's pyodbc connector reads ``USER@NAME`` without a database as the DSN
    ``NAME``, but as a server host once a database is set.
    """
    query = url.query
    return (
        url.get_driver_name() == "pyodbc"
        and bool(url.host)
        and not any(key in query for key in ("driver", "dsn", "odbc_connect"))
    )


def _odbc_braced(value: str) -> str:
    # An ODBC attribute value in braces may hold ';', spaces and quotes; '}' doubles.
    return "{" + value.replace("}", "}}") + "}"


def _with_database(url: URL, name: str) -> URL:
    if url.get_driver_name() == "pyodbc":
        if "odbc_connect" in url.query:  # a raw connection string: add the attribute
            raw = url.query["odbc_connect"]
            raw = raw if isinstance(raw, str) else raw[-1]
            joined = f"{raw.rstrip(';')};DATABASE={_odbc_braced(name)}"
            return url.update_query_dict({"odbc_connect": joined})
        if _odbc_dsn_in_host(url):  # keep the DSN a DSN: move it to ?dsn=
            assert url.host is not None
            # _replace, not set(): URL.set() ignores None, and the host must go.
            return url._replace(host=None, port=None, database=name).update_query_dict(
                {"dsn": url.host}
            )
    return url.set(database=name)


def database_url(server_url: str, name: str) -> str:
    """Return the URL of the database ``name`` on the server at ``server_url``, password
    included (never show it; see ``mask_url``).

    ``make_url(server_url).set(database=name)``, except for pyodbc URLs that name an ODBC
    data source (``mssql+pyodbc://user@DSN``: the DSN moves to ``?dsn=`` so it stays one)
    or carry a raw ``odbc_connect`` string (``DATABASE={name}`` is appended to it). For
    SQLite the database is the file ``FOLDER/name`` as listed; use ``discover``'s URLs.
    Raises ``DiscoveryError`` for a URL SQLAlchemy cannot parse.
    """
    return _with_database(_parse(server_url), name).render_as_string(hide_password=False)


def _parse(server_url: str) -> URL:
    try:
        return make_url(server_url)
    except (ArgumentError, ValueError):
        # SQLAlchemy's message quotes the whole URL, password and all.
        raise DiscoveryError(
            f"not a database server URL: {mask_url(server_url)!r} (see databases.server_url)"
        ) from None


def _listing_url(url: URL, kind: str) -> URL:
    if url.database or _odbc_dsn_in_host(url) or "odbc_connect" in url.query:
        return url  # the DSN or connection string says where to connect
    return _with_database(url, _LISTING_DATABASE[kind])


# --- errors ----------------------------------------------------------------------------


def error_line(exc: BaseException, url: str | URL | None = None) -> str:
    """Return what went wrong in ``exc`` as one line fit to show a person.

    For a database error the driver's own message (its first line, without SQLAlchemy's
    statement and link); any URL in it masked. When ``url`` has a password and the line
    still holds it in any form (``actors.mail.redact.holds_secret``), the line is replaced
    as a whole by the error's type and ``redact.HIDDEN``: never word by word, which would
    show where the password is. Never raises.
    """
    try:
        orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        args: tuple[object, ...] = tuple(getattr(orig, "args", ()))
        # pyodbc: ('08001', '[08001] [driver]message (2002) (SQLDriverConnect)')
        odbc = args[1] if len(args) == 2 and isinstance(args[0], str) else None
        text = odbc if isinstance(odbc, str) and odbc.startswith("[") else str(orig)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        line = mask_url(lines[0]) if lines else type(orig).__name__
        password = _password(url)
        if password and redact.holds_secret(line, [password]):
            return f"{type(orig).__name__} {redact.HIDDEN}"
        return line
    except Exception:  # an error message must never become a second error
        return type(exc).__name__


def _password(url: str | URL | None) -> str | None:
    if url is None:
        return None
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except (ArgumentError, ValueError):
        return None
    password = parsed.password
    return str(password) if password else None


# --- listing ---------------------------------------------------------------------------


def _list_sqlite_folder(url: URL) -> list[_Found]:
    folder = Path(url.database or "")
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DiscoveryError(f"the SQLite folder {str(folder)!r} {what} (see databases.server_url)")
    found: list[_Found] = []
    first_file: dict[str, str] = {}
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SQLITE_SUFFIXES)
    except OSError as exc:
        raise DiscoveryError(
            f"cannot list the SQLite folder {str(folder)!r}: {exc.strerror}"
        ) from None
    for path in files:
        if not path.is_file():
            continue
        file_url = url.set(database=str(path)).render_as_string(hide_password=False)
        other = first_file.setdefault(path.stem, path.name)
        problem = None
        if other != path.name:
            problem = f"{other} has the same name {path.stem!r}; rename one of the two files"
        found.append(_Found(path.stem, file_url, problem))
    return found


def _list_server(url: URL, timeout: float, budgets: ServerBudgets | None) -> list[_Found]:
    kind = "mysql" if url.get_backend_name() == "mariadb" else url.get_backend_name()
    statement = list_statement(kind)
    budget = None if budgets is None else budgets.for_url(url)
    engine = make_engine(_listing_url(url, kind), timeout=timeout, pooled=False, budget=budget)
    try:
        with engine.connect() as conn:
            names = [str(name) for name in conn.scalars(statement)]
    except Exception as exc:
        raise DiscoveryError(
            f"cannot list the databases on {mask_url(url.render_as_string(hide_password=True))}:"
            f" {error_line(exc, url)}"
        ) from None
    finally:
        engine.dispose()
    return [
        _Found(name, _with_database(url, name).render_as_string(hide_password=False))
        for name in names
    ]


def _list(server_url: str, timeout: float, budgets: ServerBudgets | None = None) -> list[_Found]:
    url = _parse(server_url)
    if url.get_backend_name() == "sqlite":
        found = _list_sqlite_folder(url)
    else:
        found = _list_server(url, timeout, budgets)
    return sorted(found, key=lambda f: (f.name.casefold(), f.name))


def list_databases(server_url: str, *, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Return the names of every user database on the server at ``server_url``, sorted
    case-insensitively; system databases (``SYSTEM_DATABASES``) are left out.

    Opens one connection (none for a SQLite folder) and closes it. Raises
    ``DiscoveryError`` when the server cannot be listed.
    """
    return [f.name for f in _list(server_url, timeout)]


# --- opening one database --------------------------------------------------------------


def _sqlite_readonly_engine(path: Path, timeout: float) -> Engine:
    """An engine that reads the SQLite file at ``path`` and can never change it.

    The file's header is read with Python's own ``open`` only when no ``-wal`` file is
    beside it. On POSIX, closing ANY handle to a file drops every lock this process holds
    on it, SQLite's included; if the service itself has the database open (in WAL mode:
    then the ``-wal`` file exists), another process opening and closing it would take
    itself for the last user and delete the ``-wal`` file under the service, whose
    writes would then be lost. With a ``-wal`` file present, SQLite opens it read-only
    as it is and reads the WAL too.
    """
    uri = path.resolve().as_uri() + "?mode=ro"
    if Path(f"{path}-wal").exists():
        return _readonly_engine(uri, timeout)
    with path.open("rb") as f:
        header = f.read(100)
    if header and not header.startswith(_SQLITE_HEADER):
        raise ValueError("not a SQLite database file")
    wal = len(header) >= 20 and _SQLITE_WAL in (header[18], header[19])
    if wal:
        # Without a -wal file the main file holds everything, and a read-only open of a
        # WAL-mode file would create -wal and -shm beside it: read it as immutable.
        uri += "&immutable=1"
    return _readonly_engine(uri, timeout)


def _readonly_engine(uri: str, timeout: float) -> Engine:
    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=timeout)

    return create_engine("sqlite://", creator=connect, poolclass=NullPool)


def _open_readonly(url: str, timeout: float, budgets: ServerBudgets | None = None) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_readonly_engine(Path(parsed.database or ""), timeout)
    budget = None if budgets is None else budgets.for_url(parsed)
    return make_engine(parsed, timeout=timeout, pooled=False, budget=budget)


def _read_served(engine: Engine) -> tuple[bool, PracticeRow | None]:
    """Read a served database's ``practice`` row in one statement: ``(True, row)``, or
    ``(False, None)`` when that fails, for the full look to say why."""
    try:
        return True, read_practice(engine)
    except Exception:
        return False, None


def _probe(
    found: _Found,
    *,
    server_id: str,
    genuine_server_check: bool,
    timeout: float,
    open_engine: OpenEngine | None = None,
    budgets: ServerBudgets | None = None,
) -> DatabaseInfo:
    def failed(message: str) -> DatabaseInfo:
        return DatabaseInfo(
            name=found.name,
            url=found.url,
            is_practice=False,
            practice_name=None,
            registered_server=None,
            eligibility=Eligibility(False, f"cannot be read: {message}"),
            error=message,
        )

    if found.problem is not None:
        return failed(found.problem)
    try:
        served = open_engine(found.name, found.url) if open_engine is not None else None
        is_practice, row = _read_served(served) if served is not None else (False, None)
        if not is_practice:
            engine = served or _open_readonly(found.url, timeout, budgets)
            try:
                is_practice = has_practice_table(engine)
                row = read_practice(engine) if is_practice else None
            finally:
                if served is None:
                    engine.dispose()
    except Exception as exc:  # one odd database must not hide every other one
        return failed(error_line(exc, found.url))
    return DatabaseInfo(
        name=found.name,
        url=found.url,
        is_practice=is_practice,
        practice_name=row.practice_name if row else None,
        registered_server=row.registered_server if row else None,
        eligibility=eligibility(
            found.name,
            is_practice=is_practice,
            registered_server=row.registered_server if row else None,
            server_id=server_id,
            genuine_server_check=genuine_server_check,
        ),
    )


def discover(
    server_url: str,
    *,
    server_id: str,
    genuine_server_check: bool,
    timeout: float = DEFAULT_TIMEOUT,
    only: Callable[[str], bool] | None = None,
    open_engine: OpenEngine | None = None,
    budgets: ServerBudgets | None = None,
) -> list[DatabaseInfo]:
    """Return every database on the server at ``server_url``, sorted by name
    (case-insensitively), each opened read-only and judged by ``supervisor.eligibility``.

    ``server_id`` and ``genuine_server_check`` are the settings of the same names. ``only``,
    when given, keeps the databases whose name it accepts: the others are neither opened
    nor returned. A database that cannot be opened or read is returned with ``error`` set
    (one line, no password), never raised. Raises ``DiscoveryError`` when the server itself
    cannot be listed. Writes nothing anywhere.

    ``open_engine(name, url)``, when given, may return an engine the caller already holds
    on that database (the serving process's, for a database it serves); it is read
    through that engine and left open. Otherwise each database is opened read-only for
    the visit and closed after it.

    ``budgets``, when given, is the serving process's connection budget per server
    (``actors.server_budget``): the listing and each visit take a slot of it.
    """
    return [
        _probe(
            found,
            server_id=server_id,
            genuine_server_check=genuine_server_check,
            timeout=timeout,
            open_engine=open_engine,
            budgets=budgets,
        )
        for found in _list(server_url, timeout, budgets)
        if only is None or only(found.name)
    ]
