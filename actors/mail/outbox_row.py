"""Reading one outbox row as the practice software wrote it. Pure: no I/O, no clock.

``read_outbox_row(row)`` takes the row's values as the database driver returned them (no
SQLAlchemy type processing: a SQLite column holds whatever was inserted) and returns
either an ``OutboxItem`` (what the outbox sends) or a ``RowProblem`` (why this one row
cannot be sent). It never raises: one row written badly is that row's problem, and the
outbox fails it with the reason in ``last_error`` while the other rows keep flowing.

Lenient where the meaning is clear, refused where it is not:

- Text columns (addresses, subject, bodies, Message-ID): NULL reads as "", numbers as their
  decimal text, bytes as UTF-8. Bytes that are not UTF-8, or any other kind of value, are
  refused naming the column.
- ``raw``: bytes that are an RFC 5322 message as they are; text that is one (a header block of
  ``Name: value`` lines, with From, To, Subject, Date or Message-ID among them) is encoded
  as UTF-8; anything else is refused ("raw is text that is not an email message").
- ``attempts``: NULL, a negative number or text that is no number read as 0 (the service
  owns this counter and writes a whole number back after the attempt).
- ``created_at``, ``next_attempt_at``: datetimes as they are; text in ISO 8601 or a common
  form (``2026-12-01 10:00``, ``2026-12-01T10:00:00Z``, ``01.12.2026 10:00``,
  ``Tue, 01 Dec 2026 10:00:00 +0000``, Unix seconds) is parsed to naive UTC; anything else
  reads as None with a note. Neither decides whether a message is sent (the database
  already judged the row due), so an unreadable time never stops a message.
- ``recipient_status``: the service's own per-recipient record (``docs/mail.md``); text
  that is not that record reads as "nothing delivered yet" with a note.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from actors.mail import compose
from actors.mail.sender import RecipientResult

_HEADER_LINE = re.compile(r"^[!-9;-~]+:")
_HEADER_END = re.compile(r"\r?\n\r?\n|\r\r")
_KNOWN_HEADERS = frozenset({"from", "to", "cc", "subject", "date", "message-id", "sender"})
_DAY_FIRST = re.compile(
    r"^(\d{1,2})[./](\d{1,2})[./](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?$"
)
_SUBJECT_SHOWN = 80
_HEAD_BYTES = 256 * 1024  # where a message's header block must have ended
_MESSAGE_FORM = (
    "RFC 5322: header lines such as 'From: ...' and 'Subject: ...', a blank line, the body"
)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One outbox row, read: every value of the type the outbox needs."""

    row_id: int
    channel: str
    message_id: str | None
    from_addr: str
    to_addrs: tuple[str, ...]
    cc_addrs: tuple[str, ...]
    subject: str
    body_text: str
    body_html: str
    raw: bytes | None
    attempts: int
    created_at: datetime | None
    next_attempt_at: datetime | None
    recipients: tuple[RecipientResult, ...] = ()  # from earlier attempts
    notes: tuple[str, ...] = ()  # what was read leniently, for the log

    @property
    def done(self) -> frozenset[str]:
        """Recipients not to be sent to this time: those who have the message, and those
        refused for good while the row is being retried. A row with ``attempts`` 0 was
        queued (again) by a person or the practice software (``mail retry-failed``
        resets it): its refused recipients are tried again, its accepted ones never."""
        settled = ("sent",) if self.attempts == 0 else ("sent", "refused")
        return frozenset(r.address for r in self.recipients if r.state in settled)


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why one row cannot be sent as written; ``describe()`` names the row and the cause."""

    row_id: int | None
    subject: str
    reason: str
    attempts: int = 0

    def describe(self) -> str:
        """``outbox row 12 ("Recall"): raw is text that is not an email message``."""
        where = "outbox row" if self.row_id is None else f"outbox row {self.row_id}"
        return f"{where} ({shown_subject(self.subject)}): {self.reason}"


class _Refused(ValueError):
    """Raised inside this module for a value whose meaning is not clear."""


def shown_subject(subject: str) -> str:
    """A subject for a log line or a diagnostic: quoted, one line, at most 80 characters."""
    text = compose.clean_header_text(subject)
    if not text:
        return "no subject"
    if len(text) > _SUBJECT_SHOWN:
        text = text[: _SUBJECT_SHOWN - 3] + "..."
    return json.dumps(text, ensure_ascii=False)


def read_outbox_row(row: Mapping[str, Any]) -> OutboxItem | RowProblem:
    """Return the row as an ``OutboxItem``, or the ``RowProblem`` that keeps it from being
    sent. Pure; never raises (see the module docstring for each column's rule)."""
    notes: list[str] = []
    row_id = _row_id(row.get("id"))
    try:
        subject = _text(row, "subject")
    except _Refused as exc:
        return RowProblem(row_id, "", str(exc), read_attempts(row.get("attempts")))
    attempts = read_attempts(row.get("attempts"))
    try:
        if row_id is None:
            raise _Refused(f"id is {_shown(row.get('id'))}, not a whole number")
        message_id = _text(row, "message_id").strip() or None
        item = OutboxItem(
            row_id=row_id,
            channel=_text(row, "channel").strip().lower() or "email",
            message_id=message_id,
            from_addr=_text(row, "from_addr"),
            to_addrs=compose.split_addresses(_text(row, "to_addrs")),
            cc_addrs=compose.split_addresses(_text(row, "cc_addrs")),
            subject=subject,
            body_text=_text(row, "body_text"),
            body_html=_text(row, "body_html"),
            raw=_raw(row.get("raw")),
            attempts=attempts,
            created_at=_time(row, "created_at", notes),
            next_attempt_at=_time(row, "next_attempt_at", notes),
            recipients=_recipients(row.get("recipient_status"), notes),
        )
    except _Refused as exc:
        return RowProblem(row_id, subject, str(exc), attempts)
    except Exception as exc:  # the promise: one row's values never raise
        reason = f"its values cannot be read ({type(exc).__name__}: {exc})"
        return RowProblem(row_id, subject, reason[:500], attempts)
    if item.raw is None and not item.to_addrs and not item.cc_addrs:
        return RowProblem(
            row_id, subject, "it has no recipient (to_addrs and cc_addrs are empty)", attempts
        )
    return _with_notes(item, notes) if notes else item


def _with_notes(item: OutboxItem, notes: list[str]) -> OutboxItem:
    return OutboxItem(
        item.row_id,
        item.channel,
        item.message_id,
        item.from_addr,
        item.to_addrs,
        item.cc_addrs,
        item.subject,
        item.body_text,
        item.body_html,
        item.raw,
        item.attempts,
        item.created_at,
        item.next_attempt_at,
        item.recipients,
        tuple(notes),
    )


def _row_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value.strip())
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(row: Mapping[str, Any], column: str) -> str:
    """A text column's value as text; raise ``_Refused`` naming the column."""
    value = row.get(column)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise _Refused(f"{column} is binary data that is not UTF-8 text") from None
    if isinstance(value, bool):
        raise _Refused(f"{column} is {value!r}, not text")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite():
        return str(int(value)) if value == value.to_integral_value() else str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    raise _Refused(f"{column} is {_shown(value)}, not text")


