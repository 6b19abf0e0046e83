"""XOAUTH2 sign-in on the wire: aiosmtpd with AUTH XOAUTH2 (over STARTTLS) and Dovecot's
``oauth2`` passdb asking the local authority's introspection endpoint (XOAUTH2 and
OAUTHBEARER). Wrong-user, expired and revoked tokens are refused with a clear reason; a
refused token is refreshed once before the refusal counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.mail import imap_session, smtp_transport
from actors.mail.oauth import TokenSource, token_source
from actors.mail.sender import OutgoingMessage
from actors.mail.settings import EmailSettings
from actors.mail.smtp_transport import SmtpSender
from events.clock import FakeClock
from tests.dovecot import Dovecot, imap_settings_for
from tests.mail_helpers import mail_settings, settings_for
from tests.oauth_servers import OAuthAuthority, oauth_endpoints, sign_in_settings
from tests.smtp_servers import RecordingSmtpServer
from tests.tls_certs import CertificateSet

pytest_plugins = ["tests.conftest_mail"]

USER = "reception"
WAYS = ["microsoft-app", "microsoft-delegated", "google-delegated", "google-app"]
TIMEOUT = 5.0


@pytest.fixture
def authority(certs: CertificateSet) -> Iterator[OAuthAuthority]:
    with OAuthAuthority(certs) as started:
        yield started


@pytest.fixture
def smtp(certs: CertificateSet, authority: OAuthAuthority) -> Iterator[RecordingSmtpServer]:
    with RecordingSmtpServer("starttls", certs, oauth=authority) as server:
        yield server


def make_dovecot(tmp_path: Path, authority: OAuthAuthority, **options: Any) -> Dovecot:
    server = Dovecot(tmp_path / "dovecot", introspection_url=authority.introspection_url, **options)
    server.start()
    server.add_user(USER, "set-up-only")
    return server


@pytest.fixture
def dovecot(tmp_path: Path, authority: OAuthAuthority) -> Iterator[Dovecot]:
    server = make_dovecot(tmp_path, authority)
    yield server
    server.remove()


def smtp_oauth(
    server: RecordingSmtpServer, authority: OAuthAuthority, way: str, **changes: Any
) -> EmailSettings:
    return settings_for(
        server, smtp_auth="oauth2", **sign_in_settings(authority, way, USER, **changes)
    )


def imap_oauth(
    server: Dovecot, authority: OAuthAuthority, way: str, **changes: Any
) -> EmailSettings:
    return imap_settings_for(
        server, USER, imap_auth="oauth2", **sign_in_settings(authority, way, USER, **changes)
    )


def source(settings: EmailSettings, authority: OAuthAuthority) -> TokenSource:
    return token_source(settings, oauth_endpoints(authority), clock=FakeClock())


def smtp_probe(
    settings: EmailSettings, certs: CertificateSet, tokens: TokenSource | None
) -> smtp_transport.ProbeResult:
    return smtp_transport.probe(
        settings, timeout=TIMEOUT, ca_file=str(certs.ca_cert), tokens=tokens
    )


# --- SMTP --------------------------------------------------------------------------------


@pytest.mark.parametrize("way", WAYS)
def test_the_smtp_self_test_signs_in_with_xoauth2(
    smtp: RecordingSmtpServer, authority: OAuthAuthority, certs: CertificateSet, way: str
) -> None:
    settings = smtp_oauth(smtp, authority, way)
    assert smtp_probe(settings, certs, source(settings, authority)).ok


def test_a_message_is_sent_signed_in_as_the_mailbox(
    smtp: RecordingSmtpServer, authority: OAuthAuthority, certs: CertificateSet
) -> None:
    settings = smtp_oauth(smtp, authority, "microsoft-app")
    sender = SmtpSender(
        settings,
        timeout=TIMEOUT,
        clock=FakeClock(),
        ca_file=str(certs.ca_cert),
        tokens=source(settings, authority),
    )
    message = OutgoingMessage(
        row_id=1,
        channel="email",
        message_id="<one@smile.example>",
        from_addr="reception@smile.example",
        to_addrs=("pat@example.org",),
        cc_addrs=(),
        subject="Appointment",
        body_text="Monday at 9.",
        body_html="",
        raw=None,
        attempts=0,
    )
    try:
        outcome = sender.send(message, lambda: None)
    finally:
        sender.close()
    assert (outcome.kind, [m.authenticated_as for m in smtp.messages]) == ("sent", [USER])


def test_an_smtp_token_for_another_mailbox_is_refused_in_the_servers_words(
    smtp: RecordingSmtpServer, authority: OAuthAuthority, certs: CertificateSet
) -> None:
    settings = smtp_oauth(smtp, authority, "microsoft-app", oauth_account="front-desk")
    result = smtp_probe(settings, certs, source(settings, authority))
    assert result.reason.casefold().endswith(  # after what to do (sign_in_words)
        f"the mail server at localhost:{smtp.port} refused the sign-in of front-desk "
        "(the server said: 535 5.7.3 authentication unsuccessful)"
    )


def test_a_refused_smtp_token_is_refreshed_once_before_the_refusal_counts(
    smtp: RecordingSmtpServer, authority: OAuthAuthority, certs: CertificateSet
) -> None:
    settings = smtp_oauth(smtp, authority, "microsoft-app", oauth_account="front-desk")
    smtp_probe(settings, certs, source(settings, authority))
    assert (smtp.xoauth2_attempts, len(authority.grants)) == (2, 2)


def test_an_expired_smtp_token_is_replaced_and_the_self_test_passes(
    smtp: RecordingSmtpServer, authority: OAuthAuthority, certs: CertificateSet
) -> None:
    settings = smtp_oauth(smtp, authority, "microsoft-delegated")
    tokens = source(settings, authority)
    tokens.token()
    authority.expire_access_tokens()  # the server says expired; the source still trusts it
    assert smtp_probe(settings, certs, tokens).ok


def test_a_revoked_smtp_sign_in_says_what_microsoft_said(
    smtp: RecordingSmtpServer, authority: OAuthAuthority, certs: CertificateSet
) -> None:
    settings = smtp_oauth(smtp, authority, "microsoft-delegated")
    tokens = source(settings, authority)
    tokens.token()
    authority.revoke()
    result = smtp_probe(settings, certs, tokens)
    assert result.reason.startswith(
        "sign-in for sending mail failed: Microsoft sign-in failed: AADSTS70008:"
    )


def test_an_smtp_server_without_xoauth2_is_named(
    make_smtp_server: Any, authority: OAuthAuthority, certs: CertificateSet
) -> None:
    plain = make_smtp_server("starttls", {"someone": "pw"})
    settings = smtp_oauth(plain, authority, "microsoft-app")
    result = smtp_probe(settings, certs, source(settings, authority))
    assert "does not offer OAuth 2.0 sign-in (AUTH XOAUTH2)" in result.reason


def test_smtp_auth_none_never_logs_in(
    make_smtp_server: Any, authority: OAuthAuthority, certs: CertificateSet
) -> None:
    server = make_smtp_server("starttls", {"someone": "pw"})
    settings = settings_for(server, smtp_auth="none", smtp_username="someone", smtp_password="x")
    assert smtp_probe(settings, certs, None).ok


# --- IMAP --------------------------------------------------------------------------------


@pytest.mark.parametrize("way", WAYS)
def test_the_imap_self_test_signs_in_with_xoauth2(
    dovecot: Dovecot, authority: OAuthAuthority, way: str
) -> None:
    settings = imap_oauth(dovecot, authority, way)
    result = imap_session.probe(settings, mail_settings(), source(settings, authority))
    assert result == imap_session.ProbeResult(True)


def test_oauthbearer_is_used_where_the_server_offers_only_that(
    tmp_path: Path, authority: OAuthAuthority
) -> None:
    server = make_dovecot(tmp_path, authority, oauth_mechanisms=("oauthbearer",))
    try:
        settings = imap_oauth(server, authority, "google-delegated")
        result = imap_session.probe(settings, mail_settings(), source(settings, authority))
    finally:
        server.remove()
    assert result == imap_session.ProbeResult(True)


def test_an_imap_token_for_another_mailbox_is_refused_in_the_servers_words(
    dovecot: Dovecot, authority: OAuthAuthority
) -> None:
    settings = imap_oauth(dovecot, authority, "microsoft-app", oauth_account="front-desk")
    result = imap_session.probe(settings, mail_settings(), source(settings, authority))
    assert result.reason == (
        f"the IMAP server at 127.0.0.1:{dovecot.port} refused the sign-in of 'front-desk' "
        "([AUTHENTICATIONFAILED] Authentication failed.)"
    )


def test_an_expired_imap_token_is_replaced_and_the_self_test_passes(
    dovecot: Dovecot, authority: OAuthAuthority
) -> None:
    settings = imap_oauth(dovecot, authority, "google-app")
    tokens = source(settings, authority)
    tokens.token()
    authority.expire_access_tokens()
    assert imap_session.probe(settings, mail_settings(), tokens).ok


def test_a_revoked_imap_sign_in_says_what_google_said(
    dovecot: Dovecot, authority: OAuthAuthority
) -> None:
    settings = imap_oauth(dovecot, authority, "google-delegated")
    tokens = source(settings, authority)
    tokens.token()
    authority.revoke()
    result = imap_session.probe(settings, mail_settings(), tokens)
    assert result.reason.casefold().endswith(  # after what to do (sign_in_words)
        "sign-in for incoming mail failed: google sign-in failed: invalid_grant: "
        "token has been expired or revoked."
    )


def test_imap_oauth2_without_a_token_source_says_so(
    dovecot: Dovecot, authority: OAuthAuthority
) -> None:
    settings = imap_oauth(dovecot, authority, "microsoft-app")
    result = imap_session.probe(settings, mail_settings(), None)
    assert "imap_auth = oauth2" in result.reason


def test_an_imap_server_without_oauth_sign_in_is_named(
    tmp_path: Path, authority: OAuthAuthority
) -> None:
    server = Dovecot(tmp_path / "plain-dovecot").start()
    server.add_user(USER, "pw")
    try:
        settings = imap_oauth(server, authority, "microsoft-app")
        result = imap_session.probe(settings, mail_settings(), source(settings, authority))
    finally:
        server.remove()
    assert "does not offer OAuth 2.0 sign-in (AUTH=XOAUTH2 or AUTH=OAUTHBEARER)" in result.reason
