"""What a workstation sees of sign-in trouble (issue 14, item 3).

Through the real servers too: the mail work signing in (local authority, aiosmtpd with
XOAUTH2) with an expiry 10 days ahead (steady light, warning line), and an authority that
answers ``AADSTS7000222`` (the tooltip says the secret expired and what to do).

- A known expiry (``oauth_expires_at``) within 14 days: a warning line in the diagnostics
  while the light stays steady (the check-in is ok); once passed: not available, with the
  reason as the tooltip. Fake clocks; the real check-in writer on a SQLite practice
  database; the workstation's own reading (``supervisor.workstation_view``).
- A refusal in Microsoft's words from a real aiosmtpd becomes the tooltip: plain words first,
  the server's words kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import Engine

from actors.checkin_writer import CheckInWriter
from actors.database_selftest import DatabaseSelfTest
from actors.mail.oauth import TokenSources
from actors.mail.settings import EmailSettings
from actors.mail.sign_in_expiry import WARN_DAYS, expiry_diagnostic
from actors.mail.steps import CheckInStep, MailCheck
from actors.mail.work import MailDeps, MailWork, ProbeLimiter
from actors.mailbox_work import SelfTestWork, WorkContext
from actors.practice_db import claim_incarnation, make_engine
from actors.practice_schema import init_practice_database
from events.clock import FakeClock
from events.types import Diagnostic, Event, SelfTestFailed, SelfTestPassed
from supervisor.workstation_view import read_diagnostics, read_status
from tests.mail_helpers import mail_settings, settings_for, smtp_settings
from tests.oauth_servers import OAuthAuthority, oauth_endpoints, sign_in_settings
from tests.smtp_servers import RecordingSmtpServer, free_port
from tests.test_mail_work import Works, configure
from tests.tls_certs import CertificateSet, make_certificates

INCARNATION = 7
INTERVAL = 15.0
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
CLIENT_SUBMISSION = "550 5.7.30 Basic authentication is not supported for Client Submission."

APP = EmailSettings(
    smtp_host="smtp.office365.com",
    smtp_auth="oauth2",
    oauth_provider="microsoft",
    oauth_flow="app",
    oauth_account="reception@smile.example",
)


# --- the expiry line, pure ----------------------------------------------------------------------


def _at(days: float) -> EmailSettings:
    expires = (NOW + timedelta(days=days)).replace(tzinfo=None)
    return dataclasses.replace(APP, oauth_expires_at=expires)


def test_an_expiry_further_than_14_days_says_nothing() -> None:
    assert expiry_diagnostic(_at(WARN_DAYS + 1), NOW) is None


def test_an_expiry_within_14_days_is_a_warning_naming_the_date_and_what_to_do() -> None:
    found = expiry_diagnostic(_at(10), NOW)
    assert found == Diagnostic(
        "smtp",
        "warning",
        "the Microsoft app's client secret expires on 2026-12-12 09:00 UTC (in 10 days): create "
        "a new one (Entra admin centre, App registrations, Certificates & secrets) and enter it "
        "in the Email Setup Wizard (email-service setup)",
    )


def test_a_passed_expiry_is_an_error() -> None:
    found = expiry_diagnostic(_at(-1), NOW)
    assert found is not None
    assert found.level == "error"
    assert "expired on 2026-12-01 09:00 UTC" in found.message


def test_a_delegated_google_sign_in_names_the_account_and_sign_in_again() -> None:
    settings = dataclasses.replace(_at(3), oauth_provider="google", oauth_flow="delegated")
    found = expiry_diagnostic(settings, NOW)
    assert found is not None
    assert found.message.startswith("the Google sign-in of reception@smile.example expires")
    assert found.message.endswith(
        "sign in with Google again in the Email Setup Wizard (email-service setup)"
    )


def test_a_practice_signing_in_with_passwords_gets_no_expiry_line() -> None:
    settings = dataclasses.replace(_at(3), smtp_auth="password")
    assert expiry_diagnostic(settings, NOW) is None


# --- the light and the diagnostics a workstation reads --------------------------------------------


class _Part:
    """The self-test's mail part, finding what a clock-driven expiry check finds."""

    def __init__(self, settings: EmailSettings, clock: FakeClock) -> None:
        self._settings, self._clock = settings, clock

    def check(self) -> tuple[tuple[str, ...], tuple[Diagnostic, ...]]:
        found = expiry_diagnostic(self._settings, self._clock.now())
        return ("smtp",), () if found is None else (found,)

    def run(self) -> float:
        return 3600.0

    def close(self) -> None:
        pass