def read_attempts(value: Any) -> int:
    """``attempts`` as a whole number from 0: NULL, negative or unreadable values read as 0."""
    number: int
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        number = value
    elif isinstance(value, Decimal):
        number = int(value) if value.is_finite() else 0
    elif isinstance(value, float):
        number = int(value) if math.isfinite(value) else 0
    elif isinstance(value, (str, bytes)):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        text = text.strip()
        number = int(text) if re.fullmatch(r"[+-]?\d{1,9}", text) else 0
    else:
        return 0
    return min(max(number, 0), 10**9)


def _raw(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if not data.strip():
            return None
        head = data[:_HEAD_BYTES].decode("latin-1")
        if len(data) > _HEAD_BYTES:
            head = head.rpartition("\n")[0]  # a line cut in the middle is no header line
        if not looks_like_message(head):
            raise _Refused(f"raw is bytes that are not an email message ({_MESSAGE_FORM})")
        return data
    if isinstance(value, str):
        if not value.strip():
            return None
        if not looks_like_message(value):
            raise _Refused(f"raw is text that is not an email message ({_MESSAGE_FORM})")
        return value.encode("utf-8", "surrogatepass")
    raise _Refused(f"raw is {_shown(value)}, not a message")


def looks_like_message(text: str) -> bool:
    """Whether ``text`` is an RFC 5322 message: a header block of ``Name: value`` lines
    (continuations indented) with at least one of From, To, Cc, Subject, Date, Message-ID or
    Sender, ended by a blank line or the end of the text."""
    fields: set[str] = set()
    text = text.lstrip("\r\n")
    end = _HEADER_END.search(text)
    for line in re.split(r"\r\n|\r|\n", text[: end.start()] if end else text):
        if not line:
            break
        if line[0] in " \t":
            if not fields:
                return False
            continue
        if not _HEADER_LINE.match(line):
            return False
        fields.add(line.split(":", 1)[0].strip().lower())
    return bool(fields & _KNOWN_HEADERS)


def _time(row: Mapping[str, Any], column: str, notes: list[str]) -> datetime | None:
    value = row.get(column)
    if value is None:
        return None
    parsed = parse_time(value)
    if parsed is None:
        notes.append(f"{column} {_shown(value)} is not a time; ignored")
    return parsed


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def parse_time(value: Any) -> datetime | None:
    """A time written by practice software, as naive UTC, or None when it is not one.

    Text: ISO 8601 (``T`` or space, fractions, ``Z`` or an offset), ``DD.MM.YYYY`` or
    ``DD/MM/YYYY`` with an optional ``HH:MM[:SS]`` (day first, as in the practices'
    countries; a first number over 12 settles it either way), RFC 2822 dates; a number
    (or its text) is Unix seconds. A time without a zone is taken as UTC, as the contract
    stores times. A ``datetime`` (what a typed driver returns) is only made naive UTC.
    """
    if isinstance(value, datetime):
        return _naive_utc(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal) and not value.is_finite():
        return None
    if isinstance(value, (int, float, Decimal)):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if re.fullmatch(r"\d{9,11}(\.\d+)?", text):
        return _from_epoch(float(text))
    iso = text[:-1] + "+00:00" if text[-1:] in "zZ" else text
    try:
        return _naive_utc(datetime.fromisoformat(iso))
    except ValueError:
        pass
    day_first = _DAY_FIRST.match(text)
    if day_first:
        first, second, year, hour, minute, sec, frac = day_first.groups()
        day, month = int(first), int(second)
        if month > 12 >= day:
            day, month = month, day
        try:
            return datetime(
                int(year),
                month,
                day,
                int(hour or 0),
                int(minute or 0),
                int(sec or 0),
                int((frac or "0").ljust(6, "0")),
            )
        except ValueError:
            return None
    try:
        return _naive_utc(email.utils.parsedate_to_datetime(text))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _from_epoch(seconds: float) -> datetime | None:
    if not math.isfinite(seconds) or not 0 <= seconds < 32503680000:  # before year 3000
        return None
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def _recipients(value: Any, notes: list[str]) -> tuple[RecipientResult, ...]:
    if value is None or value == "":
        return ()
    try:
        text = bytes(value).decode("utf-8") if not isinstance(value, str) else value
        loaded = json.loads(text)
        return tuple(
            RecipientResult(str(entry["address"]).lower(), entry["state"], str(entry["reply"]))
            for entry in loaded
            if entry["state"] in ("sent", "deferred", "refused")
        )
    except (TypeError, ValueError, KeyError, AttributeError):
        notes.append("recipient_status is not the service's record; every recipient is tried")
        return ()


def recipients_text(results: tuple[RecipientResult, ...]) -> str | None:
    """The ``recipient_status`` column's text for ``results`` (None when there are none)."""
    if not results:
        return None
    return json.dumps(
        [{"address": r.address, "state": r.state, "reply": r.reply} for r in results],
        ensure_ascii=False,
    )
