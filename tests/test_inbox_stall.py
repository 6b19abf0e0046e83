"""An inbox that stops checking for mail fails the self-test, and the light says so
(issue 13, item 4).

A soak had a mailbox restarted while its database was locked: its inbox step asked for
its next turn in an hour and was never run again, and for the rest of the run no mail
was imported while the light stayed steady. The self-test now notices an inbox that has
ended no pass within ``actors.mail.inbox_progress.stall_after`` of the configuration.

Real Dovecot and real SQLite practice databases, a fake clock. The last test runs a real
mailbox actor (its own scheduling, the real self-test, check-ins and IMAP probe) whose
inbox step is the one from before the fix (the seam: the mailbox's step list), and reads
the light as a workstation does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pykka
import pytest
from sqlalchemy import Engine, func, select

from actors.checkin_writer import CheckInWriter
from actors.database_selftest import DatabaseSelfTest
from actors.fence import IncarnationRegistry
from actors.mail.inbox_progress import STALL_SELFTESTS, stall_after
from actors.mail.settings import EmailSettings
from actors.mail.steps import (
    IDLE_SLICE_SECONDS,
    NEVER,
    CheckInStep,
    InboxStep,
    MailCheck,
    OutboxStep,
)
from actors.mail.work import SETTINGS_EVERY, MailDeps, MailWork, ProbeLimiter
from actors.mailbox import MailboxActor, MailboxDeps
from actors.mailbox_work import Work, WorkContext
from actors.messages import Ping
from actors.practice_db import make_engine
from actors.practice_schema import email_messages, init_practice_database
from actors.scheduler import FakeScheduler
from config.settings import MailSettings
from events.clock import FakeClock
from events.memory_store import InMemoryEventStore
from events.projections.health import INITIAL as NO_HEALTH
from events.projections.health import HealthStatus, apply_health
from events.store import read_all
from events.types import Event, MailboxStarted, SelfTestFailed, stream_for
from supervisor.workstation_view import read_status
from tests.dovecot import Dovecot, imap_settings_for, make_message
from tests.mail_helpers import claimed_engine, write_email_settings
from tests.test_mail_work import configure

pytest_plugins = ["tests.conftest_imap"]

CHECKIN = 15.0
INCARNATION = 7
PROBE_SECONDS = 60.0


class Works:
    """``MailWork`` objects on one fake clock, with the real ``[mail]`` settings' shape."""

    def __init__(self, mail: MailSettings) -> None:
        self.clock = FakeClock()
        self.events: list[Event] = []
        self.deps = MailDeps(
            mail, PROBE_SECONDS, ProbeLimiter(), ZoneInfo("UTC"), checkin_seconds=CHECKIN
        )
        self.made: list[MailWork] = []
        self.limit = stall_after(mail.inbox_poll_seconds, CHECKIN, SETTINGS_EVERY)

    def make(self, engine: Engine) -> MailWork:
        work = MailWork(
            "Smile", INCARNATION, lambda: engine, self.events.extend, self.clock, self.deps
        )
        self.made.append(work)
        return work

    def close(self) -> None:
        for work in self.made:
            work.close()


@pytest.fixture
def works(mail_settings: MailSettings) -> Iterator[Works]:
    made = Works(mail_settings)
    yield made
    made.close()


@pytest.fixture
def work_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = claimed_engine(f"sqlite:///{tmp_path / 'practice.sqlite3'}", INCARNATION)
    yield engine
    engine.dispose()


def imap_lines(work: MailWork) -> list[str]:
    _, diagnostics = work.check()
    return [d.message for d in diagnostics if d.component == "imap"]


def self_tests_over(works: Works, work: MailWork, seconds: float, *, inbox: bool) -> list[str]:
    """Run a self-test every check-in for ``seconds`` (the inbox's pass after each when
    ``inbox``, without waiting in IDLE); return every IMAP line they said."""
    said: list[str] = []
    for _ in range(int(seconds / CHECKIN)):
        said += imap_lines(work)
        if inbox:
            work.run_inbox(0.0)
        works.clock.advance(CHECKIN)
    return said


# --- the mail part of the self-test ---------------------------------------------------------


