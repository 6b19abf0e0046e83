"""The check-in writer against real databases: SQLite, PostgreSQL and MariaDB.

A plain check-in of a live incarnation is one fenced ``INSERT ... SELECT`` with both times
from the database server's clock (``utcnow``, ``utcnow_plus``); a replaced incarnation
writes nothing; diagnostic lines only with a failure or a recovery. Also the self-test's
``CheckInStep``, which turns a write that failed into a database diagnostic.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from actors import checkins_table
from actors.checkin_writer import CheckInWriter, prune_checkins
from actors.database_selftest import DatabaseSelfTest
from actors.fence import StaleIncarnationError
from actors.mail.steps import CheckInStep
from actors.mailbox_work import SelfTestWork, WorkContext
from actors.practice_db import claim_incarnation, make_engine
from actors.practice_schema import (
    email_service_checkins,
    email_service_diagnostics,
    init_practice_database,
    utcnow,
    utcnow_plus,
)
from actors.selftest import SelfTestResult
from events.clock import FakeClock
from events.projections.health import DbHealth, HealthStatus
from events.types import Diagnostic, Event, SelfTestFailed, SelfTestPassed
from supervisor.discovery import discover
from tests.servers import fresh_database

INTERVAL = 15.0
INCARNATION = 3
INSTANCE = "host-a pid 1 start 0000000a"
WRONG_CLOCK = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
"""The writer's clock: far from the server's, so a time taken from it shows."""

SMTP_DOWN = (Diagnostic("smtp", "error", "535 5.7.8 Authentication credentials invalid"),)
RUNNING = DbHealth(HealthStatus.RUNNING)
FAILING = DbHealth(HealthStatus.FAILING, last_failure=SMTP_DOWN)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A new practice database on each backend, ``INCARNATION`` claimed."""
    with fresh_database(request.param, tmp_path) as url:
        init_practice_database(url, practice_name="Smile Dental")
        made = make_engine(url)
        try:
            claim_incarnation(made, INCARNATION, "SRV1", datetime.now(UTC))
            yield made
        finally:
            made.dispose()


def writer_for(
    engine: Engine,
    clock: FakeClock | None = None,
    *,
    keep_days: float | None = None,
    first_prune_after: float = 0.0,
) -> CheckInWriter:
    return CheckInWriter(
        lambda: engine,
        server_name="SRV1",
        service_version="1.2.3",
        service_instance=INSTANCE,
        interval_seconds=INTERVAL,
        clock=clock or FakeClock(WRONG_CLOCK),
        keep_days=keep_days,
        first_prune_after=first_prune_after,
    )


def server_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        value = conn.execute(select(utcnow())).scalar_one()
    return value if isinstance(value, datetime) else datetime.fromisoformat(value[:26])


def checkin_rows(engine: Engine) -> list[dict[str, Any]]:
    t = email_service_checkins
    with engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.id)).all()
    return [dict(r._mapping) for r in rows]


def diagnostic_lines(engine: Engine) -> list[tuple[str, str, str]]:
    t = email_service_diagnostics
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.level, t.c.component, t.c.message).order_by(t.c.id)).all()
    return [(r.level, r.component, r.message) for r in rows]


# --- utcnow_plus --------------------------------------------------------------------------


def test_utcnow_plus_is_the_servers_now_plus_the_seconds_in_one_statement(engine: Engine) -> None:
    with engine.connect() as conn:
        now, later = conn.execute(select(utcnow(), utcnow_plus(90.25))).one()
    if isinstance(now, str):  # SQLite gives back the text it computed
        now, later = datetime.fromisoformat(now[:26]), datetime.fromisoformat(later[:26])
    assert later - now == timedelta(seconds=90.25)


# --- the fenced plain check-in ------------------------------------------------------------