@pytest.fixture
def practice(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'Smile Dental.sqlite3'}"
    init_practice_database(url, practice_name="Smile Dental")
    engine = make_engine(url)
    claim_incarnation(engine, INCARNATION, "SRV1", datetime.now(UTC))
    try:
        yield url, engine
    finally:
        engine.dispose()


def _round(url: str, engine: Engine, part: Any, clock: FakeClock) -> list[Event]:
    appended: list[Event] = []
    context = WorkContext("Smile Dental", INCARNATION, lambda: engine, appended.extend, clock)
    writer = CheckInWriter(
        lambda: engine,
        server_name="SRV1",
        service_version="1.2.3",
        interval_seconds=INTERVAL,
        clock=clock,
    )
    selftest = DatabaseSelfTest(
        "Smile Dental", url, INCARNATION, "SRV1", clock, engine=lambda: engine, write=False
    )
    work = SelfTestWork(selftest, context, INTERVAL, [part, CheckInStep(writer, INCARNATION)])
    work.run()
    return appended


def test_an_expiry_within_14_days_keeps_the_light_steady_with_a_warning_line(
    practice: tuple[str, Engine],
) -> None:
    url, engine = practice
    clock = FakeClock(NOW)
    events = _round(url, engine, _Part(_at(10), clock), clock)
    status = read_status("Smile Dental", url, timedelta(seconds=15)).status
    lines = read_diagnostics(url)
    assert [type(e) for e in events] == [SelfTestPassed]
    assert (status.status, status.tooltip) == ("running", "The email service is operating normally")
    assert [(r.level, r.component) for r in lines] == [("warning", "smtp")]
    assert "expires on 2026-12-12 09:00 UTC (in 10 days)" in lines[0].message


def test_a_passed_expiry_is_not_available_with_the_reason_as_tooltip(
    practice: tuple[str, Engine],
) -> None:
    url, engine = practice
    clock = FakeClock(NOW)
    part = _Part(_at(10), clock)
    _round(url, engine, part, clock)
    clock.advance(timedelta(days=11).total_seconds())
    events = _round(url, engine, part, clock)
    status = read_status("Smile Dental", url, timedelta(seconds=15)).status
    assert [type(e) for e in events] == [SelfTestFailed]
    assert status.status == "not_available"
    assert status.tooltip.startswith(
        "Sending (SMTP): the Microsoft app's client secret expired on 2026-12-12 09:00 UTC: "
        "create a new one"
    )


# --- a refusal in the server's words becomes the tooltip ---------------------------------------


class _NoHandler:
    pass


@pytest.fixture
def microsoft_refusing_passwords() -> Iterator[int]:
    """aiosmtpd on loopback answering AUTH as Exchange Online does for a password."""

    def authenticate(*_args: Any) -> AuthResult:
        return AuthResult(success=False, handled=False, message=CLIENT_SUBMISSION)

    port = free_port()
    controller = Controller(
        _NoHandler(), hostname="127.0.0.1", port=port, authenticator=authenticate,
        auth_require_tls=False,
    )  # fmt: skip
    controller.start()  # type: ignore[no-untyped-call]
    try:
        yield port
    finally:
        controller.stop()  # type: ignore[no-untyped-call]


def test_microsofts_refusal_of_a_password_is_the_tooltip_in_plain_words(
    practice: tuple[str, Engine], microsoft_refusing_passwords: int
) -> None:
    url, engine = practice
    configure(
        engine,
        smtp_settings(
            "127.0.0.1",
            microsoft_refusing_passwords,
            smtp_username="reception@smile.example",
            smtp_password="Pa55-for-the-test",
        ),
    )
    works = Works()
    try:
        mail = works.make(engine, db="Smile Dental")
        _round(url, engine, MailCheck(mail), works.clock)
    finally:
        works.close()
    status = read_status("Smile Dental", url, timedelta(seconds=15)).status
    assert status.status == "not_available"
    assert status.tooltip == (
        "Sending (SMTP): Microsoft no longer accepts the password for this mailbox: sign in with "
        "Microsoft in the Email Setup Wizard (email-service setup) (the server said: "
        f"{CLIENT_SUBMISSION})"
    )
    assert isinstance(mail, MailWork)


