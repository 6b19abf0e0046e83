"""Message-IDs, address lists and message bytes (pure): tables and hypothesis."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import hashlib
import random
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.mail.compose import (
    ComposeError,
    clean_header_text,
    envelope,
    make_message_id,
    message_bytes,
    needs_smtputf8,
    parse_address,
    raw_message_id,
    split_addresses,
)
from actors.mail.sender import OutgoingMessage

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HEADERS_OF_A_TEXT_MESSAGE = (
    *("From", "To", "Subject", "Date", "Message-ID"),
    *("MIME-Version", "Content-Type", "Content-Transfer-Encoding"),
)


def outgoing(**changes: Any) -> OutgoingMessage:
    base = OutgoingMessage(
        row_id=1,
        channel="email",
        message_id="<m1@practice.example>",
        from_addr="Smile Dental <reception@practice.example>",
        to_addrs=("patient@example.org",),
        cc_addrs=(),
        subject="Your appointment",
        body_text="See you on Monday.",
        body_html="",
        raw=None,
        attempts=0,
    )
    return dataclasses.replace(base, **changes)


def parsed(message: OutgoingMessage) -> EmailMessage:
    result = email.message_from_bytes(message_bytes(message, NOW), policy=email.policy.default)
    assert isinstance(result, EmailMessage)
    return result


# --- strategies ---------------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=120)
_local = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,20}[a-z0-9]", fullmatch=True).filter(
    lambda s: ".." not in s
)
_domain = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]\.(org|example|co\.uk)", fullmatch=True)
_address = st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain)
_name = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


def _named(name: str, address: str) -> str:
    return f'"{name.replace(chr(92), "").replace(chr(34), "")}" <{address}>' if name else address


# --- Message-IDs --------------------------------------------------------------------------


def test_a_message_id_is_random_bits_at_the_practices_domain() -> None:
    message_id = make_message_id("practice.example", random.Random(1))
    assert re.fullmatch(r"<[0-9a-f]{32}@practice\.example>", message_id)


def test_message_ids_differ_from_draw_to_draw() -> None:
    draws = random.Random(1)
    assert len({make_message_id("practice.example", draws) for _ in range(1000)}) == 1000


def test_a_non_ascii_domain_is_idna_encoded_in_the_message_id() -> None:
    expected = "zahnärzte.example".encode("idna").decode("ascii")
    assert make_message_id("zahnärzte.example", random.Random(1)).endswith(f"@{expected}>")


def test_an_unusable_domain_gives_the_fallback() -> None:
    assert make_message_id("", random.Random(1)).endswith("@practice-email-service.invalid>")


# --- address lists ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        (None, ()),
        ("a@x.org", ("a@x.org",)),
        ("a@x.org, b@y.org", ("a@x.org", "b@y.org")),
        ("a@x.org; b@y.org;", ("a@x.org", "b@y.org")),
        ('"Smith, Jo; Dr" <jo@x.org>, b@y.org', ('"Smith, Jo; Dr" <jo@x.org>', "b@y.org")),
        (" ; , ", ()),
    ],
)
def test_split_addresses(text: str | None, expected: tuple[str, ...]) -> None:
    assert split_addresses(text) == expected


@given(st.lists(st.tuples(_name, _address), max_size=6), st.sampled_from([", ", ";", " ; "]))
def test_split_then_parse_gives_back_the_addresses(
    entries: list[tuple[str, str]], separator: str
) -> None:
    text = separator.join(_named(name, address) for name, address in entries)
    found = [parse_address(entry).addr_spec for entry in split_addresses(text)]
    assert found == [address for _name, address in entries]


@pytest.mark.parametrize(
    "entry",
    ["not an address", "a@", "@x.org", "a b@x.org", "a@x..org", "\x85@x.org", ".a@x.org"],
)
def test_a_bad_address_is_refused_in_one_line(entry: str) -> None:
    with pytest.raises(ComposeError, match=r"^'.*' is not (an email address|a mail domain)$"):
        parse_address(entry)


@pytest.mark.parametrize(
    ("entry", "addr_spec"),
    [
        ("jürgen@müller.example", "jürgen@xn--mller-kva.example"),
        ("Иван <иван@пример.рф>", "иван@xn--e1afmkfd.xn--p1ai"),
        ("张伟@例子.中国", "张伟@xn--fsqu00a.xn--fiqs8s"),
    ],
)
def test_an_address_with_letters_beyond_ascii_is_an_address_that_needs_smtputf8(
    entry: str, addr_spec: str
) -> None:
    parsed = parse_address(entry).addr_spec
    assert (parsed, needs_smtputf8(parsed)) == (addr_spec, True)


def test_an_international_address_is_written_as_utf8_in_its_header() -> None:
    built = message_bytes(outgoing(to_addrs=("Jürgen <jürgen@müller.example>",)), NOW)
    assert "To: =?utf-8?q?J=C3=BCrgen?= <jürgen@xn--mller-kva.example>\r\n".encode() in built


def test_the_envelope_is_to_then_cc_without_repeats() -> None:
    message = outgoing(to_addrs=("A <a@x.org>", "b@x.org"), cc_addrs=("B@x.org", "Carol <c@x.org>"))
    assert envelope(message) == ("reception@practice.example", ("a@x.org", "b@x.org", "c@x.org"))


def test_a_raw_message_without_recipient_columns_uses_its_headers() -> None:
    raw = b"To: Ann <a@x.org>\r\nCc: c@x.org\r\nSubject: s\r\n\r\nbody\r\n"
    assert envelope(outgoing(to_addrs=(), raw=raw))[1] == ("a@x.org", "c@x.org")


def test_no_recipient_at_all_is_refused() -> None:
    with pytest.raises(ComposeError, match="no recipient"):
        envelope(outgoing(to_addrs=()))


# --- built messages -----------------------------------------------------------------------


@given(
    subject=_text,
    to=st.lists(st.tuples(_name, _address), min_size=1, max_size=3),
    cc=st.lists(st.tuples(_name, _address), max_size=3),
    text=_text,
    html=_text,
)
def test_a_built_message_parses_back_to_its_fields(
    subject: str,
    to: list[tuple[str, str]],
    cc: list[tuple[str, str]],
    text: str,
    html: str,
) -> None:
    message = outgoing(
        subject=subject,
        to_addrs=tuple(_named(n, a) for n, a in to),
        cc_addrs=tuple(_named(n, a) for n, a in cc),
        body_text=text,
        body_html=html,
    )
    back = parsed(message)
    assert str(back["Subject"]) == clean_header_text(subject)
    assert [a.addr_spec for a in back["To"].addresses] == [a for _n, a in to]
    cc_back = back["Cc"].addresses if back["Cc"] is not None else ()
    assert [a.addr_spec for a in cc_back] == [a for _n, a in cc]
    assert back["Message-ID"] == "<m1@practice.example>"
    assert back["Date"].datetime == NOW
    plain = back.get_body(("plain",))
    rich = back.get_body(("html",))
    if text and html:
        assert back.get_content_type() == "multipart/alternative"
    if text or not html:
        assert plain is not None
        assert _lines(plain.get_content()) == _lines(text)
    if html:
        assert rich is not None
        assert _lines(rich.get_content()) == _lines(html)


def _lines(text: str) -> list[str]:
    """Text as lines, the way MIME carries it (line endings are not content)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")


