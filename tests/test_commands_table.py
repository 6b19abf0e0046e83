"""The command table on every backend: what the command reader polls all day, at the
driver's level, finds a workstation's restart, and a handled one is gone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from actors import commands_table
from actors.practice_db import make_engine
from actors.practice_schema import init_practice_database
from tests.servers import fresh_database


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(request.param, tmp_path) as url:
        init_practice_database(url, practice_name="Smile Dental")
        made = make_engine(url)
        try:
            yield made
        finally:
            made.dispose()


def test_a_restart_row_is_pending_until_claimed(engine: Engine) -> None:
    first = commands_table.request_restart(engine, "workstation:RECEPTION-1")
    second = commands_table.request_restart(engine, "cli:admin@server")
    assert commands_table.pending(engine) == [
        commands_table.CommandRow(first, "restart", "workstation:RECEPTION-1"),
        commands_table.CommandRow(second, "restart", "cli:admin@server"),
    ]
    assert commands_table.pending(engine, limit=1) == [
        commands_table.CommandRow(first, "restart", "workstation:RECEPTION-1")
    ]
    won = commands_table.claim(engine, [first, second], datetime.now(UTC), "restarting")
    assert won == [first, second]
    assert commands_table.pending(engine) == []
    assert commands_table.claim(engine, [first], datetime.now(UTC), "again") == []