def test_a_plain_checkin_takes_both_times_from_the_database_server(engine: Engine) -> None:
    before = server_now(engine)
    assert writer_for(engine).write(RUNNING, incarnation=INCARNATION)
    after = server_now(engine)
    [row] = checkin_rows(engine)
    assert before <= row["checked_in_at"] <= after
    assert row["next_checkin_due_at"] - row["checked_in_at"] == timedelta(seconds=INTERVAL)


def test_a_plain_checkin_writes_what_the_contract_names(engine: Engine) -> None:
    writer_for(engine).write(RUNNING, incarnation=INCARNATION)
    [row] = checkin_rows(engine)
    assert (bool(row["ok"]), row["summary"], row["server_name"], row["service_version"]) == (
        True,
        "",
        "SRV1",
        "1.2.3",
    )


def test_a_checkin_names_its_start_beside_the_server_name(engine: Engine) -> None:
    writer_for(engine).write(RUNNING, incarnation=INCARNATION)  # plain, fenced
    writer_for(engine).write(FAILING, incarnation=INCARNATION)  # with lines
    rows = checkin_rows(engine)
    assert [(r["server_name"], r["service_instance"]) for r in rows] == [("SRV1", INSTANCE)] * 2


def test_each_call_writes_exactly_one_checkin(engine: Engine) -> None:
    writer = writer_for(engine)
    for _ in range(3):
        writer.write(RUNNING, incarnation=INCARNATION)
    assert len(checkin_rows(engine)) == 3


def test_a_plain_checkin_has_no_diagnostic_lines(engine: Engine) -> None:
    writer_for(engine).write(RUNNING, incarnation=INCARNATION)
    assert diagnostic_lines(engine) == []


def test_a_replaced_incarnation_is_refused_and_writes_nothing(engine: Engine) -> None:
    claim_incarnation(engine, INCARNATION + 1, "SRV1", datetime.now(UTC))
    with pytest.raises(StaleIncarnationError):
        writer_for(engine).write(RUNNING, incarnation=INCARNATION)
    assert checkin_rows(engine) == []


def test_a_replaced_incarnation_cannot_write_a_failed_checkin_either(engine: Engine) -> None:
    claim_incarnation(engine, INCARNATION + 1, "SRV1", datetime.now(UTC))
    with pytest.raises(StaleIncarnationError):
        writer_for(engine).write(FAILING, incarnation=INCARNATION)
    assert (checkin_rows(engine), diagnostic_lines(engine)) == ([], [])


# --- check-ins with lines -----------------------------------------------------------------


def test_a_failed_checkin_carries_the_self_tests_lines(engine: Engine) -> None:
    writer_for(engine).write(FAILING, incarnation=INCARNATION)
    [row] = checkin_rows(engine)
    assert (bool(row["ok"]), row["summary"]) == (
        False,
        "Sending (SMTP): 535 5.7.8 Authentication credentials invalid",
    )
    assert diagnostic_lines(engine) == [
        ("error", "smtp", "535 5.7.8 Authentication credentials invalid")
    ]


def test_a_failed_checkin_takes_its_times_from_the_database_server(engine: Engine) -> None:
    before = server_now(engine)
    writer_for(engine).write(FAILING, incarnation=INCARNATION)
    after = server_now(engine)
    [row] = checkin_rows(engine)
    assert before <= row["checked_in_at"] <= after
    assert row["next_checkin_due_at"] - row["checked_in_at"] == timedelta(seconds=INTERVAL)


def test_the_first_ok_checkin_after_a_failure_says_how_long_it_lasted(engine: Engine) -> None:
    writer = writer_for(engine)
    writer.write(FAILING, incarnation=INCARNATION)
    writer.write(RUNNING, incarnation=INCARNATION)
    recovery = diagnostic_lines(engine)[1:]
    assert [(level, component) for level, component, _ in recovery] == [("info", "service")]
    assert recovery[0][2].startswith("Email was not available for ")


