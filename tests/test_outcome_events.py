"""actors.mail.outcome_events: the log converges to the practice database after a kill."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from actors.mail import outcome_events
from actors.practice_schema import email_messages
from events.types import Event, MessageReceived, MessageSendFailed, MessageSent
from tests.dovecot import new_practice_engine
from tests.servers import fresh_database


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(request.param, tmp_path) as url:
        made = new_practice_engine(url)
        try:
            yield made
        finally:
            made.dispose()


def _add(engine: Engine, **values: Any) -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(email_messages).values(**values)).inserted_primary_key[0])


def _pending(engine: Engine) -> list[int]:
    m = email_messages
    with engine.connect() as conn:
        return list(conn.execute(select(m.c.id).where(m.c.event_pending.is_not(None))).scalars())


def test_a_start_appends_each_owed_event_marked_recovered_and_clears_the_marks(
    engine: Engine,
) -> None:
    sent = _add(
        engine,
        folder="sent",
        status="sent",
        message_id="<s@x>",
        to_addrs="a@x, b@x",
        event_pending=True,
    )
    failed = _add(
        engine, status="failed", message_id="<f@x>", last_error="550 no", event_pending=True
    )
    retried = _add(
        engine, status="queued", message_id="<r@x>", last_error="451", event_pending=True
    )
    received = _add(
        engine,
        folder="inbox",
        status="received",
        message_id="<i@x>",
        imap_uidvalidity=7,
        imap_uid=3,
        event_pending=True,
    )
    _add(engine, folder="sent", status="sent", message_id="<done@x>")  # its event is logged
    appended: list[Event] = []
    flushed: list[int] = []

    def flush() -> None:
        flushed.append(len(appended))

    assert outcome_events.recover(engine, 4, appended.extend, flush) == 4
    assert appended == [
        MessageSent(4, sent, "<s@x>", 2, recovered=True),
        MessageSendFailed(4, failed, "<f@x>", "550 no", permanent=True, recovered=True),
        MessageSendFailed(4, retried, "<r@x>", "451", permanent=False, recovered=True),
        MessageReceived(4, received, "<i@x>", 7, 3, recovered=True),
    ]
    assert flushed == [4]  # durable before the marks were cleared
    assert _pending(engine) == []
    assert outcome_events.recover(engine, 5, appended.extend, flush) == 0


def test_a_row_being_sent_again_keeps_its_mark_for_its_next_outcome(engine: Engine) -> None:
    row = _add(engine, status="sending", message_id="<s@x>", event_pending=True)
    assert outcome_events.recover(engine, 2, [].extend, lambda: None) == 0
    assert _pending(engine) == [row]
