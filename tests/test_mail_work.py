"""A mailbox's mail work (``MailWork``) against real servers: aiosmtpd and Dovecot.

The self-test's mail part: a refused log-in is a diagnostic in the server's words without
the password; real traffic that succeeded counts as a pass (no probe connection, counted
at the server); probe connections are limited to one a minute per provider account across
mailboxes sharing the process's ``ProbeLimiter``; IMAP is checked only when it is on;
``email_settings`` is read again every ``SETTINGS_EVERY`` seconds. A fake clock throughout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select, update

from actors.mail.settings import EmailSettings
from actors.mail.steps import InboxStep
from actors.mail.work import SETTINGS_EVERY, MailDeps, MailWork, ProbeLimiter
from actors.practice_schema import SINGLE_ROW_ID, email_messages, email_settings
from events.clock import FakeClock
from events.types import Event, InboxConnectionLost
from supervisor import local_zone as local_zone_module
from supervisor.local_zone import local_zone
from tests.dovecot import Dovecot, imap_settings_for, make_message
from tests.fault_proxy import FaultProxy
from tests.mail_helpers import claimed_engine, mail_settings, queue_row, read_row, settings_for
from tests.smtp_servers import RecordingSmtpServer, free_port
from tests.tls_certs import CertificateSet

pytest_plugins = ["tests.conftest_mail", "tests.conftest_imap"]

MakeServer = Callable[..., RecordingSmtpServer]
INCARNATION = 7
PROBE_SECONDS = 60.0
USERS = {"reception": "Right-Pa55word"}


@pytest.fixture
def work_engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite practice database with incarnation ``INCARNATION`` claimed."""
    engine = claimed_engine(f"sqlite:///{tmp_path / 'practice.sqlite3'}", INCARNATION)
    yield engine
    engine.dispose()


def configure(engine: Engine, settings: EmailSettings) -> None:
    """Write ``settings`` into the practice's ``email_settings`` row."""
    with engine.begin() as conn:
        conn.execute(
            update(email_settings)
            .where(email_settings.c.id == SINGLE_ROW_ID)
            .values(**dataclasses.asdict(settings))
        )


class Works:
    """Builds ``MailWork`` objects on one fake clock, sharing one ``ProbeLimiter``."""

    def __init__(self, ca_file: str = "") -> None:
        self.clock = FakeClock()
        self.limiter = ProbeLimiter()
        self.events: list[Event] = []
        self.deps = MailDeps(
            mail_settings(ca_file=ca_file), PROBE_SECONDS, self.limiter, ZoneInfo("UTC")
        )
        self.made: list[MailWork] = []

    def append(self, events: Sequence[Event]) -> None:
        self.events.extend(events)

    def make(self, engine: Engine, db: str = "Smile") -> MailWork:
        work = MailWork(db, INCARNATION, lambda: engine, self.append, self.clock, self.deps)
        self.made.append(work)
        return work

    def close(self) -> None:
        for work in self.made:
            work.close()


@pytest.fixture
def works(certs: CertificateSet) -> Iterator[Works]:
    made = Works(str(certs.ca_cert))
    yield made
    made.close()


# --- SMTP ---------------------------------------------------------------------------------


def test_a_wrong_smtp_password_is_an_smtp_diagnostic_in_the_servers_words(
    works: Works, work_engine: Engine, make_smtp_server: MakeServer
) -> None:
    server = make_smtp_server("starttls", USERS)
    configure(
        work_engine,
        settings_for(server, smtp_username="reception", smtp_password="wrong-Pa55word"),
    )
    components, diagnostics = works.make(work_engine).check()
    assert components == ("smtp",)
    [found] = diagnostics
    assert (found.component, found.level) == ("smtp", "error")
    assert "Authentication credentials invalid" in found.message


def test_a_wrong_smtp_password_never_shows_the_password(
    works: Works, work_engine: Engine, make_smtp_server: MakeServer
) -> None:
    server = make_smtp_server("starttls", USERS)
    configure(
        work_engine,
        settings_for(server, smtp_username="reception", smtp_password="wrong-Pa55word"),
    )
    _, diagnostics = works.make(work_engine).check()
    assert all("wrong-Pa55word" not in d.message for d in diagnostics)


def test_the_right_smtp_password_passes(
    works: Works, work_engine: Engine, make_smtp_server: MakeServer
) -> None:
    server = make_smtp_server("starttls", USERS)
    configure(
        work_engine,
        settings_for(server, smtp_username="reception", smtp_password="Right-Pa55word"),
    )
    assert works.make(work_engine).check() == (("smtp",), ())


