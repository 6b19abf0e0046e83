"""Many practice databases on one real server, reached by a login of their own.

For the connection-budget tests and ``bench/supervision.py --server``: a new login (a
PostgreSQL role, a MariaDB user) with an optional connection limit, N eligible practice
databases it owns, and a count of that login's connections as the server sees them
(``pg_stat_activity`` / ``information_schema.processlist``), so only this test's service
is counted while other tests use the same server. Everything is dropped afterwards.

PostgreSQL: one practice database is initialised as the login (so it owns every table),
marked a template, and copied with ``CREATE DATABASE ... TEMPLATE`` (a few ms each).
MariaDB has no templates: the schema's DDL runs in each database, a few at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from actors.practice_schema import init_practice_database
from tests.servers import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL, server_url


@dataclass
class ManyPractices:
    """What ``many_practices`` made: the login's server URL and the databases' names."""

    backend: str
    login: str
    server_url: str
    names: list[str]
    admin: Engine = field(repr=False)

    def connections(self) -> int:
        """The login's connections open on the server now (the service's, in a test)."""
        with self.admin.connect() as conn:
            if self.backend == "postgresql":
                sql = "SELECT count(*) FROM pg_stat_activity WHERE usename = :login"
            else:
                sql = "SELECT count(*) FROM information_schema.processlist WHERE user = :login"
            return int(conn.execute(text(sql), {"login": self.login}).scalar_one())

    def set_connection_limit(self, limit: int | None) -> None:
        """Change the login's connection limit (None: no limit of its own)."""
        with self.admin.connect() as conn:
            if self.backend == "postgresql":
                n = -1 if limit is None else limit
                conn.execute(text(f'ALTER ROLE "{self.login}" CONNECTION LIMIT {n}'))
            else:
                n = 0 if limit is None else limit
                conn.execute(text(f"ALTER USER '{self.login}'@'%' WITH MAX_USER_CONNECTIONS {n}"))

    def login_url(self, database: str | None = None) -> str:
        """A URL as the login (to ``database``, or the server's listing database)."""
        url = make_url(self.server_url)
        if database is None:
            database = "postgres" if self.backend == "postgresql" else None
        return url.set(database=database).render_as_string(hide_password=False)


def _admin_url(backend: str) -> str:
    return POSTGRES_ADMIN_URL if backend == "postgresql" else MARIADB_ADMIN_URL


@contextmanager
def many_practices(
    backend: str, n: int, *, connection_limit: int | None = None, workers: int = 4
) -> Iterator[ManyPractices]:
    """Create a login and ``n`` eligible practice databases it owns on ``backend``
    (``postgresql`` or ``mariadb``); yield them; drop them and the login afterwards."""
    tag = f"pes_budget_{uuid.uuid4().hex[:10]}"
    admin = create_engine(_admin_url(backend), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    names = [f"{tag}_{i:04d}" for i in range(1, n + 1)]
    base = make_url(server_url(_admin_url(backend))).set(username=tag)
    made = ManyPractices(backend, tag, base.render_as_string(hide_password=False), names, admin)
    created: list[str] = []
    try:
        with admin.connect() as conn:
            if backend == "postgresql":
                conn.execute(text(f'CREATE ROLE "{tag}" LOGIN'))
            else:
                conn.execute(text(f"CREATE USER '{tag}'@'%'"))
                conn.execute(text(f"GRANT ALL ON `{tag}\\_%`.* TO '{tag}'@'%'"))
        if backend == "postgresql":
            template = f"{tag}_template"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{template}" OWNER "{tag}"'))
            created.append(template)
            init_practice_database(made.login_url(template), practice_name="Template")
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{template}" IS_TEMPLATE true'))
                for name in names:
                    conn.execute(
                        text(f'CREATE DATABASE "{name}" TEMPLATE "{template}" OWNER "{tag}"')
                    )
                    created.append(name)
        else:
            with admin.connect() as conn:
                for name in names:
                    conn.execute(text(f"CREATE DATABASE `{name}`"))
                    created.append(name)
            with ThreadPoolExecutor(workers) as pool:
                list(
                    pool.map(
                        lambda name: init_practice_database(
                            made.login_url(name), practice_name=name
                        ),
                        names,
                    )
                )
        made.set_connection_limit(connection_limit)
        yield made
    finally:
        with admin.connect() as conn:
            if backend == "postgresql":
                for name in reversed(created):
                    if name.endswith("_template"):
                        conn.execute(text(f'ALTER DATABASE "{name}" IS_TEMPLATE false'))
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'DROP ROLE IF EXISTS "{tag}"'))
            else:
                for name in created:
                    conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
                conn.execute(text(f"DROP USER IF EXISTS '{tag}'@'%'"))
        admin.dispose()
