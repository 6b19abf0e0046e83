"""Where the test servers are, and fresh databases on them.

The servers are real: PostgreSQL and MariaDB run on every machine of this project
(``make test`` starts them if they stopped). A test that needs one fails when it
is missing; it never skips.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

POSTGRES_ADMIN_URL = os.environ.get(
    "PES_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
MARIADB_ADMIN_URL = os.environ.get("PES_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/")


@contextmanager
def fresh_postgres_database(prefix: str = "pes_test") -> Iterator[str]:
    """Create an empty PostgreSQL database, yield its URL, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield (
                make_url(POSTGRES_ADMIN_URL)
                .set(database=name)
                .render_as_string(hide_password=False)
            )
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


MARIADB_ODBC_DRIVER = "MariaDB Unicode"
"""The unixODBC driver name ``scripts/odbc-setup.sh`` makes sure is registered."""

MARIADB_ODBC_SERVER_URL = os.environ.get(
    "PES_TEST_MARIADB_ODBC_URL",
    "mysql+pyodbc://root@127.0.0.1:3306/?driver=" + MARIADB_ODBC_DRIVER.replace(" ", "+"),
)
"""The same MariaDB server through pyodbc and unixODBC, as a server URL (no database)."""


def server_url(admin_url: str) -> str:
    """Return ``admin_url`` without its database: the form ``databases.server_url`` takes."""
    # _replace, not set(): URL.set() ignores None.
    return make_url(admin_url)._replace(database=None).render_as_string(hide_password=False)


def _drop_sql(admin: Engine, quoted: str) -> str:
    if admin.dialect.name == "postgresql":
        return f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"
    return f"DROP DATABASE IF EXISTS {quoted}"


@contextmanager
def named_databases(admin_url: str, names: Iterable[str]) -> Iterator[dict[str, str]]:
    """Create empty databases with exactly these ``names`` on the server of ``admin_url``
    (PostgreSQL or MariaDB), yield ``{name: url}``, drop them all afterwards.

    Names may hold spaces, quotes, brackets, semicolons, ``%``, ``/``, ``?``, ``#`` and
    non-ASCII letters: they are quoted by the server's dialect, never pasted, and the
    statement goes to the driver as it is (``exec_driver_sql`` without parameters: through
    ``text()`` SQLAlchemy doubles each ``%`` for the driver's parameter style, and psycopg,
    given no parameters, keeps both, so ``50%`` was created as ``50%%``). Callers give them
    a unique prefix so parallel tests never meet.
    """
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    quote = admin.dialect.identifier_preparer.quote_identifier
    created: list[str] = []
    try:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f"CREATE DATABASE {quote(name)}")
                created.append(name)
        base = make_url(admin_url)
        yield {
            name: base.set(database=name).render_as_string(hide_password=False) for name in created
        }
    finally:
        with admin.connect() as conn:
            for name in created:
                conn.exec_driver_sql(_drop_sql(admin, quote(name)))
        admin.dispose()


@contextmanager
def fresh_mariadb_database(prefix: str = "pes_test") -> Iterator[str]:
    """Create an empty MariaDB database, yield its URL (PyMySQL), drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with named_databases(MARIADB_ADMIN_URL, [name]) as urls:
        yield urls[name]


def fresh_database(backend: str, sqlite_folder: Path) -> AbstractContextManager[str]:
    """A new empty database's URL on ``backend`` (``sqlite``, ``postgresql`` or ``mariadb``),
    dropped afterwards (a SQLite file in ``sqlite_folder`` is left to the test's folder)."""
    if backend == "postgresql":
        return fresh_postgres_database()
    if backend == "mariadb":
        return fresh_mariadb_database()
    return nullcontext(f"sqlite:///{sqlite_folder / 'practice.sqlite3'}")
