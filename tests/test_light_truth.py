"""The light tells the truth, in both directions (issue 13, item 4).

- One recipient answering 450 is that row's problem: the SMTP part of the self-test still
  passes (the server answered; connection, EHLO and AUTH worked).
- An HTTP SMS gateway that refuses connections or answers 5xx fails the ``sms`` component
  with the gateway's words.
- Sending on, no SMTP server set (the state ``db init`` leaves) and mail waiting: "email
  is not set up for this practice", pointing at the Email Setup Wizard. Nothing waiting:
  no flag (a practice that does not use email is not told it is broken).

Real servers: aiosmtpd with per-recipient replies, the SMS gateway stub of
``tests.test_sms`` (a real HTTP server on loopback), SQLite practice databases. The last
test runs the real tree and reads the status as a workstation does
(``supervisor.workstation_view``, the code behind ``email-service status``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from actors.mail.settings import EmailSettings
from actors.mail.work import MailWork
from actors.practice_db import make_engine
from events.store import read_all
from events.types import MessageSendFailed
from supervisor.service import start_tree, stop_tree
from supervisor.workstation_view import read_status
from tests.mail_helpers import (
    INCARNATION,
    claimed_engine,
    queue_row,
    read_row,
    settings_for,
    smtp_settings,
    wait_until,
    write_email_settings,
)
from tests.smtp_servers import RecordingSmtpServer, free_port
from tests.test_mail_work import Works, configure
from tests.test_service import make_practices
from tests.test_service import settings_for as service_settings
from tests.test_sms import Answer, GatewayServer

pytest_plugins = ["tests.conftest_mail"]

GREYLISTED = "greylisted@example.org"
GREYLIST_REPLY = "450 4.2.0 Greylisted, please try again in 5 minutes"
NUMBER = "+447911123456"
DOWN = Answer(503, b'{"message": "Service temporarily unavailable"}')


@pytest.fixture
def work_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = claimed_engine(f"sqlite:///{tmp_path / 'practice.sqlite3'}", INCARNATION)
    yield engine
    engine.dispose()


@pytest.fixture
def works() -> Iterator[Works]:
    made = Works()
    yield made
    made.close()


@pytest.fixture
def gateway() -> Iterator[GatewayServer]:
    server = GatewayServer()
    try:
        yield server
    finally:
        server.stop()


def sms_settings(smtp: RecordingSmtpServer, gateway_url: str) -> EmailSettings:
    return dataclasses.replace(
        settings_for(smtp), sms_enabled=True, sms_gateway=f"form:{gateway_url}", sms_region="GB"
    )


def checked_after_sending(works: Works, work: MailWork) -> tuple[str, ...]:
    """Check once (the first probe), send what is due, check again within the minute;
    return the second check's diagnostics as ``component: message``."""
    work.check()
    work.run_outbox()
    works.clock.advance(10)
    _, diagnostics = work.check()
    return tuple(f"{d.component}: {d.message}" for d in diagnostics)


# --- 450 for one recipient ---------------------------------------------------------------


def test_a_450_for_one_recipient_does_not_fail_the_smtp_self_test(
    works: Works, work_engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    smtp_server.script.rcpt[GREYLISTED] = GREYLIST_REPLY
    configure(work_engine, settings_for(smtp_server))
    row_id = queue_row(work_engine, to_addrs=GREYLISTED)
    work = works.make(work_engine)
    assert checked_after_sending(works, work) == ()
    assert read_row(work_engine, row_id)["status"] == "queued"  # to be retried


def test_a_lost_connection_still_fails_the_smtp_self_test(
    works: Works, work_engine: Engine
) -> None:
    configure(work_engine, smtp_settings("127.0.0.1", free_port()))
    queue_row(work_engine)
    work = works.make(work_engine)
    [line] = checked_after_sending(works, work)
    assert line.startswith("smtp: port closed")


# --- the SMS gateway ---------------------------------------------------------------------


def test_an_sms_gateway_answering_503_fails_sms_with_its_words(
    works: Works, work_engine: Engine, smtp_server: RecordingSmtpServer, gateway: GatewayServer
) -> None:
    gateway.provider.answer = DOWN
    configure(work_engine, sms_settings(smtp_server, gateway.url()))
    queue_row(work_engine, channel="sms", to_addrs=NUMBER, body_text="See you at 10")
    work = works.make(work_engine)
    assert checked_after_sending(works, work) == (
        "sms: SMS gateway answered 503 Service Unavailable: Service temporarily unavailable",
    )


def test_an_sms_gateway_down_before_any_text_is_found_by_the_probe(
    works: Works, work_engine: Engine, smtp_server: RecordingSmtpServer, gateway: GatewayServer
) -> None:
    gateway.provider.answer = DOWN
    configure(work_engine, sms_settings(smtp_server, gateway.url()))
    components, diagnostics = works.make(work_engine).check()
    assert "sms" in components
    assert [(d.component, d.message) for d in diagnostics] == [
        ("sms", "SMS gateway answered 503 Service Unavailable")
    ]
    assert (gateway.provider.heads, gateway.provider.seen) == (1, [])  # no text was sent


def test_an_sms_gateway_refusing_connections_fails_sms(
    works: Works, work_engine: Engine, smtp_server: RecordingSmtpServer
) -> None:
    url = f"http://127.0.0.1:{free_port()}/send"
    configure(work_engine, sms_settings(smtp_server, url))
    queue_row(work_engine, channel="sms", to_addrs=NUMBER, body_text="See you at 10")
    work = works.make(work_engine)
    [line] = checked_after_sending(works, work)
    assert line.startswith("sms: cannot connect to the SMS gateway 127.0.0.1")
    assert "refused" in line.lower()


def test_an_sms_gateway_that_works_again_passes_after_a_text_goes(
    works: Works, work_engine: Engine, smtp_server: RecordingSmtpServer, gateway: GatewayServer
) -> None:
    gateway.provider.answer = DOWN
    configure(work_engine, sms_settings(smtp_server, gateway.url()))
    row_id = queue_row(work_engine, channel="sms", to_addrs=NUMBER, body_text="At 10")
    work = works.make(work_engine)
    assert checked_after_sending(works, work) != ()
    gateway.provider.answer = Answer()
    with work_engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE email_messages SET next_attempt_at = NULL WHERE id = {row_id}"
        )
    works.clock.advance(works.deps.mail.outbox_poll_seconds)
    assert checked_after_sending(works, work) == ()
    assert read_row(work_engine, row_id)["status"] == "sent"