def test_the_recovery_line_is_written_once(engine: Engine) -> None:
    writer = writer_for(engine)
    writer.write(FAILING, incarnation=INCARNATION)
    for _ in range(3):
        writer.write(RUNNING, incarnation=INCARNATION)
    assert len(diagnostic_lines(engine)) == 2  # the failure's line and one recovery line


def test_after_unreachable_the_next_ok_checkin_has_the_recovery_line(engine: Engine) -> None:
    writer = writer_for(engine)
    writer.unreachable()
    writer.write(RUNNING, incarnation=INCARNATION)
    [line] = diagnostic_lines(engine)
    assert line[:2] == ("info", "service")
    assert line[2].startswith("Email was not available for ")


def test_a_new_writer_after_failed_checkins_writes_the_recovery_line(engine: Engine) -> None:
    # Given a crashed mailbox's failed check-ins (the projector's, unfenced),
    crashed = DbHealth(
        HealthStatus.CRASHED, last_failure=(Diagnostic("service", "error", "crashed"),)
    )
    writer_for(engine).write(crashed, incarnation=None)
    # when the next incarnation's own writer checks in ok,
    writer_for(engine).write(RUNNING, incarnation=INCARNATION)
    # then that check-in says how long email was not available.
    newest = checkin_rows(engine)[-1]
    t = email_service_diagnostics
    with engine.connect() as conn:
        lines = conn.execute(select(t.c.message).where(t.c.checkin_id == newest["id"])).all()
    assert [m for (m,) in lines if m.startswith("Email was not available for ")] != []


# --- a database that does not answer ------------------------------------------------------


def test_a_database_that_does_not_answer_gives_false_and_a_masked_reason(tmp_path: Path) -> None:
    url = "postgresql+psycopg://pes:s3cret-pw@127.0.0.1:1/practice"
    broken = make_engine(url, timeout=2)
    writer = CheckInWriter(
        lambda: broken,
        server_name="SRV1",
        service_version="1.2.3",
        interval_seconds=INTERVAL,
        clock=FakeClock(),
        url=url,
    )
    try:
        assert writer.write(RUNNING, incarnation=INCARNATION) is False
    finally:
        broken.dispose()
    assert writer.last_error != ""
    assert "s3cret-pw" not in writer.last_error


def test_last_error_is_cleared_by_the_next_write_that_lands(engine: Engine) -> None:
    answers = [False]

    def flaky() -> Engine:
        if not answers[0]:
            answers[0] = True
            return make_engine("sqlite:////nonexistent-folder/practice.db")
        return engine

    writer = CheckInWriter(
        flaky, server_name="SRV1", service_version="1", interval_seconds=INTERVAL, clock=FakeClock()
    )
    writer.write(RUNNING, incarnation=INCARNATION)
    assert writer.write(RUNNING, incarnation=INCARNATION)
    assert writer.last_error == ""


def test_only_a_written_checkin_is_reported_as_written(engine: Engine) -> None:
    written: list[str] = []
    writer = CheckInWriter(
        lambda: engine,
        server_name="SRV1",
        service_version="1",
        interval_seconds=INTERVAL,
        clock=FakeClock(),
        on_written=lambda: written.append("yes"),
    )
    writer.write(RUNNING, incarnation=INCARNATION)
    claim_incarnation(engine, INCARNATION + 1, "SRV1", datetime.now(UTC))
    with pytest.raises(StaleIncarnationError):
        writer.write(RUNNING, incarnation=INCARNATION)
    assert written == ["yes"]


# --- CheckInStep: the self-test's report ---------------------------------------------------


def test_the_step_writes_an_ok_checkin_for_a_clean_self_test(engine: Engine) -> None:
    step = CheckInStep(writer_for(engine), INCARNATION)
    assert step.report(SelfTestResult(("database", "smtp"), ())) == ()
    assert [bool(r["ok"]) for r in checkin_rows(engine)] == [True]


