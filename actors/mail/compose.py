"""Turning an outbox row into the bytes and envelope SMTP sends. Pure: no I/O, no clock.

- ``make_message_id(domain, random)``: a new Message-ID, fixed before the first attempt and
  stored in the row, so every resend carries the same one.
- ``split_addresses(text)``: the row's ``to_addrs``/``cc_addrs`` (comma- or
  semicolon-separated, display names allowed, quoted names may hold either separator).
- ``message_bytes(message, now)``: ``raw`` as it is when present (with the row's
  Message-ID added if it has none), else a message built from the fields: From, To, Cc,
  Subject, Date, Message-ID, a text part, an HTML part, or ``multipart/alternative`` when
  there are both. It is written out directly, with the headers and MIME structure
  ``email.message.EmailMessage`` gives (which is ten times slower and remains the
  fallback when a body happens to hold the boundary).
- ``envelope(message)``: the envelope sender and recipients (to + cc, bare addresses).

Header injection is impossible by construction: every control character in a subject or a
display name becomes a space, and an address with anything but address characters is
refused with ``ComposeError`` (a one-line reason naming the address).
"""

from __future__ import annotations

import binascii
import email.policy
import email.utils
import functools
import hashlib
import random as random_module
import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser

from actors.mail.sender import OutgoingMessage

FALLBACK_DOMAIN = "practice-email-service.invalid"
"""The Message-ID domain when the practice has no usable from address."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x80-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")
# ASCII atext and dots, or any character beyond ASCII that is not a control or a space
# (RFC 6531: an internationalised local part, sent where the server offers SMTPUTF8).
_LOCAL_PART = re.compile(r"^(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]|[^\x00-\x9f\s\u2028\u2029])+$")
_DOMAIN_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_LINE_ENDING = re.compile(rb"\r\n|\r|\n")
_BARE_ADDRESS = re.compile(r"^[^\s<>\"@]+@[^\s<>\"@]+$")
_FOLDED_COMMA = ",\r\n "
_NAME_MAX = 200  # keeps an encoded name and its address well inside a 998-byte line
_LINE_MAX = 78  # policy.SMTP's max_line_length: longer body lines are quoted-printable
_DIRECT_SUBJECT_MAX = 66  # "Subject: " and this many characters fit a 78-character line
_DIRECT_HEADER_MAX = 900
_ENCODED_WORD_BYTES = 45  # base64 of 45 bytes is 60 characters: a 72-character encoded word


class ComposeError(ValueError):
    """Raised when a row cannot become a message (a bad address); the text says which."""


def make_message_id(domain: str, random: random_module.Random) -> str:
    """Return a new Message-ID such as ``<5f0c...e1@practice.example>``.

    ``domain`` is the practice's from-address domain (non-ASCII is IDNA-encoded; an unusable
    one is replaced by ``FALLBACK_DOMAIN``); ``random`` supplies 128 bits.
    """
    try:
        clean = _ascii_domain(domain)
    except ComposeError:
        clean = FALLBACK_DOMAIN
    return f"<{random.getrandbits(128):032x}@{clean}>"


@functools.lru_cache(maxsize=256)
def domain_of(address: str) -> str:
    """Return the domain of ``address`` (``"Name <a@b>"`` allowed), or "" if it has none."""
    _name, addr = email.utils.parseaddr(address)
    return addr.rpartition("@")[2] if "@" in addr else ""


def clean_header_text(text: str) -> str:
    """Return ``text`` fit for a header: control characters and runs of white space become
    one space; leading and trailing space goes."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()


def split_addresses(text: str | None) -> tuple[str, ...]:
    """Split a row's address list on commas, semicolons and line breaks outside quotes
    and ``<...>``; an entry that is only bare addresses separated by spaces or tabs
    (``a@x b@y``) is split there too.

    Returns the non-empty entries, stripped, as written (``"Bob <b@x>"`` stays whole).
    """
    if not text:
        return ()
    entries: list[str] = []
    current: list[str] = []
    quoted = angle = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "<" and not quoted:
            angle = True
        elif char == ">" and not quoted:
            angle = False
        elif char in ",;\r\n" and not quoted and not angle:
            entries.append("".join(current))
            current = []
            continue
        current.append(char)
    entries.append("".join(current))
    found: list[str] = []
    for entry in entries:
        words = entry.split()
        if len(words) > 1 and all(_BARE_ADDRESS.match(word) for word in words):
            found.extend(words)
        elif words:
            found.append(entry.strip())
    return tuple(found)


