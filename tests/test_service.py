"""The real process on real SQLite practice databases: serve, stop, restart commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from actors import commands_table, practice_db
from actors.engines import EngineRegistry, UnknownDatabaseError
from actors.fence import StaleIncarnationError
from actors.practice_schema import init_practice_database
from config import Settings, load_settings
from events.sql_store import SqlEventStore
from events.store import read_all
from events.types import (
    MailboxStarted,
    MailboxStopped,
    RestartRequested,
    SelfTestPassed,
    ServiceStarted,
    ServiceStopping,
)
from supervisor import discovery, exit_codes
from supervisor.service import Tree, start_tree, stop_tree


def make_practices(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        init_practice_database(f"sqlite:///{folder / (name + '.sqlite3')}", practice_name=name)


def settings_for(tmp_path: Path) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "service.event_store": f"sqlite:///{tmp_path / 'events.sqlite3'}",
            "databases.server_url": f"sqlite:///{tmp_path / 'practices'}",
            "health.checkin_seconds": 3.0,
            "mail.io_timeout_seconds": 3.0,
        },
    )


def wait_for_events(store: SqlEventStore, match, count: int = 1, timeout: float = 20.0) -> list:  # type: ignore[no-untyped-def]
    """Block on the log until ``count`` events match (no sleeping: it waits for appends)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in read_all(store) if match(r)]
        if len(found) >= count:
            return found
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"only {len(found)} of {count} events within {timeout} s")
        store.wait_for_append(store.last_seq(), min(remaining, 1.0))


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    make_practices(tmp_path / "practices", "Smile Dental", "O'Brien Dental", "Demo Practice")
    t = start_tree(settings_for(tmp_path))
    yield t
    stop_tree(t, "test over")


def test_the_real_tree_serves_every_eligible_sqlite_database(tree: Tree) -> None:
    passed = wait_for_events(tree.store, lambda r: isinstance(r.event, SelfTestPassed), count=2)
    assert sorted(r.stream for r in passed[:2]) == ["db:O'Brien Dental", "db:Smile Dental"]


def test_three_command_rows_make_one_restart_and_are_each_handled_once(
    tree: Tree, tmp_path: Path
) -> None:
    wait_for_events(tree.store, lambda r: isinstance(r.event, SelfTestPassed), count=2)
    engine = practice_db.make_engine(f"sqlite:///{tmp_path / 'practices' / 'Smile Dental.sqlite3'}")
    try:
        ids = [commands_table.request_restart(engine, f"RECEPTION-{n}") for n in range(3)]
        [requested] = wait_for_events(tree.store, lambda r: isinstance(r.event, RestartRequested))
        wait_for_events(
            tree.store,
            lambda r: r.stream == "db:Smile Dental" and r.event == SelfTestPassed(2, ("database",)),
        )
        outcomes = [commands_table.outcome_of(engine, i) for i in ids]
    finally:
        engine.dispose()
    assert requested.event == RestartRequested("workstation", "RECEPTION-0", ids[0])
    assert all(handled_at is not None for handled_at, _ in outcomes)
    assert (
        outcomes[0][1] == "restarting the email service for this database (3 requests, one restart)"
    )
    starts = [
        r
        for r in read_all(tree.store)
        if r.stream == "db:Smile Dental" and isinstance(r.event, MailboxStarted)
    ]
    assert [r.event.incarnation for r in starts] == [1, 2]


def test_a_claimed_command_is_not_claimed_again(tmp_path: Path) -> None:
    make_practices(tmp_path, "Smile")
    engine = practice_db.make_engine(f"sqlite:///{tmp_path / 'Smile.sqlite3'}")
    try:
        command = commands_table.request_restart(engine, "RECEPTION")
        first = commands_table.claim(engine, [command], datetime.now(UTC), "done")
        second = commands_table.claim(engine, [command], datetime.now(UTC), "again")
        assert (first, second) == ([command], [])
        assert commands_table.outcome_of(engine, command)[1] == "done"
    finally:
        engine.dispose()