def test_the_step_writes_the_self_tests_failure(engine: Engine) -> None:
    step = CheckInStep(writer_for(engine), INCARNATION)
    step.report(SelfTestResult(("database", "smtp"), SMTP_DOWN))
    assert [r["summary"] for r in checkin_rows(engine)] == [
        "Sending (SMTP): 535 5.7.8 Authentication credentials invalid"
    ]


def test_the_step_writes_nothing_when_the_database_self_test_failed(engine: Engine) -> None:
    step = CheckInStep(writer_for(engine), INCARNATION)
    down = (Diagnostic("database", "error", "the database does not answer"),)
    assert step.report(SelfTestResult(("database",), down)) == ()
    assert checkin_rows(engine) == []


def test_the_step_turns_a_write_that_failed_into_a_database_diagnostic() -> None:
    url = "sqlite:////nonexistent-folder/practice.db"
    broken = make_engine(url)
    writer = CheckInWriter(
        lambda: broken,
        server_name="SRV1",
        service_version="1",
        interval_seconds=1,
        clock=FakeClock(),
    )
    [found] = CheckInStep(writer, INCARNATION).report(SelfTestResult(("database",), ()))
    assert (found.component, found.level) == ("database", "error")
    assert found.message.startswith("the practice database does not answer: ")


def test_the_step_lets_a_fenced_refusal_through(engine: Engine) -> None:
    claim_incarnation(engine, INCARNATION + 1, "SRV1", datetime.now(UTC))
    with pytest.raises(StaleIncarnationError):
        CheckInStep(writer_for(engine), INCARNATION).report(SelfTestResult(("database",), ()))


def test_the_checkin_count_is_one_per_report(engine: Engine) -> None:
    step = CheckInStep(writer_for(engine), INCARNATION)
    step.report(SelfTestResult(("database",), ()))
    step.report(SelfTestResult(("database",), SMTP_DOWN))
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(email_service_checkins)).scalar_one()
    assert count == 2


# --- SelfTestWork: the self-test, its mail part and the check-in, in one round ---------------


