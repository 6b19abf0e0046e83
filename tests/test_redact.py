"""Masking that does not disclose (issue 14, item 5): ``actors.mail.redact`` and its users.

Replacing a password's every occurrence by ``***`` shows where it was: with the password
``nothing``, "port closed: nothing accepts connections" read "port closed: *** accepts
connections". Properties (hypothesis): an authentication reply is shown in one of two
forms that do not depend on the password (its words, or its codes and ``HIDDEN``), and
shown words never hold the password in any form; text from anywhere else keeps every
word. Examples through real servers: a closed port, and aiosmtpd refusing AUTH with a
reply that echoes the password, read through the self-test as the status page shows it.
"""

from __future__ import annotations

import base64
import dataclasses
import imaplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from hypothesis import assume, given
from hypothesis import strategies as st
from imapclient.exceptions import LoginError
from sqlalchemy import Engine

from actors.mail import imap_session, redact, sms, smtp_transport
from actors.mail.settings import EmailSettings
from config.settings import MailSettings
from events.projections.checkin import summary_of
from tests.mail_helpers import INCARNATION, claimed_engine, smtp_settings
from tests.smtp_servers import free_port
from tests.test_mail_work import Works, configure

pytest_plugins = ["tests.conftest_mail", "tests.conftest_imap"]

USER = "reception@practice.example"
WEAK = "nothing"

passwords = st.text(min_size=1, max_size=24).filter(
    lambda s: any(c.isprintable() and not c.isspace() for c in s)
)
"""Any password with something visible in it (control characters alone cannot be shown)."""
texts = st.text(max_size=200)
words = st.from_regex(r"[A-Za-z][A-Za-z0-9.,:'()-]{0,12}", fullmatch=True)
sentences = st.lists(words, min_size=1, max_size=12).map(" ".join)


def _one_line(text: str) -> str:
    return redact.one_line(text, len(text) + 1)


# --- properties ------------------------------------------------------------------------


@given(password=passwords, text=texts)
def test_an_auth_reply_is_one_of_two_forms_neither_made_from_the_password(
    password: str, text: str
) -> None:
    shown = redact.auth_reply(text, [password], limit=1000)
    assert shown in (_one_line(text), redact.withheld(text))


@given(password=passwords, text=texts)
def test_shown_words_never_hold_the_password_in_any_form(password: str, text: str) -> None:
    shown = redact.auth_reply(text, [password], limit=1000)
    if shown != redact.withheld(text):
        assert not redact.holds_secret(shown, [password])
        assert password.casefold() not in shown.casefold()


@given(password=passwords, before=texts, after=texts)
def test_a_reply_with_the_password_never_shows_it(password: str, before: str, after: str) -> None:
    text = f"535 5.7.8 {before}{password}{after}"
    hidden = redact.withheld(text)
    assume(password.casefold() not in hidden.casefold())  # the codes and the fixed phrase
    shown = redact.auth_reply(text, [password], limit=1000)
    assert password.casefold() not in shown.casefold()
    assert shown == hidden


@given(
    password=passwords,
    before=st.binary(max_size=8),
    after=st.binary(max_size=8),
    urlsafe=st.booleans(),
    padded=st.booleans(),
)
def test_a_reply_with_the_password_in_base64_at_any_alignment_is_withheld(
    password: str, before: bytes, after: bytes, urlsafe: bool, padded: bool
) -> None:
    plain = before + password.encode() + after
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(plain).decode()
    if not padded:
        encoded = encoded.rstrip("=")
    text = f"501 5.5.2 cannot decode {encoded} here"
    assert redact.auth_reply(text, [password]) == "501 5.5.2 " + redact.HIDDEN


@given(password=passwords, sentence=sentences)
def test_a_reply_with_the_password_percent_encoded_is_withheld(
    password: str, sentence: str
) -> None:
    text = f"401 Unauthorized: {sentence} user={quote(password, safe='')}"
    assert redact.auth_reply(text, [password]) == "401 " + redact.HIDDEN


@given(password=passwords, sentence=sentences)
def test_ordinary_text_keeps_every_word_whatever_the_password(password: str, sentence: str) -> None:
    settings = EmailSettings(smtp_password=password, imap_password=password, sms_password=password)
    assert smtp_transport.scrub(sentence, settings) == sentence
    assert sms.scrub(sentence, [password]) == sentence


# --- examples ---------------------------------------------------------------------------


def test_the_reply_codes_and_the_servers_words_are_kept_when_they_hold_no_secret() -> None:
    reply = "535 5.7.139 Authentication unsuccessful, basic authentication is disabled"
    assert redact.auth_reply(reply, [WEAK]) == reply


def test_an_imap_response_code_is_kept_in_front_of_the_withheld_words() -> None:
    reply = f"[AUTHENTICATIONFAILED] Invalid credentials for {WEAK.upper()}"
    assert redact.auth_reply(reply, [WEAK]) == f"[AUTHENTICATIONFAILED] {redact.HIDDEN}"