def test_serve_stops_cleanly_on_sigterm_within_ten_seconds(tmp_path: Path) -> None:
    make_practices(tmp_path / "practices", "Smile Dental", "Harbour Dental")
    config = tmp_path / "service.toml"
    config.write_text(
        f'[service]\nevent_store = "sqlite:///{tmp_path / "events.sqlite3"}"\n'
        f'[databases]\nserver_url = "sqlite:///{tmp_path / "practices"}"\n'
        '[http]\nlisten = "127.0.0.1:0"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "--config", str(config), "serve"],
        stderr=subprocess.PIPE,
        text=True,
    )
    store = SqlEventStore(f"sqlite:///{tmp_path / 'events.sqlite3'}")
    try:
        wait_for_events(store, lambda r: isinstance(r.event, SelfTestPassed), count=2)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        took = time.monotonic() - started
        log = [r.event for r in read_all(store)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        store.close()
    assert proc.returncode == exit_codes.OK, err
    assert took < 10
    assert isinstance(log[0], ServiceStarted)
    assert ServiceStopping("SIGTERM") in log
    assert sum(isinstance(e, MailboxStopped) for e in log) == 2
    assert "Traceback" not in err


def test_serve_with_a_bad_setting_says_which_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "EMAIL_SERVICE_HEALTH_CHECKIN_SECONDS": "-1"}
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor.cli", "serve"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=30,
    )
    assert proc.returncode == exit_codes.CONFIG
    assert proc.stderr.count("\n") == 1
    assert "health.checkin_seconds" in proc.stderr


def test_the_practice_fence_and_the_log_fence_raise_one_error(tmp_path: Path) -> None:
    make_practices(tmp_path, "Smile")
    engine = practice_db.make_engine(f"sqlite:///{tmp_path / 'Smile.sqlite3'}")
    try:
        practice_db.claim_incarnation(engine, 2, "SRV1", datetime.now(UTC))
        with pytest.raises(StaleIncarnationError) as raised:
            practice_db.claim_incarnation(engine, 1, "SRV1", datetime.now(UTC))
    finally:
        engine.dispose()
    assert practice_db.StaleIncarnationError is StaleIncarnationError
    assert (raised.value.incarnation, raised.value.stored) == (1, 2)


def test_a_database_has_one_engine_until_it_is_forgotten(tmp_path: Path) -> None:
    make_practices(tmp_path, "Smile")
    engines = EngineRegistry()
    engines.serve("Smile", f"sqlite:///{tmp_path / 'Smile.sqlite3'}")
    first = engines.get("Smile")
    assert engines.get("Smile") is first
    engines.forget("Smile")
    with pytest.raises(UnknownDatabaseError):
        engines.get("Smile")


def test_the_rescan_gets_a_served_databases_engine_only_at_its_served_url(
    tmp_path: Path,
) -> None:
    make_practices(tmp_path, "Smile")
    url = f"sqlite:///{tmp_path / 'Smile.sqlite3'}"
    engines = EngineRegistry()
    assert engines.served_engine("Smile", url) is None  # not served
    engines.serve("Smile", url)
    try:
        assert engines.served_engine("Smile", url) is engines.get("Smile")
        assert engines.served_engine("Smile", url + "-moved") is None
    finally:
        engines.close()


def test_a_served_database_that_lost_its_practice_table_is_no_longer_a_practice(
    tmp_path: Path,
) -> None:
    make_practices(tmp_path, "Smile")
    url = f"sqlite:///{tmp_path / 'Smile.sqlite3'}"
    engines = EngineRegistry()
    engines.serve("Smile", url)
    try:
        with engines.get("Smile").begin() as conn:
            conn.exec_driver_sql("DROP TABLE practice")
        [info] = discovery.discover(
            f"sqlite:///{tmp_path}",
            server_id="SRV1",
            genuine_server_check=False,
            open_engine=engines.served_engine,
        )
        assert (info.is_practice, info.eligibility.eligible, info.error) == (False, False, None)
    finally:
        engines.close()


def test_a_restart_keeps_the_databases_engine(tree: Tree, tmp_path: Path) -> None:
    wait_for_events(tree.store, lambda r: isinstance(r.event, SelfTestPassed), count=2)
    engine = tree.engines.get("Smile Dental")
    commands_table.request_restart(engine, "RECEPTION")
    wait_for_events(
        tree.store,
        lambda r: r.stream == "db:Smile Dental" and r.event == SelfTestPassed(2, ("database",)),
    )
    assert tree.engines.get("Smile Dental") is engine
