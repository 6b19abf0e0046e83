"""What a mail program would show is what the inbox stores: 8-bit headers without a
charset, ``Subject :``, a multipart whose boundary never appears, 2,000 nested parts,
NUL bytes fetched with IMAP BINARY. Messages made here; the last tests go through a real
Dovecot."""

from __future__ import annotations

import os
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from actors.mail.inbox import Inbox
from actors.mail.parse import decode_8bit, parse_message, without_attachments
from actors.practice_schema import email_messages
from config.settings import MailSettings
from events.clock import FakeClock
from tests.dovecot import Dovecot, imap_settings_for

pytest_plugins = ["tests.conftest_imap"]


def test_an_undeclared_latin1_header_reads_as_windows_1252() -> None:
    raw = (
        b"From: J\xfcrgen <j@example.org>\r\nSubject: Gr\xfc\xdfe \x93aus\x94 K\xf6ln\r\n"
        b"To: a@b.example\r\n\r\nHallo\r\n"
    )
    assert parse_message(raw).subject == "Grüße “aus” Köln"


def test_an_undeclared_utf8_header_reads_as_utf8() -> None:
    raw = "From: j@example.org\r\nSubject: Grüße – ok\r\n\r\nHallo\r\n".encode()
    assert parse_message(raw).subject == "Grüße – ok"


@given(st.text(alphabet=st.characters(codec="cp1252", exclude_categories=("Cc", "Cs"))))
def test_8bit_text_decodes_to_what_was_written(text: str) -> None:
    for codec in ("utf-8", "cp1252"):
        data = text.encode(codec)
        if codec == "cp1252" and _valid_utf8(data):
            continue  # such bytes are UTF-8 too, and read as UTF-8
        assert decode_8bit(data.decode("ascii", "surrogateescape")) == text


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_a_space_before_the_colon_still_names_the_header() -> None:
    raw = b"From: a@b.example\r\nSubject : Hello there\r\nTo: c@d.example\r\n\r\nBody\r\n"
    parsed = parse_message(raw)
    assert (parsed.subject, parsed.to_addrs, parsed.body_text) == (
        "Hello there",
        "c@d.example",
        "Body\n",
    )


def test_a_multipart_whose_boundary_never_appears_keeps_its_text() -> None:
    raw = (
        b'From: a@b.example\r\nSubject: nb\r\nContent-Type: multipart/mixed; boundary="XYZ"'
        b"\r\n\r\nJust some text here\r\nand more\r\n"
    )
    assert parse_message(raw).body_text == "Just some text here\nand more\n"


def _deep(depth: int) -> bytes:
    inner = b"Content-Type: text/plain; charset=utf-8\r\n\r\ninnermost text \xc3\xbc\r\n"
    for i in range(depth):
        b = f"b{i}".encode()
        inner = (
            b'Content-Type: multipart/mixed; boundary="'
            + b
            + b'"\r\n\r\n--'
            + b
            + b"\r\n"
            + inner
            + b"\r\n--"
            + b
            + b"--\r\n"
        )
    return b"From: Pat <pat@example.org>\r\nSubject: Deep one\r\nMIME-Version: 1.0\r\n" + inner


def test_a_2000_deep_message_keeps_its_subject_sender_and_text() -> None:
    parsed = parse_message(_deep(2000))
    assert (parsed.subject, parsed.from_addr) == ("Deep one", "pat@example.org")
    assert parsed.body_text.startswith("innermost text ü")
    assert "read shallowly" in parsed.problem


# --- through Dovecot -----------------------------------------------------------------------


@pytest.fixture
def stored(
    inbox_engine: Engine, dovecot: Dovecot, imap_user: str, mail_settings: MailSettings
) -> Iterator[tuple[Engine, Dovecot, str, Inbox]]:
    inbox = Inbox(
        inbox_engine,
        1,
        imap_settings_for(dovecot, imap_user),
        mail_settings,
        [].extend,
        FakeClock(),
    )
    try:
        yield inbox_engine, dovecot, imap_user, inbox
    finally:
        inbox.close()


def _row(engine: Engine) -> object:
    with engine.connect() as conn:
        return conn.execute(select(email_messages)).one()


def test_an_8bit_latin1_subject_arrives_readable_through_imap(
    stored: tuple[Engine, Dovecot, str, Inbox],
) -> None:
    engine, dovecot, user, inbox = stored
    dovecot.append(user, b"From: j@example.org\r\nSubject: Gr\xfc\xdfe\r\n\r\nHallo\r\n")
    inbox.poll()
    assert _row(engine).subject == "Grüße"  # type: ignore[attr-defined]


def test_a_nul_byte_arrives_as_sent_when_the_server_offers_binary(
    stored: tuple[Engine, Dovecot, str, Inbox],
) -> None:
    engine, dovecot, user, inbox = stored
    raw = b"From: j@example.org\r\nSubject: nul\r\n\r\nbefore\x00after\r\n"
    dovecot.append(user, raw)
    inbox.poll()
    assert _row(engine).raw == raw  # type: ignore[attr-defined]


def test_a_big_message_is_read_without_its_attachment_and_keeps_base64_text() -> None:
    msg = EmailMessage()
    msg["From"] = "pat@example.org"
    msg["Subject"] = "X-ray"
    text = "Grüße aus Köln. " * 1000  # base64 in the message: a long run to keep
    msg.set_content(text, cte="base64")
    msg.add_attachment(os.urandom(2_000_000), maintype="image", subtype="png", filename="x.png")
    raw = msg.as_bytes(policy=policy.SMTP)
    skeleton = without_attachments(raw)
    assert len(skeleton) < 50_000 < len(raw)
    parsed = parse_message(raw)
    assert (parsed.subject, parsed.body_text) == ("X-ray", text + "\n")  # set_content adds it