def test_an_inbox_that_never_runs_fails_the_imap_check_past_the_bound(
    works: Works, work_engine: Engine, dovecot: Dovecot, imap_user: str
) -> None:
    configure(work_engine, imap_settings_for(dovecot, imap_user))
    work = works.make(work_engine)
    # Within the bound, and the first self-tests past it: nothing said.
    quiet = self_tests_over(works, work, works.limit + STALL_SELFTESTS * CHECKIN, inbox=False)
    [line] = imap_lines(work)  # the third self-test in a row past the bound
    assert quiet == []
    assert line.startswith("incoming mail not checked for 3 min: ")


def test_an_inbox_that_runs_between_self_tests_is_never_flagged(
    works: Works, work_engine: Engine, dovecot: Dovecot, imap_user: str
) -> None:
    configure(work_engine, imap_settings_for(dovecot, imap_user))
    work = works.make(work_engine)
    assert self_tests_over(works, work, 4 * works.limit, inbox=True) == []


def test_incoming_mail_turned_off_is_never_flagged(
    works: Works, work_engine: Engine, dovecot: Dovecot, imap_user: str
) -> None:
    configure(work_engine, imap_settings_for(dovecot, imap_user, imap_enabled=False))
    work = works.make(work_engine)
    assert self_tests_over(works, work, 4 * works.limit, inbox=False) == []


def test_an_imap_server_refusing_the_log_in_is_said_in_its_own_words_only(
    works: Works, work_engine: Engine, dovecot: Dovecot, imap_user: str
) -> None:
    configure(work_engine, imap_settings_for(dovecot, imap_user, imap_password="wrong-pw"))
    work = works.make(work_engine)
    said = self_tests_over(works, work, 4 * works.limit, inbox=True)
    assert said, "the refused log-in was not said"
    assert not any("not checked" in line for line in said)


def test_turning_incoming_mail_on_starts_the_watch_afresh(
    works: Works, work_engine: Engine, dovecot: Dovecot, imap_user: str
) -> None:
    settings = imap_settings_for(dovecot, imap_user)
    configure(work_engine, EmailSettings(imap_enabled=False))
    work = works.make(work_engine)
    self_tests_over(works, work, 4 * works.limit, inbox=False)
    configure(work_engine, settings)
    works.clock.advance(SETTINGS_EVERY)
    assert self_tests_over(works, work, works.limit, inbox=False) == []


# --- the light, from a real mailbox whose inbox step is no longer scheduled -------------------


class InboxStepBeforeTheFix(InboxStep):
    """The inbox step as it was before commit bfcfe51: with no inbox to run (incoming mail
    off, or its settings not read yet) it asked for its next turn in an hour, and the
    mailbox did not run it again when the inbox came."""

    def __init__(self, mail: MailWork) -> None:
        super().__init__(mail)
        self.mail = mail

    def run(self) -> float:
        again = self.mail.run_inbox(min(IDLE_SLICE_SECONDS, self.mail.outbox_due_in()))
        return NEVER if again is None else again


