"""A SQLite practice file is left as its owner set it (issue 15, item 5): the service
never changes its journal mode, which persists in the file. A file in rollback mode
(``DELETE``, SQLite's default, and the only one that works on a network share) stays so
after the service has served it; a file ``db init`` made itself is in WAL mode."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from actors.database_selftest import DatabaseSelfTest
from actors.engines import default_engine
from actors.practice_schema import init_practice_database
from events.clock import FakeClock


def journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def test_a_practice_file_in_delete_mode_stays_so_after_the_service_served_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "Smile.sqlite3"
    owner = sqlite3.connect(path)  # the practice software made it, in rollback mode
    owner.execute("PRAGMA journal_mode=DELETE")
    owner.close()
    url = f"sqlite:///{path}"
    init_practice_database(url, practice_name="Smile")
    engine = default_engine(url)
    clock = FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    selftest = DatabaseSelfTest("Smile", url, 1, "SRV1", clock, lambda: engine)
    try:
        assert selftest.run().diagnostics == ()  # claims the fence and writes it
        assert selftest.run().diagnostics == ()
    finally:
        selftest.close()
        engine.dispose()
    assert journal_mode(path) == "delete"
    assert not Path(f"{path}-wal").exists()


def test_a_practice_file_db_init_made_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "Smile.sqlite3"
    init_practice_database(f"sqlite:///{path}", practice_name="Smile")
    assert journal_mode(path) == "wal"