# --- through the real sign-in: the local authority and aiosmtpd with XOAUTH2 ----------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertificateSet:
    return make_certificates(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def authority(certs: CertificateSet) -> Iterator[OAuthAuthority]:
    with OAuthAuthority(certs) as started:
        yield started


@pytest.fixture
def xoauth2_smtp(certs: CertificateSet, authority: OAuthAuthority) -> Iterator[RecordingSmtpServer]:
    with RecordingSmtpServer("starttls", certs, oauth=authority) as server:
        yield server


def _signing_in_round(
    url: str,
    engine: Engine,
    authority: OAuthAuthority,
    certs: CertificateSet,
    smtp: RecordingSmtpServer,
    way: str = "microsoft-app",
    **changes: Any,
) -> list[Event]:
    """One self-test round of the real mail work signing in (``way``: Microsoft app-only
    unless told)."""
    clock = FakeClock(NOW)
    columns = sign_in_settings(authority, way, "reception", **changes)
    configure(engine, settings_for(smtp, smtp_auth="oauth2", **columns))
    deps = MailDeps(
        mail_settings(ca_file=str(certs.ca_cert)),
        60.0,
        ProbeLimiter(),
        UTC,
        tokens=TokenSources(oauth_endpoints(authority), clock),
    )
    work = MailWork("Smile Dental", INCARNATION, lambda: engine, lambda _e: None, clock, deps)
    try:
        return _round(url, engine, MailCheck(work), clock)
    finally:
        work.close()


def test_a_signed_in_practice_whose_secret_ends_in_10_days_stays_running_with_a_warning(
    practice: tuple[str, Engine],
    authority: OAuthAuthority,
    certs: CertificateSet,
    xoauth2_smtp: RecordingSmtpServer,
) -> None:
    url, engine = practice
    expires = (NOW + timedelta(days=10)).replace(tzinfo=None)
    events = _signing_in_round(
        url, engine, authority, certs, xoauth2_smtp, oauth_expires_at=expires
    )
    status = read_status("Smile Dental", url, timedelta(seconds=15)).status
    lines = read_diagnostics(url)
    assert xoauth2_smtp.xoauth2_attempts == 1  # it really signed in
    assert [type(e) for e in events] == [SelfTestPassed]
    assert status.status == "running"
    assert [(r.level, r.component) for r in lines] == [("warning", "smtp")]
    assert "client secret expires on 2026-12-12 09:00 UTC (in 10 days)" in lines[0].message


def test_an_expired_secret_at_microsoft_is_the_tooltip_with_what_to_do(
    practice: tuple[str, Engine],
    authority: OAuthAuthority,
    certs: CertificateSet,
    xoauth2_smtp: RecordingSmtpServer,
) -> None:
    url, engine = practice
    authority.fail_next(
        "invalid_client",
        "AADSTS7000222: The provided client secret keys for app 'x' are expired.",
        7000222,
        status=401,
        times=2,
    )
    _signing_in_round(url, engine, authority, certs, xoauth2_smtp)
    status = read_status("Smile Dental", url, timedelta(seconds=15)).status
    assert status.status == "not_available"
    assert status.tooltip.startswith(
        "Sending (SMTP): the app's client secret has expired: create a new one (Entra admin "
        "centre, App registrations, Certificates & secrets) and enter it in the Email Setup "
        "Wizard (email-service setup). "
    )
    assert "AADSTS7000222" in status.tooltip


def test_a_revoked_google_sign_in_is_the_tooltip_with_sign_in_again(
    practice: tuple[str, Engine],
    authority: OAuthAuthority,
    certs: CertificateSet,
    xoauth2_smtp: RecordingSmtpServer,
) -> None:
    url, engine = practice
    # Google's answer to a refresh token that was revoked (or whose password changed).
    authority.fail_next("invalid_grant", "Token has been expired or revoked.")
    _signing_in_round(url, engine, authority, certs, xoauth2_smtp, "google-delegated")
    status = read_status("Smile Dental", url, timedelta(seconds=15)).status
    assert status.status == "not_available"
    assert status.tooltip.startswith("Sending (SMTP): Google no longer accepts the saved sign-in")
    assert status.tooltip.endswith("invalid_grant: Token has been expired or revoked.")