class _MailPart:
    """A stand-in for the mail part of the self-test (``MailCheck``): reports what it is given."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...] = ()) -> None:
        self.diagnostics = diagnostics
        self.checks = 0

    def check(self) -> tuple[tuple[str, ...], tuple[Diagnostic, ...]]:
        self.checks += 1
        return ("smtp",), self.diagnostics

    def run(self) -> float:
        return 3600.0

    def close(self) -> None:
        pass


def _round(engine: Engine, url: str, part: _MailPart, writer: CheckInWriter) -> list[Event]:
    appended: list[Event] = []
    clock = FakeClock()
    context = WorkContext("Smile", INCARNATION, lambda: engine, appended.extend, clock)
    selftest = DatabaseSelfTest(
        "Smile", url, INCARNATION, "SRV1", clock, engine=lambda: engine, write=False
    )
    work = SelfTestWork(selftest, context, INTERVAL, [part, CheckInStep(writer, INCARNATION)])
    assert work.run() == INTERVAL
    return appended


def test_a_round_merges_the_mail_parts_findings_into_the_checkin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.sqlite3'}"
    init_practice_database(url, practice_name="Smile Dental")
    engine = make_engine(url)
    try:
        events = _round(engine, url, _MailPart(SMTP_DOWN), writer_for(engine))
        summaries = [r["summary"] for r in checkin_rows(engine)]
    finally:
        engine.dispose()
    assert events == [SelfTestFailed(INCARNATION, SMTP_DOWN)]
    assert summaries == ["Sending (SMTP): 535 5.7.8 Authentication credentials invalid"]


def test_a_clean_round_passes_with_every_component_checked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.sqlite3'}"
    init_practice_database(url, practice_name="Smile Dental")
    engine = make_engine(url)
    try:
        events = _round(engine, url, _MailPart(), writer_for(engine))
    finally:
        engine.dispose()
    assert events == [SelfTestPassed(INCARNATION, ("database", "smtp"))]


def test_a_round_without_the_database_skips_the_mail_part(tmp_path: Path) -> None:
    url = "sqlite:////nonexistent-folder/practice.sqlite3"
    engine = make_engine(url)
    part = _MailPart()
    try:
        [event] = _round(engine, url, part, writer_for(engine))
    finally:
        engine.dispose()
    assert isinstance(event, SelfTestFailed)
    assert ([d.component for d in event.diagnostics], part.checks) == (["database"], 0)


def test_a_checkin_the_database_refused_is_reported_in_the_round(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'practice.sqlite3'}"
    init_practice_database(url, practice_name="Smile Dental")
    engine = make_engine(url)
    refusing = CheckInWriter(
        lambda: make_engine("sqlite:////nonexistent-folder/other.sqlite3"),
        server_name="SRV1",
        service_version="1",
        interval_seconds=INTERVAL,
        clock=FakeClock(),
    )
    try:
        [event] = _round(engine, url, _MailPart(), refusing)
    finally:
        engine.dispose()
    assert isinstance(event, SelfTestFailed)
    assert [d.message.split(":")[0] for d in event.diagnostics] == [
        "the practice database does not answer"
    ]


# --- a check-in another process can read ---------------------------------------------------


def _count_elsewhere(path: Path) -> int:
    """Count the check-ins as a workstation would: another process, connecting and leaving."""
    script = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
        " print(c.execute('select count(*) from email_service_checkins').fetchone()[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def test_checkins_stay_visible_to_workstations_after_a_rescan(tmp_path: Path) -> None:
    folder = tmp_path / "practices"
    folder.mkdir()
    path = folder / "Smile Dental.sqlite3"
    init_practice_database(f"sqlite:///{path}", practice_name="Smile Dental")
    engine = make_engine(f"sqlite:///{path}")
    try:
        claim_incarnation(engine, INCARNATION, "SRV1", datetime.now(UTC))
        writer = writer_for(engine)
        writer.write(RUNNING, incarnation=INCARNATION)
        discover(f"sqlite:///{folder}", server_id="SRV1", genuine_server_check=False)
        _count_elsewhere(path)  # a workstation looks, and leaves
        writer.write(RUNNING, incarnation=INCARNATION)
        assert _count_elsewhere(path) == 2
    finally:
        engine.dispose()


# --- keeping the table small ----------------------------------------------------------------


def _old_checkin(engine: Engine, days_ago: float, *, line: str) -> None:
    with engine.begin() as conn:
        at = server_now(engine) - timedelta(days=days_ago)
        checkin_id = conn.execute(
            insert(email_service_checkins).values(
                checked_in_at=at,
                next_checkin_due_at=at + timedelta(seconds=INTERVAL),
                ok=False,
                summary=line,
                server_name="SRV1",
                service_version="1.2.3",
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        conn.execute(
            insert(email_service_diagnostics).values(
                checkin_id=checkin_id, logged_at=at, level="error", component="smtp", message=line
            )
        )


def test_check_ins_past_their_keeping_time_go_with_their_lines(engine: Engine) -> None:
    _old_checkin(engine, 9, line="nine days ago")
    _old_checkin(engine, 2, line="two days ago")
    assert prune_checkins(engine, keep_days=7) == 1
    assert [r["summary"] for r in checkin_rows(engine)] == ["two days ago"]
    assert diagnostic_lines(engine) == [("error", "smtp", "two days ago")]


def test_a_writer_prunes_at_most_once_an_hour(engine: Engine) -> None:
    clock = FakeClock(WRONG_CLOCK)
    writer = writer_for(engine, clock, keep_days=7)
    _old_checkin(engine, 9, line="old")
    writer.write(DbHealth(HealthStatus.RUNNING), incarnation=INCARNATION)
    assert [r["summary"] for r in checkin_rows(engine)] == [""]
    _old_checkin(engine, 9, line="old again")
    writer.write(DbHealth(HealthStatus.RUNNING), incarnation=INCARNATION)
    assert "old again" in [r["summary"] for r in checkin_rows(engine)]  # within the hour
    clock.advance(3600)
    writer.write(DbHealth(HealthStatus.RUNNING), incarnation=INCARNATION)
    assert "old again" not in [r["summary"] for r in checkin_rows(engine)]


def test_a_writer_prunes_first_when_its_first_prune_is_due(engine: Engine) -> None:
    clock = FakeClock(WRONG_CLOCK)
    writer = writer_for(engine, clock, keep_days=7, first_prune_after=600)
    _old_checkin(engine, 9, line="old")
    writer.write(DbHealth(HealthStatus.RUNNING), incarnation=INCARNATION)
    assert "old" in [r["summary"] for r in checkin_rows(engine)]  # not at the first write
    clock.advance(600)
    writer.write(DbHealth(HealthStatus.RUNNING), incarnation=INCARNATION)
    assert "old" not in [r["summary"] for r in checkin_rows(engine)]


# --- the outage line after the service itself was dead or hung (issue 12, item 6) --------


def late_checkin(
    engine: Engine, server_name: str, ago: timedelta, instance: str = "host-a pid 1 start 1"
) -> datetime:
    """An ok check-in written ``ago`` before the server's now (its process died then);
    return when it said the next one was due."""
    at = server_now(engine) - ago
    due = at + timedelta(seconds=INTERVAL)
    with engine.begin() as conn:
        conn.execute(
            insert(email_service_checkins).values(
                checked_in_at=at,
                next_checkin_due_at=due,
                ok=True,
                summary="",
                server_name=server_name,
                service_version="1.2.3",
                service_instance=instance,
            )
        )
    return due


def next_process_writer(engine: Engine) -> CheckInWriter:
    return CheckInWriter(
        lambda: engine,
        server_name="SRV1",
        service_version="1.2.3",
        service_instance="host-b pid 2 start 2",
        interval_seconds=INTERVAL,
        clock=FakeClock(WRONG_CLOCK),
        grace_seconds=INTERVAL,
    )


def test_after_a_dead_service_the_first_checkin_says_how_long_from_the_database(
    engine: Engine,
) -> None:
    due = late_checkin(engine, "SRV1", timedelta(minutes=10))
    next_process_writer(engine).write(RUNNING, incarnation=INCARNATION)
    [line] = diagnostic_lines(engine)
    assert line[:2] == ("info", "service")
    assert line[2].startswith("Email was not available for 9 min")
    assert f"from {due:%Y-%m-%d %H:%M:%S} to " in line[2]


def test_a_restart_within_the_interval_writes_no_outage_line(engine: Engine) -> None:
    late_checkin(engine, "SRV1", timedelta(seconds=3))
    next_process_writer(engine).write(RUNNING, incarnation=INCARNATION)
    assert diagnostic_lines(engine) == []


def test_another_servers_late_checkin_is_not_our_outage(engine: Engine) -> None:
    late_checkin(engine, "SRV10", timedelta(minutes=10))
    late_checkin(engine, "SRV_1", timedelta(minutes=10))  # "_" is no wildcard here
    next_process_writer(engine).write(RUNNING, incarnation=INCARNATION)
    assert diagnostic_lines(engine) == []


# --- service_instance in a database made by an older version -------------------------------


def test_a_workstation_reads_checkins_of_a_database_without_service_instance(
    engine: Engine,
) -> None:
    # An older version's table, before the service's start-up adds the column.
    late_checkin(engine, "SRV1", timedelta(seconds=3))
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE email_service_checkins DROP COLUMN service_instance")
    with engine.connect() as conn:
        [row] = checkins_table.newest_checkins(conn)
        assert checkins_table.server_now(conn) >= row.checked_in_at  # the connection still works
    assert (row.server_name, row.service_instance) == ("SRV1", None)
