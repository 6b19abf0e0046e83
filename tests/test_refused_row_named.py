"""An outbox row refused as written is named in the next check-in, the light steady (issue 13,
item 1): the mailbox's own steps (self-test, mail check, check-in, outbox) over a real
practice database on SQLite and on PostgreSQL and a real aiosmtpd; read back as a
workstation reads it (``supervisor.workstation_view``, the code behind ``email-service
status`` and ``diagnostics``) and through the command line."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from actors.checkin_writer import CheckInWriter
from actors.database_selftest import DatabaseSelfTest
from actors.mail.outbox_row import RowProblem, shown_subject
from actors.mail.refused_rows import MAX_NAMED, refused_lines
from actors.mail.steps import CheckInStep, MailCheck, OutboxStep
from actors.mailbox_work import SelfTestWork, WorkContext
from actors.practice_db import make_engine
from actors.practice_schema import email_messages
from events.projections.checkin import CheckInContent, CheckInMemory, checkin_of
from events.projections.health import DbHealth, HealthStatus
from events.store import read_all
from events.types import Diagnostic, SelfTestFailed, SelfTestPassed
from supervisor import exit_codes
from supervisor.service import start_tree, stop_tree
from supervisor.status_rule import RUNNING_TOOLTIP
from supervisor.workstation_view import read_diagnostics, read_status
from tests.dovecot import Dovecot, imap_settings_for
from tests.mail_helpers import (
    INCARNATION,
    claimed_engine,
    queue_row,
    read_row,
    settings_for,
    smtp_settings,
    wait_until,
)
from tests.servers import POSTGRES_ADMIN_URL, fresh_database, named_databases, server_url
from tests.smtp_servers import RecordingSmtpServer, free_port
from tests.test_cli_databases import run, write_config
from tests.test_inbox_limits import _big_message
from tests.test_mail_work import Works, configure
from tests.test_service import make_practices
from tests.test_service import settings_for as service_settings

pytest_plugins = ["tests.conftest_mail", "tests.conftest_imap"]

SUBJECT = "Recall \x1b]0;pwned\x07" + "x" * 120
NOT_A_MESSAGE = b"hello, this is not an email"
CHECKIN_SECONDS = 15.0


class Mailbox:
    """One incarnation's steps as ``supervisor.service`` builds them, on a fake clock."""

    def __init__(self, works: Works, engine: Engine, url: str, db: str) -> None:
        self.works = works
        context = WorkContext(db, INCARNATION, lambda: engine, works.append, works.clock)
        self.mail = works.make(engine, db=db)
        writer = CheckInWriter(
            lambda: engine,
            server_name="test-server",
            service_version="test",
            interval_seconds=CHECKIN_SECONDS,
            clock=works.clock,
            url=url,
        )
        steps = [MailCheck(self.mail), CheckInStep(writer, INCARNATION), OutboxStep(self.mail)]
        selftest = DatabaseSelfTest(
            db, url, INCARNATION, "test-server", works.clock, lambda: engine, write=False
        )
        self.selftest = SelfTestWork(selftest, context, CHECKIN_SECONDS, steps)
        self.outbox = steps[2]

    def self_test(self) -> SelfTestPassed | SelfTestFailed:
        self.selftest.run()
        event = self.works.events[-1]
        assert isinstance(event, SelfTestPassed | SelfTestFailed)
        return event