def parse_address(entry: str) -> Address:
    """Return ``entry`` (``a@b`` or ``Name <a@b>``) as an ``Address``; raise ``ComposeError``.

    The local part is address characters without quoting: ASCII ``atext`` and dots, or
    letters beyond ASCII (``jürgen@``, ``иван@``, ``张伟@``: such an address can only be sent
    where the server offers SMTPUTF8, see ``needs_smtputf8``); a non-ASCII domain is
    IDNA-encoded. The display name is cleaned like a header.
    """
    name, addr = _split_name(entry)
    local, at, domain = addr.rpartition("@")
    if not at or not _LOCAL_PART.match(local) or ".." in local or local.startswith("."):
        raise ComposeError(f"{clean_header_text(entry)[:200]!r} is not an email address")
    return Address(
        display_name=clean_header_text(name), username=local, domain=_ascii_domain(domain)
    )


def needs_smtputf8(addr_spec: str) -> bool:
    """Whether ``addr_spec`` (from ``parse_address``) can only go through SMTPUTF8."""
    return not addr_spec.isascii()


def _split_name(entry: str) -> tuple[str, str]:
    text = entry.strip()
    if text.endswith(">") and "<" in text:
        name, _, addr = text[:-1].rpartition("<")
        name = name.strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        return name, addr.strip()
    return "", text


def _ascii_domain(domain: str) -> str:
    domain = domain.strip().rstrip(".")
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if domain else ""
    except UnicodeError:
        ascii_domain = ""
    labels = ascii_domain.split(".")
    if not ascii_domain or len(ascii_domain) > 253 or not all(map(_DOMAIN_LABEL.match, labels)):
        raise ComposeError(f"{clean_header_text(domain)[:200]!r} is not a mail domain")
    return ascii_domain


def envelope(message: OutgoingMessage) -> tuple[str, tuple[str, ...]]:
    """Return the envelope sender and the recipients (to + cc, in order, without repeats).

    When ``raw`` is set and the row names no recipient, its To and Cc headers are used.
    Raises ``ComposeError`` for an address that cannot be sent to, or for no recipient.
    """
    sender = parse_address(message.from_addr).addr_spec if message.from_addr.strip() else ""
    entries = [*message.to_addrs, *message.cc_addrs]
    if not entries and message.raw is not None:
        headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(message.raw)
        for field in ("To", "Cc"):
            entries.extend(
                addr for _name, addr in email.utils.getaddresses(headers.get_all(field, []))
            )
    recipients: list[str] = []
    for entry in entries:
        addr = parse_address(entry).addr_spec
        if addr.lower() not in (r.lower() for r in recipients):
            recipients.append(addr)
    if not recipients:
        raise ComposeError("the message has no recipient (to_addrs and cc_addrs are empty)")
    return sender, tuple(recipients)


def raw_message_id(raw: bytes) -> str | None:
    """Return the Message-ID header of a complete message, or None when it has none."""
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    value = headers.get("Message-ID")
    text = clean_header_text(str(value)) if value is not None else ""
    return text or None


def message_bytes(message: OutgoingMessage, now: datetime) -> bytes:
    """Return the message to send. ``now`` (aware) is its Date when it is built here.

    ``raw`` is sent as it is, with ``Message-ID: <row's>`` put first when it has none.
    Raises ``ComposeError`` for a bad address.
    """
    if message.raw is not None:
        if raw_message_id(message.raw) is not None:
            return message.raw
        newline = _first_line_ending(message.raw)
        header = clean_header_text(message.message_id).encode("ascii", "replace")
        return b"Message-ID: " + header + newline + message.raw
    addresses = b"".join(
        _address_header(field, entries)
        for field, entries in (
            ("From", (message.from_addr,) if message.from_addr.strip() else ()),
            ("To", message.to_addrs),
            ("Cc", message.cc_addrs),
        )
        if entries
    )
    direct = _built_directly(message, now)
    if direct is not None:
        return addresses + direct
    built = EmailMessage(policy=email.policy.SMTP)
    built["Subject"] = clean_header_text(message.subject)
    built["Date"] = email.utils.format_datetime(now)
    built["Message-ID"] = clean_header_text(message.message_id)
    if message.body_text and message.body_html:
        built.set_content(message.body_text)
        built.add_alternative(message.body_html, subtype="html")
    elif message.body_html:
        built.set_content(message.body_html, subtype="html")
    else:
        built.set_content(message.body_text)
    return addresses + built.as_bytes()


