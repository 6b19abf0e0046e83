"""``tests.servers.named_databases`` makes databases with exactly the names asked for, on
PostgreSQL and MariaDB, and its URLs reach them: a name with ``%`` is not doubled."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.servers import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL, named_databases

CURRENT = {"postgresql": "SELECT current_database()", "mysql": "SELECT database()"}


@pytest.mark.parametrize("admin_url", [POSTGRES_ADMIN_URL, MARIADB_ADMIN_URL])
@pytest.mark.parametrize("suffix", ["50%", "100%% sure", "a/b?c#d"])
def test_a_name_round_trips_through_the_server_and_the_url(admin_url: str, suffix: str) -> None:
    name = f"pes_names_{uuid.uuid4().hex[:8]}_{suffix}"
    with named_databases(admin_url, [name]) as urls:
        engine = create_engine(urls[name], poolclass=NullPool)
        try:
            with engine.connect() as conn:
                found = conn.exec_driver_sql(CURRENT[engine.dialect.name]).scalar()
        finally:
            engine.dispose()
    assert found == name


def test_the_databases_are_dropped_afterwards() -> None:
    name = f"pes_names_{uuid.uuid4().hex[:8]}_50%"
    with named_databases(POSTGRES_ADMIN_URL, [name]):
        pass
    admin = create_engine(POSTGRES_ADMIN_URL, poolclass=NullPool)
    try:
        with admin.connect() as conn:
            left = conn.execute(
                text("SELECT count(*) FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar_one()
    finally:
        admin.dispose()
    assert left == 0