def test_real_traffic_that_succeeded_is_a_pass_without_a_probe(
    works: Works, work_engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    configure(work_engine, settings_for(smtp_server))
    work = works.make(work_engine)
    work.refresh_settings()
    row_id = queue_row(work_engine)
    work.run_outbox()
    assert read_row(work_engine, row_id)["status"] == "sent"
    assert (work.check(), smtp_server.connections) == ((("smtp",), ()), 1)


def test_after_a_quiet_minute_the_server_is_probed_again(
    works: Works, work_engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    configure(work_engine, settings_for(smtp_server))
    work = works.make(work_engine)
    work.check()
    works.clock.advance(PROBE_SECONDS)
    work.check()
    assert smtp_server.connections == 2


def test_two_mailboxes_sharing_a_limiter_probe_one_account_at_most_once_a_minute(
    works: Works, tmp_path: Path, smtp_server: RecordingSmtpServer
) -> None:
    # Two incarnations of one practice (an abandoned one and its successor), same account.
    engine = claimed_engine(f"sqlite:///{tmp_path / 'one.sqlite3'}", INCARNATION)
    try:
        configure(engine, settings_for(smtp_server))
        first, second = works.make(engine), works.make(engine)
        for _ in range(18):  # three minutes, a check every 10 s by each
            first.check()
            second.check()
            works.clock.advance(10)
    finally:
        engine.dispose()
    assert smtp_server.connections == 3


def test_a_restarted_mailbox_does_not_report_a_failing_server_as_working(
    works: Works, work_engine: Engine, make_smtp_server: MakeServer
) -> None:
    server = make_smtp_server("starttls", USERS)
    configure(
        work_engine,
        settings_for(server, smtp_username="reception", smtp_password="wrong-Pa55word"),
    )
    works.make(work_engine).check()  # the crashed incarnation saw the wrong password
    works.clock.advance(10)
    _, diagnostics = works.make(work_engine).check()  # its successor, within the minute
    assert ([d.component for d in diagnostics], server.connections) == (["smtp"], 1)


def test_each_practice_account_at_one_provider_has_its_own_minute(
    works: Works, tmp_path: Path, smtp_server: RecordingSmtpServer
) -> None:
    engines = [claimed_engine(f"sqlite:///{tmp_path / f'{n}.sqlite3'}") for n in ("a", "b")]
    try:
        configure(engines[0], settings_for(smtp_server, smtp_username="smile"))
        configure(engines[1], settings_for(smtp_server, smtp_username="bright"))
        for engine in engines:
            works.make(engine).check()
    finally:
        for engine in engines:
            engine.dispose()
    assert smtp_server.connections == 2


# --- IMAP ---------------------------------------------------------------------------------


def test_imap_off_is_never_checked(
    works: Works, work_engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    # An IMAP server that would fail any check: nothing listens on its port.
    closed = free_port()
    settings = settings_for(smtp_server, imap_enabled=False, imap_host="127.0.0.1")
    configure(work_engine, dataclasses.replace(settings, imap_port=closed))
    work = works.make(work_engine)
    for _ in range(3):
        assert work.check() == (("smtp",), ())
        works.clock.advance(PROBE_SECONDS)


def test_imap_off_means_no_inbox_work(works: Works, work_engine: Engine) -> None:
    configure(work_engine, EmailSettings(imap_enabled=False))
    work = works.make(work_engine)
    work.refresh_settings()
    assert (work.run_inbox(1.0), InboxStep(work).run()) == (None, SETTINGS_EVERY)


def test_incoming_mail_turned_on_later_is_imported_with_the_next_settings(
    works: Works, work_engine: Engine, dovecot: Dovecot, imap_user: str
) -> None:
    # A new incarnation whose first round came before its settings could be read (the
    # database locked) is in the same place: the inbox step must come back to it.
    configure(work_engine, EmailSettings(imap_enabled=False))
    work = works.make(work_engine)
    step = InboxStep(work)
    work.refresh_settings()
    again = step.run()
    configure(work_engine, imap_settings_for(dovecot, imap_user))
    dovecot.append(imap_user, make_message("later-on"))
    works.clock.advance(again)
    work.refresh_settings()
    step.run()
    with work_engine.connect() as conn:
        inbox = conn.execute(
            select(func.count())
            .select_from(email_messages)
            .where(email_messages.c.folder == "inbox")
        ).scalar_one()
    assert (again, inbox) == (SETTINGS_EVERY, 1)


def test_imap_on_is_checked_against_the_server(
    works: Works, work_engine: Engine, dovecot: Dovecot, imap_user: str
) -> None:
    configure(work_engine, imap_settings_for(dovecot, imap_user))
    assert works.make(work_engine).check() == (("imap",), ())


def test_a_wrong_imap_password_is_an_imap_diagnostic_without_the_password(
    works: Works, work_engine: Engine, dovecot: Dovecot, imap_user: str
) -> None:
    settings = imap_settings_for(dovecot, imap_user, imap_password="wrong-Imap-pw")
    configure(work_engine, settings)
    _, diagnostics = works.make(work_engine).check()
    [found] = diagnostics
    assert (found.component, found.level) == ("imap", "error")
    assert "wrong-Imap-pw" not in found.message


def test_a_broken_imap_connection_is_recorded_once_and_mended(
    works: Works, work_engine: Engine, dovecot: Dovecot, imap_user: str
) -> None:
    with FaultProxy("127.0.0.1", dovecot.port) as proxy:
        settings = imap_settings_for(dovecot, imap_user)
        configure(work_engine, dataclasses.replace(settings, imap_port=proxy.port))
        work = works.make(work_engine)
        work.refresh_settings()
        poll = works.deps.mail.inbox_poll_seconds
        work.run_inbox(0.0)  # connected; nothing new
        proxy.refuse(True)
        proxy.cut_all()
        work.run_inbox(0.0)  # the open connection breaks: recorded
        for _ in range(2):  # connecting again fails: the self-test's business, not recorded
            works.clock.advance(poll)
            work.run_inbox(0.0)
        proxy.refuse(False)
        works.clock.advance(poll)
        work.run_inbox(0.0)
        connected_again = work.inbox_connected
    lost = [e for e in works.events if isinstance(e, InboxConnectionLost)]
    assert [(e.incarnation, bool(e.error)) for e in lost] == [(INCARNATION, True)]
    assert connected_again


# --- settings -----------------------------------------------------------------------------


def test_a_settings_change_is_not_seen_before_settings_every(
    works: Works, work_engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    work = works.make(work_engine)
    assert work.check() == ((), ())  # no mail server set yet
    configure(work_engine, settings_for(smtp_server))
    works.clock.advance(SETTINGS_EVERY - 1)
    assert work.check() == ((), ())


def test_a_settings_change_takes_effect_after_settings_every(
    works: Works, work_engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    work = works.make(work_engine)
    work.check()
    configure(work_engine, settings_for(smtp_server))
    works.clock.advance(SETTINGS_EVERY)
    assert work.check() == (("smtp",), ())


def test_a_settings_row_that_cannot_be_used_is_a_service_diagnostic(
    works: Works, work_engine: Engine
) -> None:
    with work_engine.begin() as conn:
        conn.execute(update(email_settings).values(smtp_host="mail.example", smtp_security="ssl"))
    _, diagnostics = works.make(work_engine).check()
    assert [(d.component, "smtp_security" in d.message) for d in diagnostics] == [("service", True)]


# --- the outbox's cadence -----------------------------------------------------------------


def test_the_outbox_waits_its_poll_interval_between_rounds(
    works: Works, work_engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    configure(work_engine, settings_for(smtp_server))
    work = works.make(work_engine)
    work.refresh_settings()
    poll = works.deps.mail.outbox_poll_seconds
    assert work.run_outbox() == poll
    row_id = queue_row(work_engine)
    work.run_outbox()  # not yet due: nothing sent
    assert read_row(work_engine, row_id)["status"] == "queued"


def test_the_outbox_sends_when_its_turn_comes(
    works: Works, work_engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    configure(work_engine, settings_for(smtp_server))
    work = works.make(work_engine)
    work.refresh_settings()
    work.run_outbox()
    row_id = queue_row(work_engine)
    works.clock.advance(works.deps.mail.outbox_poll_seconds)
    work.run_outbox()
    assert read_row(work_engine, row_id)["status"] == "sent"


def test_a_full_batch_asks_for_the_next_round_at_once(
    work_engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    works = Works()
    works.deps = dataclasses.replace(works.deps, mail=mail_settings(outbox_batch=2))
    try:
        configure(work_engine, settings_for(smtp_server))
        work = works.make(work_engine)
        work.refresh_settings()
        for _ in range(3):
            queue_row(work_engine)
        assert (work.run_outbox(), work.outbox_due_in()) == (0.0, 0.0)
    finally:
        works.close()


# --- the server's local zone (the send window's) ------------------------------------------

SUMMER = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
WINTER = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_the_local_zone_follows_daylight_saving(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/London")
    zone = local_zone()
    assert (zone.utcoffset(WINTER), zone.utcoffset(SUMMER)) == (timedelta(0), timedelta(hours=1))


def test_tz_may_be_the_path_of_a_zone_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", ":/usr/share/zoneinfo/Europe/Berlin")
    monkeypatch.setattr(local_zone_module, "LOCALTIME", "/nonexistent/localtime")
    assert local_zone().utcoffset(SUMMER) == timedelta(hours=2)


def test_without_tz_the_zone_is_read_from_etc_localtime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TZ", raising=False)
    monkeypatch.setattr(local_zone_module, "LOCALTIME", "/usr/share/zoneinfo/America/New_York")
    assert local_zone().utcoffset(WINTER) == timedelta(hours=-5)


@pytest.mark.parametrize("tz", ["Nowhere/Atlantis", "Europe", "../etc/passwd"])
def test_an_unusable_tz_falls_back_to_etc_localtime(
    monkeypatch: pytest.MonkeyPatch, tz: str
) -> None:
    monkeypatch.setenv("TZ", tz)
    monkeypatch.setattr(local_zone_module, "LOCALTIME", "/usr/share/zoneinfo/Asia/Tokyo")
    assert local_zone().utcoffset(WINTER) == timedelta(hours=9)