class Supervisor(pykka.ThreadingActor):
    """Stands in for the supervisor: keeps what a mailbox tells it (only a crash would)."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Ping):
            return list(self.told)
        self.told.append(message)
        return None


def test_the_light_shows_an_inbox_that_is_no_longer_scheduled(
    tmp_path: Path, mail_settings: MailSettings, dovecot: Dovecot, imap_user: str
) -> None:
    db = "Smile Dental"
    url = f"sqlite:///{tmp_path / 'Smile Dental.sqlite3'}"
    init_practice_database(url, practice_name=db)
    engine = make_engine(url)
    clock = FakeClock()
    scheduler = FakeScheduler(clock)
    store = InMemoryEventStore(clock)
    registry = IncarnationRegistry(store)
    deps = MailDeps(
        mail_settings, PROBE_SECONDS, ProbeLimiter(), ZoneInfo("UTC"), checkin_seconds=CHECKIN
    )

    def make_work(context: WorkContext) -> Sequence[Work]:
        work = MailWork(
            context.db,
            context.incarnation,
            context.engine,
            context.append,
            clock,
            deps,
            context.flush,
            must_yield=context.must_yield,
            record=context.record,
        )
        writer = CheckInWriter(
            context.engine,
            server_name="SRV-STALL",
            service_version="test",
            interval_seconds=CHECKIN,
            clock=clock,
            url=url,
            grace_seconds=CHECKIN,
        )
        return [
            MailCheck(work),
            CheckInStep(writer, context.incarnation),
            OutboxStep(work),
            InboxStepBeforeTheFix(work),
        ]

    supervisor = Supervisor.start()
    registry.begin(db, 1, [MailboxStarted(1)])
    mailbox = MailboxActor.start(
        db,
        1,
        MailboxDeps(
            registry,
            scheduler,
            CHECKIN,
            supervisor,
            lambda name, n: DatabaseSelfTest(
                name, url, n, "SRV-STALL (test)", clock, engine=lambda: engine, write=False
            ),
            engine=lambda _name: engine,
            make_work=make_work,
            clock=clock,
        ),
    )

    def run_for(seconds: float) -> None:
        for _ in range(int(seconds)):
            scheduler.advance(1.0)
            mailbox.ask(Ping(), timeout=30)

    try:
        mailbox.ask(Ping(), timeout=30)  # its first tick (Init) is done
        run_for(2 * CHECKIN)
        before = read_status(db, url, timedelta(seconds=CHECKIN))
        # The practice turns incoming mail on; a patient's reply waits on the server.
        write_email_settings(engine, **_columns(imap_settings_for(dovecot, imap_user)))
        dovecot.append(imap_user, make_message("Re: your appointment"))
        # The settings are read within SETTINGS_EVERY and a check-in; then the bound passes,
        # and three self-tests in a row find it passed.
        limit = stall_after(mail_settings.inbox_poll_seconds, CHECKIN, SETTINGS_EVERY)
        run_for(SETTINGS_EVERY + CHECKIN + limit + STALL_SELFTESTS * CHECKIN)
        after = read_status(db, url, timedelta(seconds=CHECKIN))
        told = supervisor.ask(Ping(), timeout=30)
    finally:
        mailbox.stop()
        supervisor.stop()
        engine.dispose()
    imported = _inbox_rows(url)
    recorded = list(read_all(store))
    health = NO_HEALTH
    for r in recorded:
        if r.stream == stream_for(db):
            health = apply_health(health, r)
    failed = [r.event for r in recorded if isinstance(r.event, SelfTestFailed)]
    assert (told, imported) == ([], 0)  # no crash; the reply really was not imported
    assert before.status.status == "running"
    assert after.status.status == "not_available"
    assert after.status.tooltip.startswith("Receiving (IMAP): incoming mail not checked for ")
    assert health.status is HealthStatus.FAILING
    assert failed, "no self-test failed"
    assert failed[-1].diagnostics[0].component == "imap"


def _inbox_rows(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            query = select(func.count()).where(email_messages.c.folder == "inbox")
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def _columns(settings: EmailSettings) -> dict[str, Any]:
    return {
        name: getattr(settings, name)
        for name in (
            "imap_enabled",
            "imap_host",
            "imap_port",
            "imap_security",
            "imap_username",
            "imap_password",
        )
    }


def test_the_mailboxs_due_self_test_ends_an_inbox_round_after_a_batch(
    works: Works, work_engine: Engine, dovecot: Dovecot, imap_user: str
) -> None:
    """A backlog bigger than a batch (100) is imported over several rounds when the
    self-test falls due, so the check-in is written between them (not after all of it)."""
    configure(work_engine, imap_settings_for(dovecot, imap_user))
    with dovecot.client(imap_user) as imap:
        for i in range(130):
            imap.append("INBOX", make_message(f"b{i}"))
    work = MailWork(
        "Smile",
        INCARNATION,
        lambda: work_engine,
        works.events.extend,
        works.clock,
        works.deps,
        must_yield=lambda: True,
    )
    works.made.append(work)

    def stored() -> int:
        with work_engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(email_messages)).scalar_one())

    work.check()  # the self-test reads the settings and sets the inbox up
    assert work.run_inbox(0.0) == 0.0  # more waits: again right after the self-test
    first = stored()
    work.run_inbox(0.0)
    assert (first, stored()) == (100, 130)
