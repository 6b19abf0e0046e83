"""``init_practice_database`` (``db init``): all or nothing, names that differ only in
case on MariaDB, and SQLite files only their owner can read."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from actors.practice_schema import init_practice_database
from tests.servers import MARIADB_ADMIN_URL, fresh_database, named_databases


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.mark.mariadb
def test_two_mariadb_databases_differing_only_in_case_can_both_be_initialised() -> None:
    prefix = f"pes_test_{uuid.uuid4().hex[:8]}"
    with named_databases(MARIADB_ADMIN_URL, [f"{prefix}_Smile", f"{prefix}_smile"]) as urls:
        for url in urls.values():
            init_practice_database(url, practice_name="Smile Dental")
        assert all("email_service_diagnostics" in _tables(url) for url in urls.values())


def test_a_failed_init_leaves_no_table_it_created(empty_url: str) -> None:
    # Given a "practice" table of another shape (so the practice row cannot be written):
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE practice (other_column INTEGER)"))
    engine.dispose()
    with pytest.raises(Exception, match=r"(?i)column"):
        init_practice_database(empty_url, practice_name="Smile Dental")
    assert _tables(empty_url) == {"practice"}


def test_a_failed_init_of_a_new_sqlite_file_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "Smile Dental.sqlite3"
    with pytest.raises(Exception, match=r"(?i)constraint|null"):
        init_practice_database(f"sqlite:///{path}", practice_name=None)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_init_creates_a_sqlite_file_only_its_owner_can_read(tmp_path: Path) -> None:
    path = tmp_path / "Smile Dental.sqlite3"
    old = os.umask(0o022)  # the usual umask, under which SQLite would make it 0644
    try:
        init_practice_database(f"sqlite:///{path}", practice_name="Smile Dental")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for extra in tmp_path.glob("*.sqlite3-*"):  # -wal and -shm take the file's mode
        assert stat.S_IMODE(extra.stat().st_mode) == 0o600