@given(
    subject=_text,
    name=_name,
    injected=st.sampled_from(["\r\nBcc: evil@x.org", "\nBcc: evil@x.org", "\rBcc: evil@x.org"]),
)
def test_newlines_in_a_subject_or_name_cannot_add_headers(
    subject: str, name: str, injected: str
) -> None:
    message = outgoing(
        subject=subject + injected,
        from_addr=_named(name + injected, "reception@practice.example"),
        to_addrs=(_named(name + injected, "patient@example.org"),),
    )
    back = parsed(message)
    assert back["Bcc"] is None
    assert sorted(back.keys()) == sorted(HEADERS_OF_A_TEXT_MESSAGE)


def test_a_newline_inside_an_address_is_refused() -> None:
    with pytest.raises(ComposeError):
        message_bytes(outgoing(to_addrs=("patient@example.org\r\nBcc: evil@x.org",)), NOW)


def test_html_alone_is_a_single_html_part() -> None:
    back = parsed(outgoing(body_text="", body_html="<p>hi</p>"))
    assert back.get_content_type() == "text/html"


def test_non_ascii_names_and_subjects_survive() -> None:
    back = parsed(outgoing(subject="Zoë’s check-up", from_addr="Zahnärzte <r@practice.example>"))
    assert (str(back["Subject"]), back["From"].addresses[0].display_name) == (
        "Zoë’s check-up",
        "Zahnärzte",
    )


# --- raw messages -------------------------------------------------------------------------


def test_a_raw_message_with_a_message_id_is_sent_byte_for_byte() -> None:
    raw = b"Message-ID: <own@lab.example>\nSubject: s\n\nbody\n"
    assert message_bytes(outgoing(raw=raw), NOW) == raw


def test_a_raw_message_without_one_gets_the_rows_message_id_first() -> None:
    raw = b"Subject: s\n\nbody\n"
    assert message_bytes(outgoing(raw=raw), NOW) == b"Message-ID: <m1@practice.example>\n" + raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"Message-ID: <a@b>\r\n\r\nx", "<a@b>"),
        (b"message-id:   <a@b>  \r\n\r\nx", "<a@b>"),
        (b"Subject: s\r\n\r\nMessage-ID: <in-body@b>\r\n", None),
    ],
)
def test_raw_message_id(raw: bytes, expected: str | None) -> None:
    assert raw_message_id(raw) == expected


def test_a_body_holding_the_boundary_is_still_built_correctly() -> None:
    digest = hashlib.sha256(b"<m1@practice.example>").hexdigest()[:32]
    text = f"--=_{digest}\nnot a boundary\n"
    back = parsed(outgoing(body_text=text, body_html="<p>hi</p>"))
    plain = back.get_body(("plain",))
    assert plain is not None
    assert _lines(plain.get_content()) == _lines(text)


def test_long_lines_go_quoted_printable_and_come_back_whole() -> None:
    text = "x" * 200 + " = é\n"
    back = parsed(outgoing(body_text=text))
    assert back["Content-Transfer-Encoding"] == "quoted-printable"
    assert _lines(back.get_content()) == _lines(text)