def test_an_sms_answer_about_one_number_is_not_the_gateways_fault(
    works: Works, work_engine: Engine, smtp_server: RecordingSmtpServer, gateway: GatewayServer
) -> None:
    gateway.provider.answer = Answer(400, b'{"message": "The number is not a mobile number"}')
    configure(work_engine, sms_settings(smtp_server, gateway.url()))
    queue_row(work_engine, channel="sms", to_addrs=NUMBER, body_text="At 10")
    assert checked_after_sending(works, works.make(work_engine)) == ()


# --- no SMTP server set ------------------------------------------------------------------


def test_queued_mail_without_an_smtp_server_says_email_is_not_set_up(
    works: Works, work_engine: Engine
) -> None:
    queue_row(work_engine)
    queue_row(work_engine)
    components, diagnostics = works.make(work_engine, db="Smile Dental").check()
    assert components == ("smtp",)
    assert [(d.component, d.level, d.message) for d in diagnostics] == [
        (
            "smtp",
            "error",
            "Email is not set up for this practice: no mail server (SMTP) is set, and 2 "
            "messages wait in the outbox. Set it up with the Email Setup Wizard: "
            "email-service setup --db Smile Dental",
        )
    ]


def test_a_fresh_database_with_nothing_queued_is_not_flagged(
    works: Works, work_engine: Engine
) -> None:
    assert works.make(work_engine).check() == ((), ())


def test_sending_turned_off_without_an_smtp_server_is_not_flagged(
    works: Works, work_engine: Engine
) -> None:
    configure(work_engine, EmailSettings(sending_enabled=False))
    queue_row(work_engine)
    assert works.make(work_engine).check() == ((), ())


# --- what a workstation sees, from the real service's check-ins ---------------------------


def test_the_workstation_light_from_the_real_check_ins(
    tmp_path: Path, smtp_server: RecordingSmtpServer, gateway: GatewayServer
) -> None:
    folder = tmp_path / "practices"
    names = ("Greylist Dental", "Gateway Dental", "Unset Dental", "Quiet Dental")
    make_practices(folder, *names)
    urls = {name: f"sqlite:///{folder / (name + '.sqlite3')}" for name in names}
    engines = {name: make_engine(url) for name, url in urls.items()}
    smtp = {
        "smtp_host": smtp_server.host,
        "smtp_port": smtp_server.port,
        "smtp_security": "none",
        "from_address": "reception@practice.example",
    }
    smtp_server.script.rcpt[GREYLISTED] = GREYLIST_REPLY
    gateway.provider.answer = DOWN
    write_email_settings(engines["Greylist Dental"], **smtp)
    write_email_settings(
        engines["Gateway Dental"],
        **smtp,
        sms_enabled=True,
        sms_gateway=f"form:{gateway.url()}",
        sms_region="GB",
    )
    greylisted = queue_row(engines["Greylist Dental"], to_addrs=GREYLISTED)
    texted = queue_row(engines["Gateway Dental"], channel="sms", to_addrs=NUMBER, body_text="Hi")
    queue_row(engines["Unset Dental"])
    tree = start_tree(service_settings(tmp_path))
    try:
        wait_until(
            lambda: {e.row_id for e in _events(tree, MessageSendFailed)} >= {greylisted, texted},
            "the greylisted row and the text to fail once",
            timeout=30,
        )
        after = {name: _checkins(engines[name]) for name in names}

        def settled() -> bool:
            return all(len(_checkins(engines[n])) >= len(after[n]) + 2 for n in names)

        wait_until(settled, "two more check-ins per database", timeout=60)
        greylist_checkins = _checkins(engines["Greylist Dental"])
        seen = {name: read_status(name, urls[name], timedelta(seconds=15)) for name in names}
    finally:
        stop_tree(tree, "test over")
        for engine in engines.values():
            engine.dispose()
    assert all(greylist_checkins), "a 450 for one recipient failed a check-in"
    assert {name: s.status.status for name, s in seen.items()} == {
        "Greylist Dental": "running",
        "Gateway Dental": "not_available",
        "Unset Dental": "not_available",
        "Quiet Dental": "running",
    }
    assert seen["Gateway Dental"].status.tooltip == (
        "SMS: SMS gateway answered 503 Service Unavailable: Service temporarily unavailable"
    )
    assert seen["Unset Dental"].status.tooltip.startswith(
        "Sending (SMTP): Email is not set up for this practice"
    )
    assert seen["Unset Dental"].status.tooltip.endswith("email-service setup --db Unset Dental")


def _checkins(engine: Engine) -> list[bool]:
    """Every check-in's ``ok``, oldest first, read as a workstation reads the table."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT ok FROM email_service_checkins ORDER BY id").all()
    return [bool(row[0]) for row in rows]


def _events(tree: object, kind: type) -> list:  # type: ignore[type-arg]
    store = tree.store  # type: ignore[attr-defined]
    return [r.event for r in read_all(store) if isinstance(r.event, kind)]
