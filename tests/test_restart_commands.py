"""Restart commands are never lost and never doubled (issue 12, item 3).

- 200 parallel POSTs to ``/api/databases/{name}/restart`` leave one waiting row, on
  SQLite, PostgreSQL and MariaDB (the real HTTP server and status source);
- a row is marked handled (by the database's clock) only after its ``RestartRequested``
  is in the log, and a row read again whose event the log already holds (the process
  died between the two) is only marked: no second event, no second restart.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from actors import commands_table, practice_db
from actors.command_reader import CommandReaderActor, CommandReaderDeps, Watch
from actors.messages import Rescan
from actors.practice_schema import email_service_commands, init_practice_database, utcnow
from events.store import ANY
from events.types import MailboxStarted, RestartRequested, SelfTestPassed, stream_for
from supervisor.http.app import create_app
from supervisor.http.server import HttpServer
from supervisor.http.source import PracticeStatusSource
from tests.mail_helpers import wait_until
from tests.servers import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL, named_databases, server_url
from tests.tree_harness import Harness

POSTS = 200
SERVER_ID = "SRV-I12"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def practice(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """``(server_url, database name, database url)`` of one practice registered to us."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'Smile.sqlite3'}"
        init_practice_database(url, practice_name="Smile", registered_server=SERVER_ID)
        yield f"sqlite:///{tmp_path}", "Smile", url
        return
    admin = POSTGRES_ADMIN_URL if request.param == "postgresql" else MARIADB_ADMIN_URL
    name = f"pes_i12_{tmp_path.name[-12:].replace('-', '_').lower()}"
    with named_databases(admin, [name]) as urls:
        init_practice_database(urls[name], practice_name="Smile", registered_server=SERVER_ID)
        yield server_url(admin), name, urls[name]


def post(base: str, name: str) -> dict[str, Any]:
    quoted = urllib.request.quote(name, safe="")
    req = urllib.request.Request(f"{base}/api/databases/{quoted}/restart", method="POST")
    with urllib.request.urlopen(req, timeout=60) as response:
        assert response.status == 202
        result: dict[str, Any] = json.loads(response.read())
        return result


def test_parallel_restart_posts_leave_one_waiting_row(practice: tuple[str, str, str]) -> None:
    server, name, url = practice
    source = PracticeStatusSource(
        server,
        server_id=SERVER_ID,
        genuine_server_check=True,
        grace=timedelta(seconds=15),
        tree_up=lambda: True,
        metrics_text=lambda: "",
        list_seconds=600.0,
    )
    http = HttpServer(create_app(source), "127.0.0.1", 0)
    http.start()
    try:
        base = http.url.rstrip("/")
        with ThreadPoolExecutor(max_workers=24) as pool:
            answers = list(pool.map(lambda _: post(base, name), range(POSTS)))
    finally:
        http.stop()
    engine = practice_db.make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(email_service_commands)).scalar()
    finally:
        engine.dispose()
    assert rows == 1
    assert len({a["command_id"] for a in answers}) == 1
    assert sum(not a["coalesced"] for a in answers) == 1


# --- the command reader and the supervisor, on a fake clock, over a real SQLite file ------


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[Harness, Any]]:
    url = f"sqlite:///{tmp_path / 'Smile.sqlite3'}"
    init_practice_database(url, practice_name="Smile")
    engine = practice_db.make_engine(url)
    h = Harness()
    h.add("Smile")
    yield h, engine
    h.stop()
    engine.dispose()


def start_reader(h: Harness, engine: Any) -> None:
    assert h.supervisor is not None
    deps = CommandReaderDeps(h.clock, h.scheduler, 5.0, h.supervisor, lambda _db: engine)
    CommandReaderActor.start(deps).tell(Watch("Smile"))
    h.settle()


def test_a_row_is_marked_handled_by_the_database_clock_after_its_event(
    tree: tuple[Harness, Any],
) -> None:
    h, engine = tree
    h.start()
    start_reader(h, engine)
    command = commands_table.request_restart(engine, "RECEPTION")
    h.advance(5.0)
    wait_until(lambda: commands_table.outcome_of(engine, command)[0] is not None, "the mark")
    with engine.connect() as conn:
        db_now = conn.execute(select(utcnow())).scalar_one()
    handled_at, outcome = commands_table.outcome_of(engine, command)
    assert handled_at is not None
    assert abs(db_now - handled_at) < timedelta(minutes=1)
    assert outcome == "restarting the email service for this database"
    assert h.events("Smile", RestartRequested) == [
        RestartRequested("workstation", "RECEPTION", command)
    ]
    h.wait_event("Smile", SelfTestPassed, incarnation=2)


def test_a_row_whose_event_is_logged_already_is_only_marked(tree: tuple[Harness, Any]) -> None:
    h, engine = tree
    command = commands_table.request_restart(engine, "RECEPTION")
    # The process that logged it died before it marked the row.
    h.store.append(
        stream_for("Smile"), ANY, [RestartRequested("workstation", "RECEPTION", command)]
    )
    h.start()
    start_reader(h, engine)
    h.advance(5.0)
    wait_until(lambda: commands_table.outcome_of(engine, command)[0] is not None, "the mark")
    h.advance(1.0)
    assert len(h.events("Smile", RestartRequested)) == 1
    assert [e.incarnation for e in h.events("Smile", MailboxStarted)] == [1]


def test_a_row_stays_unhandled_while_its_event_is_not_logged(tree: tuple[Harness, Any]) -> None:
    h, engine = tree
    h.start()
    h.databases.clear()  # the supervisor stops serving it: it logs no request for it
    assert h.supervisor is not None
    h.supervisor.tell(Rescan())
    h.settle()
    start_reader(h, engine)
    command = commands_table.request_restart(engine, "RECEPTION")
    h.advance(15.0)
    assert commands_table.outcome_of(engine, command) == (None, None)
    assert h.events("Smile", RestartRequested) == []