def _built_directly(message: OutgoingMessage, now: datetime) -> bytes | None:
    """Return the message after its address headers, written out directly: the same
    headers and MIME structure ``EmailMessage`` gives (text/plain, text/html or
    multipart/alternative; utf-8; 7bit, 8bit, or quoted-printable for lines longer than
    78 bytes), at a fraction of its cost. None when a body holds the chosen boundary."""
    message_id = clean_header_text(message.message_id)
    if not message_id.isascii() or len(message_id) > _DIRECT_HEADER_MAX:
        return None
    head = (
        _subject_header(clean_header_text(message.subject))
        + f"Date: {email.utils.format_datetime(now)}\r\nMessage-ID: {message_id}\r\n"
        "MIME-Version: 1.0\r\n"
    ).encode("ascii")
    if message.body_text and message.body_html:
        text = _text_part("plain", message.body_text)
        html = _text_part("html", message.body_html)
        digest = hashlib.sha256(message_id.encode("ascii")).hexdigest()[:32]
        boundary = f"=_{digest}"
        if boundary.encode("ascii") in text or boundary.encode("ascii") in html:
            return None
        mark = f"--{boundary}\r\n".encode("ascii")
        return (
            head
            + f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode()
            + mark
            + text
            + mark
            + html
            + f"--{boundary}--\r\n".encode("ascii")
        )
    if message.body_html:
        return head + _text_part("html", message.body_html)
    return head + _text_part("plain", message.body_text)


def _subject_header(subject: str) -> str:
    """The Subject header: as it is when it is short plain ASCII, else as RFC 2047
    encoded words (UTF-8, base64) of at most 75 characters, one per folded line."""
    if subject.isascii() and "=?" not in subject and len(subject) <= _DIRECT_SUBJECT_MAX:
        return f"Subject: {subject}\r\n"
    words: list[str] = []
    chunk = bytearray()
    for char in subject:
        encoded = char.encode("utf-8", "replace")
        if len(chunk) + len(encoded) > _ENCODED_WORD_BYTES:
            words.append(_encoded_word(bytes(chunk)))
            chunk.clear()
        chunk += encoded
    if chunk:
        words.append(_encoded_word(bytes(chunk)))
    return "Subject: " + "\r\n ".join(words) + "\r\n"


def _encoded_word(data: bytes) -> str:
    return "=?utf-8?b?" + binascii.b2a_base64(data, newline=False).decode("ascii") + "?="


def _text_part(subtype: str, text: str) -> bytes:
    """Headers and body of one text part, as ``EmailMessage.set_content`` would make them:
    line breaks (CR, LF or CRLF) become CRLF, the body ends with one."""
    lines = text.encode("utf-8", "surrogateescape").splitlines()
    if max(map(len, lines), default=0) <= _LINE_MAX:
        body = b"\r\n".join(lines) + b"\r\n"
        cte = "7bit" if body.isascii() else "8bit"
    else:
        encoded = binascii.b2a_qp(b"\n".join(lines) + b"\n", istext=True)
        body = encoded.replace(b"\n", b"\r\n")
        cte = "quoted-printable"
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'
    ).encode("ascii") + body


def _address_header(field: str, entries: tuple[str, ...]) -> bytes:
    """Return one address header, each address on its own line.

    Written here rather than by ``EmailMessage``: its folder can encode the comma between
    two addresses into an encoded word when a display name is non-ASCII, which turns a
    list into one address for every reader (seen with Python 3.11).
    """
    formatted = [_formatted(address) for address in map(parse_address, entries)]
    return f"{field}: {_FOLDED_COMMA.join(formatted)}\r\n".encode()


def _formatted(address: Address) -> str:
    """One address for a header: the name encoded as RFC 2047 words where needed; an
    internationalised address as UTF-8 (RFC 6532, only sent where SMTPUTF8 is offered)."""
    if address.addr_spec.isascii():
        return email.utils.formataddr((address.display_name, address.addr_spec), charset="utf-8")
    if not address.display_name:
        return address.addr_spec
    name = email.utils.formataddr((address.display_name, "x@x"), charset="utf-8")[: -len("<x@x>")]
    return f"{name}<{address.addr_spec}>"


def _first_line_ending(raw: bytes) -> bytes:
    found = _LINE_ENDING.search(raw)
    return found.group(0) if found else b"\r\n"
