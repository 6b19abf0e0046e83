"""Helpers for the outbox and SMTP tests: settings, rows, the database clock, events.

Plain functions (no fixtures: those are in ``tests.conftest_mail``), so test modules can
import them while ``tests.conftest_mail`` is loaded as a plugin.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, RowMapping, insert, select, update

from actors.mail.settings import EmailSettings
from actors.practice_db import claim_incarnation, make_engine
from actors.practice_schema import email_messages, email_settings, init_practice_database, utcnow
from config.settings import MailSettings
from events.types import Event
from tests.smtp_servers import RecordingSmtpServer, SmtpSinkServer

INCARNATION = 7
"""The incarnation the test practice databases are claimed for."""

TIMEOUT = 5.0
"""The tests' ``io_timeout_seconds``: short, since a black hole waits this long."""


def mail_settings(**changes: Any) -> MailSettings:
    """Return ``[mail]`` settings for tests (the defaults, with a short timeout)."""
    base = MailSettings(
        outbox_poll_seconds=1.0,
        outbox_batch=50,
        inbox_poll_seconds=1.0,
        io_timeout_seconds=TIMEOUT,
        ca_file="",
        poison_limit=3,
    )
    return dataclasses.replace(base, **changes)


def smtp_settings(host: str, port: int, **changes: Any) -> EmailSettings:
    """Return a practice's settings sending through ``host:port`` (no TLS unless changed)."""
    base = EmailSettings(
        from_address="reception@practice.example",
        from_name="Smile Dental",
        smtp_host=host,
        smtp_port=port,
        smtp_security="none",
        max_per_minute=0,
    )
    return dataclasses.replace(base, **changes)


def settings_for(server: RecordingSmtpServer | SmtpSinkServer, **changes: Any) -> EmailSettings:
    """Return settings pointing at ``server`` with its security (host ``localhost`` for TLS)."""
    security = getattr(server, "security", "none")
    host = "localhost" if security != "none" else server.host
    return smtp_settings(host, server.port, **{"smtp_security": security, **changes})


class EventLog:
    """The outbox's ``emit``: keeps every event, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, events: Sequence[Event]) -> None:
        self.events.extend(events)

    def of(self, kind: type[Event]) -> list[Event]:
        return [event for event in self.events if isinstance(event, kind)]


def queue_row(engine: Engine, **values: Any) -> int:
    """Insert a queued outbox row (a simple email unless ``values`` say otherwise)."""
    row: dict[str, Any] = {
        "folder": "outbox",
        "channel": "email",
        "status": "queued",
        "to_addrs": "patient@example.org",
        "subject": "Your appointment",
        "body_text": "See you on Monday at 9.",
    }
    row.update(values)
    with engine.begin() as conn:
        key = conn.execute(insert(email_messages).values(**row)).inserted_primary_key
    assert key is not None
    return int(key[0])


def queue_rows(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert queued outbox rows in one transaction, as the practice software queues them
    (each a simple email, with ``queue_row``'s defaults, unless its values say otherwise)."""
    if not rows:
        return
    base = {
        "folder": "outbox",
        "channel": "email",
        "status": "queued",
        "to_addrs": "patient@example.org",
        "subject": "Your appointment",
        "body_text": "See you on Monday at 9.",
    }
    with engine.begin() as conn:
        conn.execute(insert(email_messages), [{**base, **row} for row in rows])


def write_email_settings(engine: Engine, **values: Any) -> None:
    """Set columns of the practice's ``email_settings`` row, as the setup wizard saves them."""
    with engine.begin() as conn:
        conn.execute(update(email_settings).values(**values))


def read_row(engine: Engine, row_id: int) -> RowMapping:
    """Return one ``email_messages`` row as a mapping."""
    with engine.connect() as conn:
        return (
            conn.execute(select(email_messages).where(email_messages.c.id == row_id)).one()._mapping
        )


def db_now(engine: Engine) -> datetime:
    """Return the database server's current UTC time (naive, as stored)."""
    with engine.connect() as conn:
        value: datetime = conn.execute(select(utcnow())).scalar_one()
    return value


def claimed_engine(url: str, incarnation: int = INCARNATION) -> Engine:
    """Make ``url`` a practice database, claim ``incarnation`` on it, return its engine."""
    init_practice_database(url, practice_name="Smile Dental")
    engine = make_engine(url)
    claim_incarnation(engine, incarnation, "test-server", datetime.now(UTC))
    return engine


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait for ``condition`` (another thread or process is finishing something); fail
    with ``what`` after ``timeout`` seconds. A wait, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting {timeout:g} s for {what}")
        time.sleep(0.01)
