"""A Restart a person asks for sends at once the mail that waited for the server.

Outbox rows whose last attempt failed because the server could not be used (nothing
listening, the log-in refused) wait out a back-off of a minute, doubling up to an hour.
Once the operator has mended the server or its settings and pressed Restart (the status
page, ``email-service restart --db NAME``, the wizard's save), those rows are tried at
once; a row the server put off for its own sake (a 450 for its recipient) keeps its
wait, and so does every row after a restart nobody asked for (a crash's).

Real aiosmtpd servers (``tests.smtp_servers``), SQLite and PostgreSQL practice databases.
The first tests drive the mail work of two incarnations on a fake clock, the restart
granted as the command reader grants it; the last runs the real tree and asks for the
restart with a command row, as the status page and the command line do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from actors import commands_table, practice_db
from actors.mail.outbox import MESSAGE_FAULT, SERVER_FAULT
from actors.mail.settings import EmailSettings
from actors.mail.work import MailDeps, MailWork, ProbeLimiter
from actors.practice_db import claim_incarnation
from actors.practice_schema import init_practice_database
from config import load_settings
from events.clock import FakeClock
from events.store import read_all
from events.types import Event, MessageSendFailed, MessageSent, OutboxBackoffCleared
from supervisor.service import start_tree, stop_tree
from tests.mail_helpers import (
    claimed_engine,
    mail_settings,
    queue_row,
    read_row,
    settings_for,
    wait_until,
    write_email_settings,
)
from tests.servers import POSTGRES_ADMIN_URL, named_databases, server_url
from tests.smtp_servers import RecordingSmtpServer, free_port
from tests.test_mail_work import configure

pytest_plugins = ["tests.conftest_mail"]

DB = "Smile Dental"
USER = "reception"
OLD_PASSWORD = "Old-Pa55word"
NEW_PASSWORD = "New-Pa55word"
GREYLISTED = "greylisted@example.org"
GREYLIST_REPLY = "450 4.2.0 Greylisted, please try again in 5 minutes"

MakeServer = Callable[..., RecordingSmtpServer]


@pytest.fixture(params=["sqlite", "postgresql"])
def practice_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'practice.sqlite3'}"
        return
    name = f"pes_retry_{tmp_path.name[-12:].replace('-', '_').lower()}"
    with named_databases(POSTGRES_ADMIN_URL, [name]) as urls:
        yield urls[name]


class Incarnations:
    """The mail work of successive incarnations of one database, on one fake clock and
    one ``ProbeLimiter`` (the process's, which carries a restart's grant)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.clock = FakeClock()
        self.limiter = ProbeLimiter()
        self.deps = MailDeps(mail_settings(), 60.0, self.limiter, ZoneInfo("UTC"))
        self.events: list[Event] = []
        self.live: MailWork | None = None
        self.number = 7

    def start(self) -> MailWork:
        """Start the next incarnation (the last one closed), its settings read."""
        if self.live is not None:
            self.live.close()
            self.number += 1
            claim_incarnation(self.engine, self.number, "test-server", datetime.now(UTC))
        engine = self.engine
        self.live = MailWork(
            DB, self.number, lambda: engine, self.events.extend, self.clock, self.deps
        )
        self.live.check()
        return self.live

    def outbox_round(self) -> None:
        assert self.live is not None
        self.clock.advance(self.deps.mail.outbox_poll_seconds)
        self.live.run_outbox()

    def close(self) -> None:
        if self.live is not None:
            self.live.close()


@pytest.fixture
def mailbox(practice_url: str) -> Iterator[Incarnations]:
    engine = claimed_engine(practice_url, 7)
    made = Incarnations(engine)
    yield made
    made.close()
    engine.dispose()


def smtp(
    server: RecordingSmtpServer, password: str = OLD_PASSWORD, **changes: Any
) -> EmailSettings:
    return settings_for(server, smtp_username=USER, smtp_password=password, **changes)


def server_fails(
    kind: str, mailbox: Incarnations, server: RecordingSmtpServer
) -> Callable[[], None]:
    """Make the server unusable in the way ``kind`` says; return how the operator mends it."""
    work = mailbox.live
    assert work is not None
    if kind == "log-in refused":  # the provider changed the password
        server.users[USER] = NEW_PASSWORD
        return lambda: configure(mailbox.engine, smtp(server, NEW_PASSWORD))
    # unreachable: the settings were changed to a port where nothing listens
    configure(mailbox.engine, smtp(server, smtp_port=free_port()))
    work.refresh_settings()
    return lambda: configure(mailbox.engine, smtp(server))


def greylisted_then_waiting(
    mailbox: Incarnations, server: RecordingSmtpServer, kind: str
) -> tuple[int, int]:
    """Row ``own``: put off by a 450 for its recipient. Then the server fails (``kind``)
    and row ``waiting`` fails for it. The operator mends the server. Returns both ids."""
    server.script.rcpt[GREYLISTED] = GREYLIST_REPLY
    configure(mailbox.engine, smtp(server))
    mailbox.start()
    own = queue_row(mailbox.engine, to_addrs=GREYLISTED)
    mailbox.outbox_round()
    mend = server_fails(kind, mailbox, server)
    waiting = queue_row(mailbox.engine)
    mailbox.outbox_round()
    mend()
    return own, waiting


