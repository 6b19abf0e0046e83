"""Raw mail to the fields of an inbox row. Pure: no I/O, no clock.

``parse_message(raw)`` reads a message with the standard library's ``email`` package
(``policy.default``) and never raises: whatever cannot be read is left empty and named in
``ParsedMessage.problem`` (one line, for ``email_messages.last_error``), so a malformed
message is still stored raw with what could be read.

Text is made safe for every database the service writes to: undecodable bytes become
U+FFFD, NUL characters are dropped (PostgreSQL refuses them), one-line fields have no line
breaks, and ``from_addr``/``message_id`` fit their columns. A message without a usable
Message-ID gets one derived from its bytes (``derived_message_id``), so importing the same
message again finds the same row.
"""

from __future__ import annotations

import email
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from typing import Any

MESSAGE_ID_MAX = 255
"""Characters ``email_messages.message_id`` holds (``String(255)``)."""
FROM_ADDR_MAX = 1000
"""Characters ``email_messages.from_addr`` holds (``Unicode(1000)``)."""
PROBLEM_MAX = 500
"""Characters of the one-line problem note kept."""
DERIVED_DOMAIN = "derived.message-id.invalid"
"""The domain of Message-IDs the service makes up (``.invalid`` never resolves)."""


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """What could be read from one raw message; ``problem`` is "" when all of it could."""

    message_id: str  # with angle brackets; derived from the bytes when missing
    from_addr: str  # the sender's address (addr-spec), "" when unreadable
    to_addrs: str  # addresses separated by ", "
    cc_addrs: str
    subject: str
    body_text: str
    body_html: str
    date: datetime | None  # the Date header, timezone-aware, or None
    problem: str = ""


def derived_message_id(raw: bytes) -> str:
    """Return a Message-ID made from the SHA-256 of ``raw``: the same bytes, the same id."""
    return f"<{hashlib.sha256(raw).hexdigest()[:40]}@{DERIVED_DOMAIN}>"


def clean_text(value: str) -> str:
    """Return ``value`` as storable text: lone surrogates (undecodable bytes) re-read as
    UTF-8 with U+FFFD for what is not, and NUL characters removed."""
    data = value.encode("utf-8", "surrogateescape")
    return data.decode("utf-8", "replace").replace("\x00", "")


def one_line(value: str) -> str:
    """Return ``clean_text(value)`` with every run of whitespace made one space."""
    return " ".join(clean_text(value).split())


def _describe(exc: BaseException) -> str:
    text = one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _raw_header(msg: Message, name: str) -> str:
    """The header's value as stored, unparsed (policy.default parses on access)."""
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            return one_line(str(value))
    return ""


def _header(msg: Message, name: str, problems: list[str]) -> Any:
    try:
        return msg[name]
    except Exception as exc:  # the header classes raise several types on bad input
        problems.append(f"could not read the {name} header ({_describe(exc)})")
        return None


def _addresses(msg: Message, name: str, problems: list[str]) -> list[str]:
    header = _header(msg, name, problems)
    if header is None:
        return []
    try:
        found = [clean_text(a.addr_spec) for a in header.addresses if a.addr_spec not in ("", "<>")]
    except Exception as exc:
        problems.append(f"could not read the addresses in {name} ({_describe(exc)})")
        return [_raw_header(msg, name)] if _raw_header(msg, name) else []
    if not found and str(header).strip():
        problems.append(f"no address could be read from the {name} header")
    return [one_line(a) for a in found if one_line(a)]


def _message_id(msg: Message, raw: bytes, problems: list[str]) -> str:
    header = _header(msg, "Message-ID", problems)
    value = one_line(str(header)) if header is not None else ""
    if not value:
        return derived_message_id(raw)
    token = value.split()[0]
    if not token.startswith("<"):
        token = f"<{token.strip('<>')}>"
    elif ">" in token:
        token = token[: token.index(">") + 1]
    else:
        token += ">"
    if len(token) > MESSAGE_ID_MAX or not token.isascii() or not token.isprintable():
        # Too long or not ASCII for the column: still stable, derived from the header.
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()[:40]
        problems.append("the Message-ID is too long or not ASCII; a derived one is used")
        return f"<{digest}@{DERIVED_DOMAIN}>"
    return token


def _date(msg: Message, problems: list[str]) -> datetime | None:
    header = _header(msg, "Date", problems)
    if header is None:
        return None
    try:
        when = header.datetime
    except Exception as exc:
        problems.append(f"could not read the Date header ({_describe(exc)})")
        return None
    if not isinstance(when, datetime):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _part_text(part: Message, what: str, problems: list[str]) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, bytes):
            return clean_text(content.decode("utf-8", "replace"))
        return clean_text(str(content))
    except Exception as exc:
        problems.append(f"could not decode the {what} body ({_describe(exc)}); read as UTF-8")
    try:
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            return clean_text(payload.decode("utf-8", "replace"))
    except Exception as exc:
        problems.append(f"could not read the {what} body at all ({_describe(exc)})")
    return ""


def _body(msg: EmailMessage, subtype: str, problems: list[str]) -> str:
    try:
        part = msg.get_body(preferencelist=(subtype,))
    except Exception as exc:
        problems.append(f"could not find the {subtype} body ({_describe(exc)})")
        return ""
    if part is None:
        return ""
    return _part_text(part, subtype, problems).replace("\r\n", "\n")


def parse_message(raw: bytes) -> ParsedMessage:
    """Return what can be read from ``raw``; never raises (see the module docstring)."""
    problems: list[str] = []
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
    except Exception as exc:  # the parser is lenient; this is a last resort
        return ParsedMessage(
            message_id=derived_message_id(raw),
            from_addr="",
            to_addrs="",
            cc_addrs="",
            subject="",
            body_text="",
            body_html="",
            date=None,
            problem=f"could not parse the message ({_describe(exc)})"[:PROBLEM_MAX],
        )
    assert isinstance(msg, EmailMessage)  # policy.default makes EmailMessage
    for defect in msg.defects[:1]:
        problems.append(f"malformed message ({one_line(type(defect).__name__)})")
    senders = _addresses(msg, "From", problems)
    subject_header = _header(msg, "Subject", problems)
    subject = one_line(str(subject_header)) if subject_header is not None else ""
    if subject_header is None and _raw_header(msg, "Subject"):
        subject = _raw_header(msg, "Subject")
    return ParsedMessage(
        message_id=_message_id(msg, raw, problems),
        from_addr=(senders[0] if senders else "")[:FROM_ADDR_MAX],
        to_addrs=", ".join(_addresses(msg, "To", problems)),
        cc_addrs=", ".join(_addresses(msg, "Cc", problems)),
        subject=subject,
        body_text=_body(msg, "plain", problems),
        body_html=_body(msg, "html", problems),
        date=_date(msg, problems),
        problem="; ".join(problems)[:PROBLEM_MAX],
    )
