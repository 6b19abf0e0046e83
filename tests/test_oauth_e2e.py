"""The mail work signs in end to end: the self-test, sending queued outbox rows and
importing from Dovecot, each through OAuth 2.0 against the local authority, aiosmtpd with
AUTH XOAUTH2 and Dovecot's ``oauth2`` passdb. A token that expires mid-batch is replaced
without a failed row; a replaced refresh token is saved; no token, secret or XOAUTH2
string reaches an event, a log line, a diagnostic or a row.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, update

from actors.mail.oauth import TokenSources, xoauth2_string
from actors.mail.settings import EmailSettings
from actors.mail.work import MailDeps, MailWork, ProbeLimiter
from actors.practice_schema import SINGLE_ROW_ID, email_messages, email_settings
from events.clock import FakeClock
from events.types import Event
from tests.dovecot import Dovecot, imap_settings_for, make_message
from tests.mail_helpers import claimed_engine, mail_settings, queue_rows, settings_for
from tests.oauth_servers import (
    APP_SECRET,
    GOOGLE_SECRET,
    OAuthAuthority,
    oauth_endpoints,
    sign_in_settings,
)
from tests.smtp_servers import RecordingSmtpServer
from tests.tls_certs import CertificateSet

pytest_plugins = ["tests.conftest_mail"]

USER = "reception"
INCARNATION = 7
PROBE_SECONDS = 60.0


@pytest.fixture
def authority(certs: CertificateSet) -> Iterator[OAuthAuthority]:
    with OAuthAuthority(certs) as started:
        yield started


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = claimed_engine(f"sqlite:///{tmp_path / 'practice.sqlite3'}", INCARNATION)
    yield made
    made.dispose()


@pytest.fixture
def dovecot(tmp_path: Path, authority: OAuthAuthority) -> Iterator[Dovecot]:
    server = Dovecot(tmp_path / "dovecot", introspection_url=authority.introspection_url)
    server.start()
    server.add_user(USER, "set-up-only")
    yield server
    server.remove()


class Mailbox:
    """One practice's ``MailWork`` on a fake clock, with the process's token sources
    pointing at the local authority; keeps every event."""

    def __init__(self, engine: Engine, authority: OAuthAuthority, certs: CertificateSet) -> None:
        self.clock = FakeClock()
        self.events: list[Event] = []
        self.deps = MailDeps(
            mail_settings(ca_file=str(certs.ca_cert)),
            PROBE_SECONDS,
            ProbeLimiter(),
            ZoneInfo("UTC"),
            tokens=TokenSources(oauth_endpoints(authority), self.clock),
        )
        self.work = MailWork(
            "Smile", INCARNATION, lambda: engine, self.events.extend, self.clock, self.deps
        )


@pytest.fixture
def mailbox(engine: Engine, authority: OAuthAuthority, certs: CertificateSet) -> Iterator[Mailbox]:
    made = Mailbox(engine, authority, certs)
    yield made
    made.work.close()


def configure(engine: Engine, settings: EmailSettings) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(email_settings)
            .where(email_settings.c.id == SINGLE_ROW_ID)
            .values(**dataclasses.asdict(settings))
        )


def oauth_settings(
    authority: OAuthAuthority,
    way: str,
    smtp: RecordingSmtpServer | None = None,
    dovecot: Dovecot | None = None,
    **changes: Any,
) -> EmailSettings:
    columns = sign_in_settings(authority, way, USER, **changes)
    values: dict[str, Any] = {}
    if smtp is not None:
        values.update(dataclasses.asdict(settings_for(smtp, smtp_auth="oauth2")))
    if dovecot is not None:
        imap = imap_settings_for(dovecot, USER, imap_auth="oauth2", imap_password="")
        values.update({k: v for k, v in dataclasses.asdict(imap).items() if k.startswith("imap")})
    return EmailSettings(**{**values, **columns})


def probed(mailbox: Mailbox) -> list[str]:
    """The diagnostics of two self-tests a probe interval apart: the first may count
    recent traffic as a pass, the second probes. The inbox has its turn after each, as in
    a mailbox (an inbox left without one for minutes is a fault of its own)."""
    messages: list[str] = []
    for _ in range(2):
        mailbox.clock.advance(PROBE_SECONDS + 1)
        messages += [d.message for d in mailbox.work.check()[1]]
        mailbox.work.run_inbox(0.0)
    return messages


def rows(count: int) -> list[dict[str, Any]]:
    return [{"subject": f"Appointment {n}"} for n in range(count)]


def statuses(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        found = conn.execute(
            select(email_messages.c.status)
            .where(email_messages.c.folder.in_(("outbox", "sent")))
            .order_by(email_messages.c.id)
        ).scalars()
        return list(found)


# --- the self-test -----------------------------------------------------------------------


@pytest.mark.parametrize("way", ["microsoft-app", "google-delegated"])
def test_the_self_test_signs_in_to_smtp_and_imap(
    mailbox: Mailbox,
    engine: Engine,
    authority: OAuthAuthority,
    dovecot: Dovecot,
    certs: CertificateSet,
    way: str,
) -> None:
    with RecordingSmtpServer("starttls", certs, oauth=authority) as smtp:
        configure(engine, oauth_settings(authority, way, smtp, dovecot))
        assert mailbox.work.check() == (("smtp", "imap"), ())


def test_a_refused_sign_in_is_a_diagnostic_in_the_servers_words(
    mailbox: Mailbox, engine: Engine, authority: OAuthAuthority, certs: CertificateSet
) -> None:
    with RecordingSmtpServer("starttls", certs, oauth=authority) as smtp:
        configure(engine, oauth_settings(authority, "microsoft-app", smtp, oauth_account="other"))
        _, diagnostics = mailbox.work.check()
    [found] = diagnostics
    assert found.component == "smtp"
    assert found.message.casefold().endswith(  # after what to do (sign_in_words)
        f"the mail server at localhost:{smtp.port} refused the sign-in of other "
        "(the server said: 535 5.7.3 authentication unsuccessful)"
    )


def test_a_revoked_sign_in_is_a_diagnostic_that_keeps_googles_words(
    mailbox: Mailbox, engine: Engine, authority: OAuthAuthority, dovecot: Dovecot
) -> None:
    configure(engine, oauth_settings(authority, "google-delegated", dovecot=dovecot))
    authority.revoke()
    _, diagnostics = mailbox.work.check()
    [found] = diagnostics
    assert (
        found.component,
        "invalid_grant: Token has been expired or revoked." in found.message,
    ) == (
        "imap",
        True,
    )


# --- sending -----------------------------------------------------------------------------


def test_a_queued_row_is_sent_signed_in_as_the_mailbox(
    mailbox: Mailbox, engine: Engine, authority: OAuthAuthority, certs: CertificateSet
) -> None:
    with RecordingSmtpServer("starttls", certs, oauth=authority) as smtp:
        configure(engine, oauth_settings(authority, "microsoft-app", smtp))
        queue_rows(engine, rows(1))
        mailbox.work.refresh_settings()
        mailbox.work.run_outbox()
        assert (statuses(engine), [m.authenticated_as for m in smtp.messages]) == (
            ["sent"],
            [USER],
        )


def test_a_token_that_expires_mid_batch_is_replaced_without_a_failed_row(
    mailbox: Mailbox, engine: Engine, authority: OAuthAuthority, certs: CertificateSet
) -> None:
    # After the second message the server hangs up and every token issued so far has
    # expired: the next connection's sign-in is refused once, then a new token works.
    def expire_after_second(number: int) -> None:
        if number == 2:
            authority.expire_access_tokens()

    with RecordingSmtpServer(
        "starttls",
        certs,
        oauth=authority,
        messages_per_connection=2,
        after_message=expire_after_second,
    ) as smtp:
        configure(engine, oauth_settings(authority, "microsoft-app", smtp))
        queue_rows(engine, rows(4))
        mailbox.work.refresh_settings()
        mailbox.work.run_outbox()
        assert (statuses(engine), len(smtp.messages), authority.grants) == (
            ["sent"] * 4,
            4,
            ["microsoft:client_credentials"] * 2,
        )


def test_sending_keeps_one_token_for_the_next_batches(
    mailbox: Mailbox, engine: Engine, authority: OAuthAuthority, certs: CertificateSet
) -> None:
    with RecordingSmtpServer("starttls", certs, oauth=authority) as smtp:
        configure(engine, oauth_settings(authority, "microsoft-app", smtp))
        mailbox.work.refresh_settings()
        for _ in range(3):
            queue_rows(engine, rows(1))
            mailbox.work.run_outbox()
            mailbox.clock.advance(mailbox.deps.mail.outbox_poll_seconds)
        assert (statuses(engine), len(authority.grants)) == (["sent"] * 3, 1)


def test_the_replaced_refresh_token_is_saved_in_email_settings(
    mailbox: Mailbox, engine: Engine, authority: OAuthAuthority, certs: CertificateSet
) -> None:
    with RecordingSmtpServer("starttls", certs, oauth=authority) as smtp:
        configure(engine, oauth_settings(authority, "microsoft-delegated", smtp))
        queue_rows(engine, rows(1))
        mailbox.work.refresh_settings()
        mailbox.work.run_outbox()
    with engine.connect() as conn:
        stored = conn.execute(select(email_settings.c.oauth_refresh_token)).scalar_one()
    assert [stored] == authority.live_refresh_tokens(USER)


def test_reading_back_the_saved_refresh_token_keeps_the_connections(
    mailbox: Mailbox, engine: Engine, authority: OAuthAuthority, dovecot: Dovecot
) -> None:
    configure(engine, oauth_settings(authority, "microsoft-delegated", dovecot=dovecot))
    mailbox.work.refresh_settings()
    mailbox.work.run_inbox(0.0)  # signs in: the refresh token is replaced and saved
    logins = authority.state.introspections
    mailbox.work.refresh_settings()  # reads the saved token back
    mailbox.clock.advance(mailbox.deps.mail.inbox_poll_seconds)
    mailbox.work.run_inbox(0.0)
    assert authority.state.introspections == logins  # the IMAP session was kept


# --- importing ---------------------------------------------------------------------------


def test_mail_is_imported_from_dovecot_through_sign_in(
    mailbox: Mailbox, engine: Engine, authority: OAuthAuthority, dovecot: Dovecot
) -> None:
    dovecot.append(USER, make_message("Signed in", message_id="<signed.in@test>"))
    configure(engine, oauth_settings(authority, "microsoft-delegated", dovecot=dovecot))
    mailbox.work.refresh_settings()
    mailbox.work.run_inbox(0.0)
    with engine.connect() as conn:
        found = conn.execute(
            select(email_messages.c.message_id).where(email_messages.c.folder == "inbox")
        ).scalars()
        assert list(found) == ["<signed.in@test>"]


# --- the secrets canary ------------------------------------------------------------------


def test_no_token_secret_or_xoauth2_string_is_shown_anywhere(
    mailbox: Mailbox,
    engine: Engine,
    authority: OAuthAuthority,
    dovecot: Dovecot,
    certs: CertificateSet,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    keys: list[str] = []  # the service account's private key, one line of it
    with RecordingSmtpServer("starttls", certs, oauth=authority) as smtp:
        for way in ("microsoft-app", "microsoft-delegated", "google-delegated", "google-app"):
            dovecot.append(USER, make_message(f"Canary {way}"))
            settings = oauth_settings(authority, way, smtp, dovecot)
            if way == "google-app":
                keys.append(json.loads(settings.oauth_client_secret)["private_key"].split()[5])
            configure(engine, settings)
            queue_rows(engine, rows(2))
            mailbox.clock.advance(PROBE_SECONDS + 1)
            mailbox.work.refresh_settings()
            mailbox.work.run_outbox()
            mailbox.work.run_inbox(0.0)
            authority.expire_access_tokens()  # refused once, then replaced
            shown += probed(mailbox)
            authority.revoke()  # refused, and the refresh refused too
            queue_rows(engine, rows(1))
            mailbox.clock.advance(PROBE_SECONDS + 1)
            mailbox.work.run_outbox()
            shown += probed(mailbox)
    with engine.connect() as conn:
        shown += [str(e) for e in conn.execute(select(email_messages.c.last_error)).scalars()]
    shown += [repr(event) for event in mailbox.events]
    shown += [record.getMessage() for record in caplog.records]
    shown.append(caplog.text)
    everything = "\n".join(shown)
    access = authority.issued_access_tokens()
    canaries = [APP_SECRET, GOOGLE_SECRET, *keys, *access, *authority.state.refresh]
    canaries += [
        base64.b64encode(xoauth2_string(USER, token).encode()).decode() for token in access
    ]
    assert [c for c in canaries if c in everything] == []


def test_the_canary_run_signs_in_refuses_and_fails_for_real(
    mailbox: Mailbox,
    engine: Engine,
    authority: OAuthAuthority,
    dovecot: Dovecot,
    certs: CertificateSet,
) -> None:
    # The search above means something only if the same steps signed in, were refused and
    # failed for real: tokens issued, rows sent, mail imported, refusals diagnosed.
    shown: list[str] = []
    with RecordingSmtpServer("starttls", certs, oauth=authority) as smtp:
        dovecot.append(USER, make_message("Canary"))
        configure(engine, oauth_settings(authority, "google-delegated", smtp, dovecot))
        queue_rows(engine, rows(2))
        mailbox.clock.advance(PROBE_SECONDS + 1)
        mailbox.work.refresh_settings()
        mailbox.work.run_outbox()
        mailbox.work.run_inbox(0.0)
        authority.expire_access_tokens()
        shown += probed(mailbox)
        authority.revoke()
        mailbox.clock.advance(PROBE_SECONDS + 1)
        shown += probed(mailbox)
    with engine.connect() as conn:
        imported = conn.execute(
            select(email_messages.c.id).where(email_messages.c.folder == "inbox")
        ).all()
    assert (
        statuses(engine),
        len(imported),
        len(authority.issued_access_tokens()) >= 2,
        sorted({"invalid_grant" in m for m in shown}),
    ) == (["sent", "sent"], 1, True, [True])
