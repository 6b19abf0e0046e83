"""actors.mail.parse: raw mail to inbox fields, tolerant of anything."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.mail.parse import (
    DERIVED_DOMAIN,
    MESSAGE_ID_MAX,
    derived_message_id,
    fast_parse,
    full_parse,
    parse_message,
)

_WORDS = (
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
        min_size=1,
        max_size=30,
    )
    .map(lambda s: " ".join(s.split()))
    .filter(bool)
)
_NAMES = st.lists(
    st.text(alphabet=st.characters(categories=["L"]), min_size=1, max_size=10),
    min_size=1,
    max_size=3,
).map(" ".join)
_LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
_ADDRESS = st.builds(lambda local, dom: f"{local}.x@{dom}.example", _LOCAL, _LOCAL)


def _well_formed(subject: str, sender: str, to: list[str], text: str, html: str | None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Message-ID"] = "<abc.123@smile.example>"
    msg["Date"] = "Mon, 05 Jan 2026 09:00:00 +0100"
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


@given(st.binary(max_size=2000))
def test_it_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    parsed = parse_message(raw)
    assert parsed.message_id.startswith("<")
    assert "\n" not in parsed.problem


@given(
    subject=_WORDS,
    sender=_ADDRESS,
    to=st.lists(_ADDRESS, min_size=1, max_size=3),
    text=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=200
    ),
    html=st.none() | st.just("<p>Hello</p>"),
)
def test_well_formed_messages_round_trip(
    subject: str, sender: str, to: list[str], text: str, html: str | None
) -> None:
    parsed = parse_message(_well_formed(subject, sender, to, text, html))
    assert (parsed.subject, parsed.from_addr, parsed.to_addrs) == (subject, sender, ", ".join(to))
    assert parsed.body_text.rstrip("\n") == "\n".join(text.splitlines()).rstrip("\n")
    assert parsed.body_html.strip() == (html or "")
    assert parsed.problem == ""


def test_it_reads_the_message_id_and_date() -> None:
    parsed = parse_message(_well_formed("Hi", "a@b.example", ["c@d.example"], "x\n", None))
    assert parsed.message_id == "<abc.123@smile.example>"
    assert parsed.date == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def test_a_missing_message_id_is_derived_from_the_bytes_and_stable() -> None:
    raw = b"From: a@b.example\r\nSubject: no id\r\n\r\nbody\r\n"
    assert parse_message(raw).message_id == derived_message_id(raw)
    assert parse_message(raw).message_id.endswith(f"@{DERIVED_DOMAIN}>")


def test_an_overlong_message_id_is_replaced_by_a_stable_one_that_fits() -> None:
    raw = b"Message-ID: <" + b"x" * 400 + b"@long.example>\r\nSubject: s\r\n\r\nb\r\n"
    first, second = parse_message(raw), parse_message(raw + b"more")
    assert len(first.message_id) <= MESSAGE_ID_MAX
    assert first.message_id == second.message_id


def test_crlf_line_ends_read_as_newlines() -> None:
    raw = b"From: a@b.example\r\nSubject: s\r\n\r\nline 1\r\nline 2\r\n"
    assert parse_message(raw).body_text == "line 1\nline 2\n"


def test_cc_addresses_are_read() -> None:
    raw = b"From: a@b.example\r\nCc: X <x@y.example>, z@w.example\r\n\r\nb\r\n"
    assert parse_message(raw).cc_addrs == "x@y.example, z@w.example"


def test_an_unknown_charset_still_gives_the_text_and_a_note() -> None:
    raw = (
        b"From: a@b.example\r\nSubject: s\r\nContent-Type: text/plain; charset=x-nonsense\r\n"
        b"\r\nHello\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.body_text.strip() == "Hello"
    assert "could not decode the plain body" in parsed.problem


def test_undecodable_header_bytes_become_storable_text() -> None:
    raw = b"From: a@b.example\r\nSubject: caf\xe9 \x00bar\r\n\r\nb\r\n"
    subject = parse_message(raw).subject
    assert "\x00" not in subject
    subject.encode("utf-8")  # no lone surrogates: every database accepts it


# --- the fast reader agrees with the full one ---------------------------------------------

_PIECE = st.text(alphabet="ab.-_@<>\",;:()=?\\ \t'[]8", max_size=12)
_HEADER_NAMES = st.sampled_from(
    (
        "From",
        "To",
        "Cc",
        "Subject",
        "Message-ID",
        "Date",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "X-Note",
    )
)
_HEADER_VALUES = st.one_of(
    _PIECE,
    st.sampled_from(
        (
            "a@b.example",
            'Pat <p.s@x.example>, "Smith, Jo" <jo@y.example>',
            "=?utf-8?q?Zo=C3=AB?= <z@x.example>",
            "undisclosed-recipients:;",
            "<id.1@host.example>",
            "<a..b@host>",
            "Mon, 05 Jan 2026 09:00:00 +0100",
            "Mon, 05 Jan 2026 09:00:00 -0000",
            "not a date",
            "text/plain; charset=utf-8",
            'text/plain; charset="iso-8859-1"',
            "text/plain; charset=x-nonsense",
            "text/html",
            'multipart/alternative; boundary="b1"',
            "multipart/mixed; boundary=b1",
            "quoted-printable",
            "base64",
            " 7bit",
            "8bit",
            "=?iso-8859-1?q?caf=E9?= =?utf-8?b?w6k=?= x",
        )
    ),
)
_HEADERS = st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=8)
_BODY_LINES = st.lists(
    st.sampled_from(
        ("hello", "", "=3D=0D=0A", "caf=E9 =", "--b1", "--b1--", "aGVsbG8=", "\xe9t\xe9", " x")
    ),
    max_size=6,
)


def _assemble(
    headers: list[tuple[str, str]],
    body: list[str],
    newline: str,
    parts: list[tuple[list[tuple[str, str]], list[str]]],
) -> bytes:
    lines = [f"{name}: {value}" for name, value in headers] + [""] + body
    for part_headers, part_body in parts:
        lines += ["--b1"] + [f"{n}: {v}" for n, v in part_headers] + [""] + part_body
    if parts:
        lines.append("--b1--")
    return newline.join(lines).encode("utf-8", "surrogateescape") + newline.encode()


@settings(max_examples=500)
@given(
    headers=_HEADERS,
    body=_BODY_LINES,
    newline=st.sampled_from(("\r\n", "\n")),
    parts=st.lists(st.tuples(_HEADERS, _BODY_LINES), max_size=3),
)
def test_the_fast_reader_answers_as_the_full_one_or_not_at_all(
    headers: list[tuple[str, str]],
    body: list[str],
    newline: str,
    parts: list[tuple[list[tuple[str, str]], list[str]]],
) -> None:
    raw = _assemble(headers, body, newline, parts)
    fast = fast_parse(raw)
    assert fast is None or fast == full_parse(raw)


@given(st.binary(max_size=600))
def test_the_fast_reader_on_arbitrary_bytes_answers_as_the_full_one_or_not_at_all(
    raw: bytes,
) -> None:
    fast = fast_parse(raw)
    assert fast is None or fast == full_parse(raw)


@given(
    subject=_WORDS,
    sender=_ADDRESS,
    to=st.lists(_ADDRESS, min_size=1, max_size=3),
    text=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=200
    ),
    html=st.none() | st.just("<p>Hello</p>"),
    name=_NAMES,
)
def test_common_messages_are_read_by_the_fast_reader(
    subject: str, sender: str, to: list[str], text: str, html: str | None, name: str
) -> None:
    raw = _well_formed(subject, f"{name} <{sender}>", to, text, html)
    fast = fast_parse(raw)
    assert fast is not None
    assert fast == full_parse(raw)