@pytest.mark.parametrize("kind", ["log-in refused", "unreachable"])
def test_a_requested_restart_sends_at_once_what_waited_for_the_server(
    mailbox: Incarnations, make_smtp_server: MakeServer, kind: str
) -> None:
    server = make_smtp_server("none", {USER: OLD_PASSWORD})
    own, waiting = greylisted_then_waiting(mailbox, server, kind)
    before = {i: dict(read_row(mailbox.engine, i)) for i in (own, waiting)}
    mailbox.limiter.grant(DB)  # what the command reader does with a restart row
    mailbox.start()
    mailbox.live.run_outbox()  # type: ignore[union-attr]
    after = {i: dict(read_row(mailbox.engine, i)) for i in (own, waiting)}
    cleared = [e for e in mailbox.events if isinstance(e, OutboxBackoffCleared)]
    assert (before[waiting]["status"], before[waiting]["retry_cause"]) == ("queued", SERVER_FAULT)
    assert (before[own]["status"], before[own]["retry_cause"]) == ("queued", MESSAGE_FAULT)
    assert after[waiting]["status"] == "sent"
    assert [m.rcpt_tos for m in server.messages] == [("patient@example.org",)]
    assert (after[own]["status"], after[own]["next_attempt_at"]) == (
        "queued",
        before[own]["next_attempt_at"],
    )
    assert cleared == [OutboxBackoffCleared(mailbox.number, 1)]


def test_a_restart_nobody_asked_for_keeps_the_back_off(
    mailbox: Incarnations, make_smtp_server: MakeServer
) -> None:
    server = make_smtp_server("none", {USER: OLD_PASSWORD})
    _own, waiting = greylisted_then_waiting(mailbox, server, "log-in refused")
    before = read_row(mailbox.engine, waiting)["next_attempt_at"]
    mailbox.start()  # a crash's restart: no grant
    mailbox.live.run_outbox()  # type: ignore[union-attr]
    row = read_row(mailbox.engine, waiting)
    assert (row["status"], row["next_attempt_at"]) == ("queued", before)
    assert not any(isinstance(e, OutboxBackoffCleared) for e in mailbox.events)


# --- the real tree: a restart command row, as the status page and the command line write ---


@pytest.fixture(params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """``(server_url, database name, database url)`` of one practice registered to us."""
    server_id = f"SRV-RETRY-{tmp_path.name[-8:]}"
    if request.param == "sqlite":
        folder = tmp_path / "practices"
        folder.mkdir()
        url = f"sqlite:///{folder / (DB + '.sqlite3')}"
        init_practice_database(url, practice_name=DB, registered_server=server_id)
        yield f"sqlite:///{folder}", DB, url
        return
    name = f"pes_retry_tree_{tmp_path.name[-12:].replace('-', '_').lower()}"
    with named_databases(POSTGRES_ADMIN_URL, [name]) as urls:
        init_practice_database(urls[name], practice_name=DB, registered_server=server_id)
        yield server_url(POSTGRES_ADMIN_URL), name, urls[name]


def test_a_restart_command_sends_the_waiting_mail_before_its_back_off_ends(
    tmp_path: Path, served: tuple[str, str, str], make_smtp_server: MakeServer
) -> None:
    server_address, _name, url = served
    smtp_server = make_smtp_server("none", {USER: NEW_PASSWORD})
    engine = practice_db.make_engine(url)
    settings = load_settings(
        environ={},
        overrides={
            "service.event_store": f"sqlite:///{tmp_path / 'events.sqlite3'}",
            "service.server_id": f"SRV-RETRY-{tmp_path.name[-8:]}",
            "service.genuine_server_check": True,
            "databases.server_url": server_address,
            "health.checkin_seconds": 3.0,
            "mail.io_timeout_seconds": 3.0,
        },
    )
    old = dataclasses.asdict(smtp(smtp_server, OLD_PASSWORD))  # the password has changed
    write_email_settings(engine, **old)
    waiting = queue_row(engine)
    tree = start_tree(settings)
    try:
        wait_until(
            lambda: any(
                isinstance(e, MessageSendFailed) and e.row_id == waiting for e in _events(tree)
            ),
            "the first attempt to fail on the log-in",
            timeout=60,
        )
        row = read_row(engine, waiting)
        write_email_settings(engine, smtp_password=NEW_PASSWORD)  # the wizard's save
        commands_table.request_restart_once(engine, "RECEPTION-PC")  # the Restart button
        wait_until(
            lambda: any(isinstance(e, MessageSent) and e.row_id == waiting for e in _events(tree)),
            "the waiting message to be sent",
            timeout=240,
        )
        sent = read_row(engine, waiting)
        cleared = [e for e in _events(tree) if isinstance(e, OutboxBackoffCleared)]
    finally:
        stop_tree(tree, "test over")
        engine.dispose()
    assert (row["status"], row["retry_cause"]) == ("queued", SERVER_FAULT)
    assert sent["sent_at"] < row["next_attempt_at"], "it waited out its back-off"
    assert cleared == [OutboxBackoffCleared(2, 1)]


def _events(tree: Any) -> list[Event]:
    return [r.event for r in read_all(tree.store)]
