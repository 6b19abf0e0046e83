"""One service per event log and per databases (issue 12, item 4), with real ``serve``
processes: a second one on this host refuses before it touches any database, in one
line naming the first, with ``exit_codes.ALREADY_RUNNING``; and two processes of one
``server_id`` checking in to one database are reported, as two different ones are."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from actors import checkins_table, practice_db
from actors.checkin_writer import CheckInWriter
from actors.checkins_table import NEWEST_CHECKINS
from actors.practice_db import claim_incarnation, same_service
from actors.practice_schema import email_service_mailbox
from events.clock import SystemClock
from events.projections.health import DbHealth, HealthStatus
from events.sql_store import SqlEventStore
from events.store import read_all
from events.types import SelfTestPassed, ServiceStarted
from supervisor import exit_codes
from supervisor.instance_lock import instance_name
from supervisor.status_rule import CheckIn, status_of
from supervisor.workstation_view import read_status
from tests.mail_helpers import wait_until
from tests.servers import fresh_postgres_database
from tests.test_service import make_practices, wait_for_events


def config(path: Path, store_url: str, folder: Path) -> Path:
    path.write_text(
        f'[service]\nserver_id = "SRV1"\nevent_store = "{store_url}"\n'
        f'[databases]\nserver_url = "sqlite:///{folder}"\n'
        "[health]\ncheckin_seconds = 1.0\n[mail]\nio_timeout_seconds = 1.0\n"
        '[http]\nlisten = "127.0.0.1:0"\n'
    )
    return path


def serve(config_file: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "--config", str(config_file), "serve"],
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def first(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, str]]:
    """A running ``serve`` over one SQLite practice: the process, the folder, the log URL."""
    folder = tmp_path / "practices"
    make_practices(folder, "Smile Dental")
    store_url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    proc = serve(config(tmp_path / "first.toml", store_url, folder))
    store = SqlEventStore(store_url)
    try:
        wait_for_events(store, lambda r: isinstance(r.event, SelfTestPassed))
        yield proc, folder, store_url
    finally:
        store.close()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def fence_row(folder: Path) -> tuple[int, str]:
    engine = practice_db.make_engine(f"sqlite:///{folder / 'Smile Dental.sqlite3'}")
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(email_service_mailbox.c.incarnation, email_service_mailbox.c.server_name)
            ).one()
    finally:
        engine.dispose()
    return int(row.incarnation), str(row.server_name)


def refused(proc: subprocess.Popen[str]) -> str:
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == exit_codes.ALREADY_RUNNING, err
    [line] = [line for line in err.splitlines() if "another email service" in line]
    assert err.rstrip().endswith(line), err  # the last word, in one line
    return line


def test_a_second_serve_on_the_same_log_and_databases_refuses_naming_the_first(
    first: tuple[subprocess.Popen[str], Path, str], tmp_path: Path
) -> None:
    proc, folder, store_url = first
    before = fence_row(folder)
    err = refused(serve(config(tmp_path / "second.toml", store_url, folder)))
    assert f"pid {proc.pid} on " in err
    assert "events.sqlite3.lock" in err
    assert fence_row(folder) == before  # no database touched
    store = SqlEventStore(store_url)
    try:
        started = [r for r in read_all(store) if isinstance(r.event, ServiceStarted)]
    finally:
        store.close()
    assert [r.event.pid for r in started] == [proc.pid]


def test_a_second_serve_with_its_own_log_refuses_the_same_databases(
    first: tuple[subprocess.Popen[str], Path, str], tmp_path: Path
) -> None:
    proc, folder, _ = first
    before = fence_row(folder)
    other_log = f"sqlite:///{tmp_path / 'other-events.sqlite3'}"
    err = refused(serve(config(tmp_path / "second.toml", other_log, folder)))
    assert f"pid {proc.pid} on " in err
    assert ".email-service.lock" in err
    assert fence_row(folder) == before


def test_a_second_serve_on_the_same_postgresql_log_refuses_naming_the_first(
    tmp_path: Path,
) -> None:
    with fresh_postgres_database() as log_url:
        folders = [tmp_path / "a", tmp_path / "b"]
        for folder in folders:
            make_practices(folder, "Smile Dental")
        proc = serve(config(tmp_path / "first.toml", log_url, folders[0]))
        store = SqlEventStore(log_url)
        try:
            wait_for_events(store, lambda r: isinstance(r.event, SelfTestPassed))
            err = refused(serve(config(tmp_path / "second.toml", log_url, folders[1])))
        finally:
            store.close()
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=20)
        assert f"email-service pid {proc.pid} on " in err
        assert "advisory lock" in err


def test_two_processes_of_one_server_id_checking_in_are_two_services(tmp_path: Path) -> None:
    # As two hosts with the same server_id would: each writes its own check-ins.
    make_practices(tmp_path, "Smile Dental")
    url = f"sqlite:///{tmp_path / 'Smile Dental.sqlite3'}"
    engine = practice_db.make_engine(url)
    try:
        claim_incarnation(engine, 1, "SRV1", SystemClock().now())
        writers = [
            CheckInWriter(
                lambda: engine,
                server_name="SRV1",
                service_instance=f"host-{n} pid 1 start 0000000{n}",
                service_version="test",
                interval_seconds=15.0,
                clock=SystemClock(),
            )
            for n in "ab"
        ]
        for _ in range(3):
            for writer in writers:
                writer.write(DbHealth(HealthStatus.RUNNING), incarnation=1)
        status = read_status("Smile Dental", url, timedelta(seconds=15))
    finally:
        engine.dispose()
    assert not status.status.running
    assert status.status.two_services == (
        "SRV1 (host-a pid 1 start 0000000a)",
        "SRV1 (host-b pid 1 start 0000000b)",
    )


def checkin_rows(url: str) -> list[CheckIn]:
    """Every check-in in the database, oldest first."""
    engine = practice_db.make_engine(url)
    try:
        with engine.connect() as conn:
            return checkins_table.newest_checkins(conn, limit=1_000_000)[::-1]
    finally:
        engine.dispose()


def test_a_restarted_serve_is_one_service_at_every_checkin(tmp_path: Path) -> None:
    # A real restart: new pid, same server_id. The contract's server_name is the same for
    # both starts (so the practice software's own two-names rule stays quiet), and the
    # status rule, judged as of each check-in, never says "two services".
    folder = tmp_path / "practices"
    make_practices(folder, "Smile Dental")
    url = f"sqlite:///{folder / 'Smile Dental.sqlite3'}"
    store_url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    conf = config(tmp_path / "service.toml", store_url, folder)
    for _start in range(2):
        before = {c.service_instance for c in checkin_rows(url)}

        def three_of_this_start(before: set[str | None] = before) -> bool:
            return sum(c.service_instance not in before for c in checkin_rows(url)) >= 3

        proc = serve(conf)
        try:
            wait_until(three_of_this_start, "three check-ins of this start", timeout=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=20)
    rows = checkin_rows(url)
    assert {r.server_name for r in rows} == {"SRV1"}
    assert len({r.service_instance for r in rows}) == 2
    for n in range(1, len(rows) + 1):
        newest_first = rows[:n][::-1][:NEWEST_CHECKINS]
        status = status_of(newest_first, newest_first[0].checked_in_at, timedelta(0))
        assert status.two_services == (), rows[n - 1]


def test_a_later_start_on_the_same_host_is_the_same_fence_holder_another_host_is_not() -> None:
    mine = instance_name("SRV1")
    host = socket.gethostname()
    assert mine.startswith(f"SRV1 ({host} pid ")
    assert same_service(mine, f"SRV1 ({host} pid 1 start 00000000)")
    assert not same_service(mine, "SRV1 (elsewhere pid 1 start 00000000)")
    assert not same_service(mine, f"SRV2 ({host} pid 1 start 00000000)")
