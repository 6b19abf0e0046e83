"""Sign-in failures in plain words, with the server's words kept (issue 14, item 3).

Each exact text of OAUTH2.md section 5 maps to what it means and what to do
(``actors.mail.sign_in_words``), pure; then real servers say them: aiosmtpd answering AUTH
with each SMTP text (the self-test's probe and its diagnostic), and a scripted IMAP server on
a loopback socket answering Microsoft's IMAP texts.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from hypothesis import given
from hypothesis import strategies as st

from actors.mail import imap_session, smtp_transport
from actors.mail.sign_in_words import SignInContext, advice, explained, words_for
from tests.mail_helpers import mail_settings, smtp_settings
from tests.smtp_servers import free_port

OAUTH = SignInContext(oauth=True, mailbox="reception@smile.example")
PASSWORD = SignInContext(oauth=False, mailbox="reception@smile.example")

TENANT_OFF = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant."
)
MAILBOX_OFF = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    "Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information."
)
BASIC_OFF = "535 5.7.139 Authentication unsuccessful, basic authentication is disabled."
CLIENT_SUBMISSION = "550 5.7.30 Basic authentication is not supported for Client Submission."
TOKEN_REFUSED = "535 5.7.3 Authentication unsuccessful"
GMAIL_CHALLENGE = {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}


# --- the table, pure --------------------------------------------------------------------------


def test_smtp_off_for_the_tenant_gives_the_organisation_command() -> None:
    assert "Set-TransportConfig -SmtpClientAuthenticationDisabled $false" in advice(TENANT_OFF)


def test_smtp_off_for_the_mailbox_gives_the_mailbox_command_with_its_name() -> None:
    words = advice(MAILBOX_OFF, OAUTH)
    assert (
        "Set-CASMailbox -Identity reception@smile.example -SmtpClientAuthenticationDisabled $false"
        in words
    )


@pytest.mark.parametrize("text", [BASIC_OFF, CLIENT_SUBMISSION])
def test_basic_authentication_off_says_sign_in_with_microsoft(text: str) -> None:
    assert advice(text, PASSWORD) == (
        "Microsoft no longer accepts the password for this mailbox: sign in with Microsoft "
        "in the Email Setup Wizard (email-service setup)"
    )


def test_the_server_words_are_kept_after_the_advice() -> None:
    assert explained(CLIENT_SUBMISSION).endswith(f"(the server said: {CLIENT_SUBMISSION})")


def test_a_refused_token_names_account_scope_and_rights() -> None:
    words = advice(TOKEN_REFUSED, OAUTH)
    assert "wrong account" in words
    assert "SMTP" in words
    assert "reception@smile.example" in words


def test_imap_authenticate_failed_names_imap_fullaccess_and_the_object_id() -> None:
    words = advice("NO AUTHENTICATE failed.", OAUTH)
    assert "IMAP is turned off" in words
    assert "FullAccess" in words
    assert "Object ID" in words


def test_authenticated_but_not_connected_means_no_access_to_the_mailbox() -> None:
    words = advice("BAD User is authenticated but not connected.", OAUTH)
    assert words.startswith("signed in, but without access to the mailbox reception@smile")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AADSTS700082: The refresh token has expired due to inactivity.", "90 days"),
        ("AADSTS65001: The user or administrator has not consented to use the", "consent"),
        (
            "AADSTS700016: Application with identifier 'abc' was not found in the directory",
            "client ID",
        ),
        ("AADSTS7000215: Invalid client secret provided.", "client secret is wrong"),
        (
            "AADSTS7000222: The provided client secret keys for app 'abc' are expired.",
            "client secret has expired",
        ),
    ],
)
def test_each_aadsts_code_in_the_table_has_its_advice(text: str, expected: str) -> None:
    assert expected in advice(f"invalid_grant: {text}" if "700082" in text else text, OAUTH)


def test_google_invalid_grant_says_sign_in_with_google_again() -> None:
    words = advice("invalid_grant: Token has been expired or revoked.", OAUTH)
    assert "password was changed" in words
    assert "sign in with Google again" in words


def test_the_gmail_challenge_in_base64_says_the_mail_permission_is_missing() -> None:
    blob = base64.b64encode(json.dumps(GMAIL_CHALLENGE).encode()).decode()
    assert "lacks the mail permission" in advice(f"334 {blob}", OAUTH)


def test_the_gmail_challenge_as_json_says_the_same() -> None:
    assert "lacks the mail permission" in advice(json.dumps(GMAIL_CHALLENGE), OAUTH)


def test_an_unknown_text_gets_no_advice_and_stays_as_it_was() -> None:
    text = "535 5.7.8 Authentication credentials invalid"
    assert (advice(text), explained(text)) == ("", text)


def test_imapclients_bytes_repr_is_read_as_the_servers_words() -> None:
    assert explained("b'AUTHENTICATE failed.'", OAUTH).endswith(
        "(the server said: AUTHENTICATE failed.)"
    )


@given(st.text(max_size=300))
def test_advice_never_raises_and_is_one_line(text: str) -> None:
    assert "\n" not in advice(text, OAUTH)


# --- aiosmtpd says each SMTP text -------------------------------------------------------------


class _NoHandler:
    pass


@pytest.fixture
def refusing_smtp() -> Iterator[dict[str, Any]]:
    """aiosmtpd on loopback whose AUTH answers ``state["reply"]`` (a password refused)."""
    state: dict[str, Any] = {"reply": TENANT_OFF}

    def authenticate(*_args: Any) -> AuthResult:
        return AuthResult(success=False, handled=False, message=state["reply"])

    port = free_port()
    controller = Controller(
        _NoHandler(),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()  # type: ignore[no-untyped-call]
    state["port"] = port
    try:
        yield state
    finally:
        controller.stop()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (TENANT_OFF, "Set-TransportConfig -SmtpClientAuthenticationDisabled $false"),
        (MAILBOX_OFF, "Set-CASMailbox -Identity reception@smile.example"),
        (BASIC_OFF, "Microsoft no longer accepts the password for this mailbox"),
        (CLIENT_SUBMISSION, "Microsoft no longer accepts the password for this mailbox"),
        (TOKEN_REFUSED, "Microsoft refused the user name or password"),
        ("534 5.7.9 Application-specific password required.", "sign in with Google"),
    ],
)
def test_the_smtp_probe_says_what_to_do_and_keeps_the_servers_words(
    refusing_smtp: dict[str, Any], reply: str, expected: str
) -> None:
    refusing_smtp["reply"] = reply
    settings = smtp_settings(
        "127.0.0.1",
        refusing_smtp["port"],
        smtp_username="reception@smile.example",
        smtp_password="Pa55-for-the-test",
    )
    result = smtp_transport.probe(settings, timeout=5)
    assert not result.ok
    assert expected in result.reason
    assert result.reason.endswith(f"(the server said: {reply})")


# --- a scripted IMAP server says Microsoft's IMAP texts ----------------------------------------


class ScriptedImap:
    """A loopback IMAP server answering LOGIN with ``login`` and EXAMINE/SELECT with
    ``select`` (each ``"OK ..."``, ``"NO ..."`` or ``"BAD ..."``); one client at a time."""

    def __init__(self, login: str = "OK LOGIN completed.", select: str = "OK done") -> None:
        self.login, self.select = login, select
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with client, client.makefile("rwb") as stream:
                stream.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready\r\n")
                stream.flush()
                for raw in stream:
                    tag, _, rest = raw.decode().strip().partition(" ")
                    command = rest.split(" ")[0].upper()
                    if command == "CAPABILITY":
                        stream.write(b"* CAPABILITY IMAP4rev1 AUTH=XOAUTH2\r\n")
                        answer = "OK CAPABILITY completed."
                    elif command == "LOGIN":
                        answer = self.login
                    elif command in ("SELECT", "EXAMINE"):
                        answer = self.select
                    elif command == "LOGOUT":
                        stream.write(b"* BYE\r\n")
                        answer = "OK LOGOUT completed."
                    else:
                        answer = "OK done"
                    stream.write(f"{tag} {answer}\r\n".encode())
                    stream.flush()
                    if command == "LOGOUT":
                        break

    def close(self) -> None:
        self._listener.close()


def _imap_probe(server: ScriptedImap) -> str:
    settings = smtp_settings(
        "127.0.0.1",
        25,
        imap_enabled=True,
        imap_host="127.0.0.1",
        imap_port=server.port,
        imap_security="none",
        imap_username="reception@smile.example",
        imap_password="Pa55-for-the-test",
    )
    result = imap_session.probe(settings, mail_settings())
    assert not result.ok
    return result.reason


def test_imap_authenticated_but_not_connected_is_explained_with_its_words() -> None:
    server = ScriptedImap(select="BAD User is authenticated but not connected.")
    try:
        reason = _imap_probe(server)
    finally:
        server.close()
    assert reason.startswith("signed in, but without access to the mailbox reception@smile")
    assert reason.endswith("(the server said: BAD User is authenticated but not connected.)")


def test_imap_authenticate_failed_at_login_is_explained_with_its_words() -> None:
    server = ScriptedImap(login="NO AUTHENTICATE failed.")
    try:
        reason = _imap_probe(server)
    finally:
        server.close()
    assert reason.startswith("Microsoft no longer accepts the password for this mailbox")
    assert reason.endswith("(the server said: AUTHENTICATE failed.)")


def test_words_for_reads_the_context_from_the_settings() -> None:
    settings = smtp_settings(
        "smtp.office365.com", 587, smtp_auth="oauth2", oauth_account="box@smile.example"
    )
    assert "box@smile.example" in words_for(TOKEN_REFUSED, settings, "smtp")