@pytest.fixture
def works() -> Iterator[Works]:
    made = Works()
    yield made
    made.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def practice(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """``(server_url, name, url)`` of a claimed practice database on each backend."""
    if request.param == "sqlite":
        folder = tmp_path / "practices"
        folder.mkdir()
        url = f"sqlite:///{folder / 'Smile Dental.sqlite3'}"
        claimed_engine(url).dispose()
        yield f"sqlite:///{folder}", "Smile Dental", url
        return
    name = f"pes_refused_{uuid.uuid4().hex[:8]}"
    with named_databases(POSTGRES_ADMIN_URL, [name]) as urls:
        claimed_engine(urls[name]).dispose()
        yield server_url(POSTGRES_ADMIN_URL), name, urls[name]


def _engine(url: str) -> Engine:
    return make_engine(url)


def test_a_refused_row_is_a_warning_line_and_the_light_stays_steady(
    works: Works,
    practice: tuple[str, str, str],
    smtp_server: RecordingSmtpServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    server, db, url = practice
    engine = _engine(url)
    try:
        configure(engine, settings_for(smtp_server))
        first = queue_row(engine, subject="Before")
        bad = queue_row(engine, subject=SUBJECT, raw=NOT_A_MESSAGE)
        last = queue_row(engine, subject="After")
        box = Mailbox(works, engine, url, db)
        box.self_test()  # the first check-in, as at a start
        box.outbox.run()
        event = box.self_test()
        statuses = [read_row(engine, i)["status"] for i in (first, bad, last)]
        last_error = read_row(engine, bad)["last_error"]
    finally:
        engine.dispose()
    assert statuses == ["sent", "failed", "sent"]
    assert len(smtp_server.message_ids()) == 2
    assert last_error.startswith("not sent: raw is bytes that are not an email message")
    assert isinstance(event, SelfTestPassed)
    [warning] = event.warnings
    assert (warning.component, warning.level) == ("smtp", "warning")
    shown = shown_subject(SUBJECT)  # quoted, cut to 80 characters, no control character
    assert (shown[:8], shown[-4:]) == ('"Recall ', '..."')
    assert warning.message.startswith(f"outbox row {bad} ({shown}): raw is bytes that are not")
    assert warning.message.isprintable()
    status = read_status(db, url, timedelta(seconds=15)).status
    assert (status.status, status.tooltip) == ("running", RUNNING_TOOLTIP)
    [line] = read_diagnostics(url)
    assert (line.level, line.component, line.message) == ("warning", "smtp", warning.message)
    config = write_config(tmp_path / "service.toml", server)
    code, out, _ = run(capsys, "--config", str(config), "diagnostics", "--db", db, "--json")
    assert code == exit_codes.OK
    assert [x["message"] for x in json.loads(out)] == [warning.message]


def test_the_next_check_in_without_refusals_has_no_lines_and_keeps_the_named_row_visible(
    works: Works, practice: tuple[str, str, str], smtp_server: RecordingSmtpServer
) -> None:
    _, db, url = practice
    engine = _engine(url)
    try:
        configure(engine, settings_for(smtp_server))
        bad = queue_row(engine, subject="No one", to_addrs="")
        box = Mailbox(works, engine, url, db)
        box.self_test()  # the first check-in, as at a start
        box.outbox.run()
        named = box.self_test()
        works.clock.advance(CHECKIN_SECONDS)
        after = box.self_test()
    finally:
        engine.dispose()
    assert isinstance(named, SelfTestPassed)
    assert [w.message.split(":")[0] for w in named.warnings] == [f'outbox row {bad} ("No one")']
    assert after == SelfTestPassed(INCARNATION, after.components, ())
    assert [line.level for line in read_diagnostics(url)] == ["warning"]


def test_a_failing_self_test_is_told_by_its_fault_and_lists_the_refused_row_too(
    works: Works, practice: tuple[str, str, str]
) -> None:
    _, db, url = practice
    engine = _engine(url)
    try:
        configure(engine, smtp_settings("127.0.0.1", free_port()))  # nothing listens there
        bad = queue_row(engine, subject="Broken", raw=NOT_A_MESSAGE)
        queue_row(engine)
        box = Mailbox(works, engine, url, db)
        box.self_test()
        box.outbox.run()
        works.clock.advance(10)
        event = box.self_test()
    finally:
        engine.dispose()
    assert isinstance(event, SelfTestFailed)
    assert [(d.component, d.level) for d in event.diagnostics] == [
        ("smtp", "error"),
        ("smtp", "warning"),
    ]
    status = read_status(db, url, timedelta(seconds=15)).status
    assert status.status == "not_available"
    assert status.tooltip.startswith("Sending (SMTP): port closed")
    lines = read_diagnostics(url)
    assert [line.level for line in lines] == ["error", "warning"]
    assert lines[1].message.startswith(f'outbox row {bad} ("Broken"): raw is bytes')


def _problem(n: int) -> tuple[RowProblem, str]:
    return RowProblem(n, f"Subject {n}", "it has no recipient"), "email"


def test_more_than_ten_refused_rows_are_named_up_to_ten_and_counted() -> None:
    lines = refused_lines([_problem(n) for n in range(1, MAX_NAMED + 4)])
    assert len(lines) == MAX_NAMED + 1
    assert lines[0] == Diagnostic(
        "smtp",
        "warning",
        'outbox row 1 ("Subject 1"): it has no recipient; it was not sent (failed with this '
        "reason), the other messages go on",
    )
    assert lines[-1].message.startswith("3 more outbox row(s) were refused as written")


def test_a_refused_text_message_is_an_sms_line() -> None:
    [line] = refused_lines([(RowProblem(4, "", "to_addrs is 3.5, not text"), "sms")])
    assert (line.component, line.message.split(";")[0]) == (
        "sms",
        "outbox row 4 (no subject): to_addrs is 3.5, not text",
    )


WARNED = Diagnostic("smtp", "warning", 'outbox row 3 ("Hi"): it has no recipient; …')
NOW = datetime(2026, 12, 2, 9, 0)


def test_a_running_check_in_with_warnings_is_ok_with_an_empty_summary() -> None:
    content, memory = checkin_of(DbHealth(HealthStatus.RUNNING), CheckInMemory(), NOW, (WARNED,))
    assert content == CheckInContent(True, "", (("warning", "smtp", WARNED.message),))
    assert memory == CheckInMemory()


def test_after_an_outage_the_recovery_line_comes_before_the_warnings() -> None:
    since = NOW - timedelta(minutes=5)
    content, _ = checkin_of(DbHealth(HealthStatus.RUNNING), CheckInMemory(since), NOW, (WARNED,))
    assert [line[0] for line in content.lines] == ["info", "warning"]
    assert content.ok


def test_a_message_too_large_for_mariadb_is_named_in_a_warning_line(
    works: Works, tmp_path: Path, dovecot: Dovecot, imap_user: str
) -> None:
    with fresh_database("mariadb", tmp_path) as url:
        engine = claimed_engine(url)
        try:
            with engine.connect() as conn:
                packet = conn.execute(text("SELECT @@max_allowed_packet")).scalar_one()
            uid = dovecot.append(imap_user, _big_message(packet * 3 // 4 + 1024))
            configure(engine, imap_settings_for(dovecot, imap_user))
            work = works.make(engine)
            work.check()  # reads the settings: the inbox is made
            work.run_inbox(0.0)
            _, found = work.check()
            with engine.connect() as conn:
                row_id = conn.execute(select(email_messages.c.id)).scalar_one()
        finally:
            engine.dispose()
    [line] = found
    assert (line.component, line.level) == ("imap", "warning")
    assert line.message.startswith(
        f'inbox row {row_id} ("X-ray images"): UID {uid} too large for this database: '
    )
    assert "left on the IMAP server" in line.message


def test_the_real_service_names_the_row_and_the_commands_show_it_escaped(
    tmp_path: Path, smtp_server: RecordingSmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "practices"
    make_practices(folder, "Smile Dental")
    engine = make_engine(f"sqlite:///{folder / 'Smile Dental.sqlite3'}")
    settings = service_settings(tmp_path)
    try:
        configure(engine, settings_for(smtp_server))
        bad = queue_row(engine, subject=SUBJECT, raw=NOT_A_MESSAGE)
        good = queue_row(engine, subject="Fine")
        tree = start_tree(settings)
        try:
            wait_until(
                lambda: any(
                    isinstance(r.event, SelfTestPassed) and r.event.warnings
                    for r in read_all(tree.store)
                ),
                "a self-test naming the refused row",
                timeout=60,
            )
        finally:
            stop_tree(tree, "test over")
        sent = read_row(engine, good)["status"]
    finally:
        engine.dispose()
    assert sent == "sent"
    config = tmp_path / "cli.toml"
    config.write_text(
        f'[service]\nevent_store = "{settings.service.event_store}"\n'
        f'[databases]\nserver_url = "sqlite:///{folder}"\n'
    )
    code, out, _ = run(capsys, "--config", str(config), "status", "--db", "Smile Dental")
    assert code == exit_codes.OK
    assert RUNNING_TOOLTIP in out
    code, out, _ = run(capsys, "--config", str(config), "diagnostics", "--db", "Smile Dental")
    assert f"outbox row {bad} (" in out
    code, out, _ = run(capsys, "--config", str(config), "events", "tail", "--no-follow")
    assert code == exit_codes.OK
    assert f"outbox row {bad} (" in out
    assert not any(ord(c) < 32 and c != "\n" for c in out)