def test_a_tab_in_the_password_does_not_let_the_one_line_form_through() -> None:
    assert redact.auth_reply("535 bad pass\tword", ["pass\tword"]) == f"535 {redact.HIDDEN}"


def test_an_imap_login_reply_that_holds_the_password_is_withheld() -> None:
    exc = LoginError(str(imaplib.IMAP4.error(b"[AUTHENTICATIONFAILED] nothing is wrong")))
    reply = imap_session.login_reply(exc, EmailSettings(imap_password=WEAK))
    assert reply == f"[AUTHENTICATIONFAILED] {redact.HIDDEN}"


# --- through real servers ----------------------------------------------------------------


def test_a_closed_port_reads_naturally_with_the_password_nothing() -> None:
    port = free_port()
    settings = smtp_settings("127.0.0.1", port, smtp_username=USER, smtp_password=WEAK)
    result = smtp_transport.probe(settings, timeout=5.0)
    assert result.reason == f"port closed: nothing accepts connections at 127.0.0.1:{port}"


class _EchoingAuth:
    """An authenticator that refuses every log-in with a reply echoing the password, as a
    careless server might."""

    def __call__(
        self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
    ) -> AuthResult:
        password = data.password.decode()
        return AuthResult(
            success=False, handled=False, message=f"535 5.7.8 wrong password {password!r}"
        )


class _Handler:
    """Accepts nothing; the session never gets past AUTH."""


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
def echoing_server() -> Iterator[tuple[str, int]]:
    port = free_port()
    controller = Controller(
        _Handler(),
        hostname="127.0.0.1",
        port=port,
        authenticator=_EchoingAuth(),
        auth_require_tls=False,
    )
    controller.start()  # type: ignore[no-untyped-call]
    try:
        yield "127.0.0.1", port
    finally:
        controller.stop()  # type: ignore[no-untyped-call]


def test_an_auth_reply_that_echoes_the_password_is_withheld_whole(
    echoing_server: tuple[str, int],
) -> None:
    host, port = echoing_server
    settings = smtp_settings(host, port, smtp_username=USER, smtp_password=WEAK)
    result = smtp_transport.probe(settings, timeout=5.0)
    assert result.reason == (
        f"wrong user name or password (the server said: 535 5.7.8 {redact.HIDDEN})"
    )
    assert "***" not in result.reason


def test_a_refused_log_in_keeps_the_servers_words_when_they_hold_no_password(
    make_smtp_server: Any,
) -> None:
    server = make_smtp_server(users={USER: "the-right-one"})
    settings = smtp_settings(server.host, server.port, smtp_username=USER, smtp_password=WEAK)
    result = smtp_transport.probe(settings, timeout=5.0)
    assert result.reason == (
        "wrong user name or password "
        "(the server said: 535 5.7.8 Authentication credentials invalid)"
    )


def test_a_password_beyond_ascii_is_named_without_quoting_any_letter_of_it(
    make_smtp_server: Any,
) -> None:
    server = make_smtp_server(users={USER: "the-right-one"})
    password = "Zahnärztin-Müller"
    settings = smtp_settings(server.host, server.port, smtp_username=USER, smtp_password=password)
    result = smtp_transport.probe(settings, timeout=5.0)
    assert result.reason.startswith("the user name or password has a letter beyond ASCII")
    assert not any(c in result.reason for c in "äü")
    assert "\\x" not in result.reason


def test_the_self_test_diagnostic_and_tooltip_read_naturally(
    works: Works, work_engine: Engine
) -> None:
    port = free_port()
    configure(work_engine, smtp_settings("127.0.0.1", port, smtp_username=USER, smtp_password=WEAK))
    _, diagnostics = works.make(work_engine).check()
    expected = f"port closed: nothing accepts connections at 127.0.0.1:{port}"
    assert [(d.component, d.message) for d in diagnostics] == [("smtp", expected)]
    assert summary_of(diagnostics) == f"Sending (SMTP): {expected}"


def test_dovecot_refusing_the_password_nothing_reads_naturally(
    imap_settings: EmailSettings, mail_settings: MailSettings
) -> None:
    settings = dataclasses.replace(imap_settings, imap_password=WEAK)
    result = imap_session.probe(settings, mail_settings)
    where = f"{settings.imap_host}:{settings.imap_port}"
    assert result.reason == (
        f"wrong user name or password for {settings.imap_username!r} on {where} "
        "(the server said: [AUTHENTICATIONFAILED] Authentication failed.)"
    )


def test_an_imap_password_beyond_ascii_is_named_without_quoting_any_letter_of_it(
    imap_settings: EmailSettings, mail_settings: MailSettings
) -> None:
    settings = dataclasses.replace(imap_settings, imap_password="Zahnärztin-Müller")
    result = imap_session.probe(settings, mail_settings)
    assert result.reason.startswith("the user name or password has a letter beyond ASCII")
    assert not any(c in result.reason for c in "äü")
    assert "\\x" not in result.reason
