"""The check-in projector: failed check-ins for databases whose mailbox is not running.

The real projector actor, following a real event log (the SQL store on a SQLite file, and
the in-memory one), on a fake clock and scheduler, writing into SQLite practice databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pykka
import pytest
from sqlalchemy import Engine, select

from actors.checkin_projector import CheckInProjectorActor, CheckInProjectorDeps
from actors.engines import UnknownDatabaseError
from actors.messages import Ping
from actors.practice_db import make_engine
from actors.practice_schema import (
    email_service_checkins,
    email_service_diagnostics,
    init_practice_database,
)
from actors.scheduler import FakeScheduler
from events.clock import FakeClock
from events.memory_store import InMemoryEventStore
from events.sql_store import SqlEventStore
from events.store import ANY, EventStore
from events.types import (
    DatabaseLost,
    Event,
    MailboxCrashed,
    MailboxGaveUp,
    MailboxStarted,
    RestartScheduled,
    SelfTestPassed,
    stream_for,
)

EVERY = 15.0
ASK_TIMEOUT = 10.0


@dataclass
class Projector:
    """One projector actor on fakes, and the practice databases it may write to."""

    store: EventStore
    clock: FakeClock
    folder: Path
    served: dict[str, Engine] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    ref: pykka.ActorRef[Any] | None = None

    def __post_init__(self) -> None:
        self.scheduler = FakeScheduler(self.clock)

    def serve(self, db: str) -> Engine:
        url = f"sqlite:///{self.folder / (db + '.sqlite3')}"
        init_practice_database(url, practice_name=db)
        self.served[db] = make_engine(url)
        return self.served[db]

    def engine(self, db: str) -> Engine:
        try:
            return self.served[db]
        except KeyError:
            raise UnknownDatabaseError(db) from None

    def log(self, db: str, *events: Event) -> None:
        self.store.append(stream_for(db), ANY, list(events))

    def start(self) -> None:
        deps = CheckInProjectorDeps(
            self.store,
            self.clock,
            self.scheduler,
            EVERY,
            self.engine,
            "SRV1",
            "1.2.3",
            on_written=self.written.append,
        )
        self.ref = CheckInProjectorActor.start(deps)
        self.settle()

    def settle(self) -> None:
        """Wait until the actor has handled everything told so far (its ticks included)."""
        assert self.ref is not None
        assert self.ref.ask(Ping(), timeout=ASK_TIMEOUT) is True

    def next_round(self) -> None:
        self.scheduler.advance(EVERY)
        self.settle()

    def stop(self) -> None:
        if self.ref is not None:
            self.ref.stop(timeout=ASK_TIMEOUT)
        self.scheduler.close()
        for engine in self.served.values():
            engine.dispose()


@pytest.fixture(params=["sql", "memory"])
def projector(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Projector]:
    clock = FakeClock()
    store: EventStore
    if request.param == "sql":
        store = SqlEventStore(f"sqlite:///{tmp_path / 'events.sqlite3'}", clock=clock)
    else:
        store = InMemoryEventStore(clock)
    made = Projector(store, clock, tmp_path)
    try:
        yield made
    finally:
        made.stop()
        store.close()


def checkins(engine: Engine) -> list[tuple[bool, str, str]]:
    t = email_service_checkins
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.ok, t.c.summary, t.c.server_name).order_by(t.c.id)).all()
    return [(bool(r.ok), r.summary, r.server_name) for r in rows]


def lines(engine: Engine) -> list[tuple[str, str, str]]:
    t = email_service_diagnostics
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.level, t.c.component, t.c.message).order_by(t.c.id)).all()
    return [(r.level, r.component, r.message) for r in rows]


CRASH = MailboxCrashed(1, "KeyError: 'smtp_host'", "Traceback ...")


def test_a_crashed_mailbox_gets_a_failed_checkin_that_says_so(projector: Projector) -> None:
    engine = projector.serve("Smile")
    projector.log("Smile", MailboxStarted(1), CRASH)
    projector.start()
    assert checkins(engine) == [
        (
            False,
            "Email service: this database's mailbox stopped (the mailbox crashed: "
            "KeyError: 'smtp_host'); it is being restarted",
            "SRV1",
        )
    ]


def test_a_crashed_mailbox_checkin_carries_the_crash_as_a_line(projector: Projector) -> None:
    engine = projector.serve("Smile")
    projector.log("Smile", MailboxStarted(1), CRASH)
    projector.start()
    assert lines(engine) == [
        ("error", "service", "the mailbox crashed: KeyError: 'smtp_host'"),
    ]


def test_a_restarting_mailbox_gets_a_failed_checkin_that_says_so(projector: Projector) -> None:
    engine = projector.serve("Smile")
    projector.log("Smile", MailboxStarted(1), CRASH, RestartScheduled(2.0, "crashed", 1))
    projector.start()
    assert checkins(engine) == [
        (False, "Email service: restarting this database's mailbox (restart 1)", "SRV1")
    ]


def test_a_given_up_mailbox_gets_a_failed_checkin_that_says_so(projector: Projector) -> None:
    engine = projector.serve("Smile")
    projector.log("Smile", MailboxStarted(1), CRASH, MailboxGaveUp(5, 60.0, 300.0))
    projector.start()
    assert checkins(engine) == [
        (
            False,
            "Email service: this database's mailbox keeps failing; "
            "gave up after 5 restarts within 60 s; next try in 300 s",
            "SRV1",
        )
    ]


def test_a_running_mailbox_gets_no_checkin_from_the_projector(projector: Projector) -> None:
    engine = projector.serve("Smile")
    projector.log("Smile", MailboxStarted(1), SelfTestPassed(1, ("database",)))
    projector.start()
    projector.next_round()
    assert checkins(engine) == []


def test_a_database_no_longer_served_is_left_alone(projector: Projector) -> None:
    engine = projector.serve("Smile")
    projector.log("Smile", MailboxStarted(1), CRASH, DatabaseLost("no longer eligible"))
    projector.start()
    projector.next_round()
    assert checkins(engine) == []


def test_a_database_without_an_engine_is_skipped_and_the_others_written(
    projector: Projector,
) -> None:
    engine = projector.serve("Smile")
    projector.log("Gone", MailboxStarted(1), CRASH)
    projector.log("Smile", MailboxStarted(1), CRASH)
    projector.start()
    assert [ok for ok, _, _ in checkins(engine)] == [False]


def test_a_database_that_does_not_answer_is_skipped_and_the_others_written(
    projector: Projector,
) -> None:
    engine = projector.serve("Smile")
    projector.served["Down"] = make_engine("sqlite:////nonexistent-folder/down.sqlite3")
    projector.log("Down", MailboxStarted(1), CRASH)
    projector.log("Smile", MailboxStarted(1), CRASH)
    projector.start()
    assert ([ok for ok, _, _ in checkins(engine)], projector.written) == ([False], ["Smile"])


def test_a_failed_checkin_is_written_every_interval_while_it_lasts(projector: Projector) -> None:
    engine = projector.serve("Smile")
    projector.log("Smile", MailboxStarted(1), CRASH)
    projector.start()
    projector.next_round()
    projector.next_round()
    assert len(checkins(engine)) == 3


def test_events_logged_after_the_start_are_followed(projector: Projector) -> None:
    engine = projector.serve("Smile")
    projector.log("Smile", MailboxStarted(1), SelfTestPassed(1, ("database",)))
    projector.start()
    projector.log("Smile", CRASH)
    projector.next_round()
    assert [ok for ok, _, _ in checkins(engine)] == [False]


def test_once_the_mailbox_runs_again_the_projector_stops_writing(projector: Projector) -> None:
    engine = projector.serve("Smile")
    projector.log("Smile", MailboxStarted(1), CRASH)
    projector.start()
    projector.log("Smile", MailboxStarted(2), SelfTestPassed(2, ("database",)))
    projector.next_round()
    projector.next_round()
    assert len(checkins(engine)) == 1
