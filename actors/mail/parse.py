"""Raw mail to the fields of an inbox row. Pure: no I/O, no clock.

``parse_message(raw)`` reads a message with the standard library's ``email`` package
(``policy.default``; the common shapes are read by ``fast_parse`` instead, with the same
result at a thirtieth of the cost) and never raises: whatever cannot be read is left
empty and named in ``ParsedMessage.problem`` (one line, for ``email_messages.last_error``),
so a malformed message is still stored raw with what could be read.

Text is made safe for every database the service writes to: undecodable bytes become
U+FFFD, NUL characters are dropped (PostgreSQL refuses them), one-line fields have no line
breaks, and ``from_addr``/``message_id`` fit their columns. A message without a usable
Message-ID gets one derived from its bytes (``derived_message_id``), so importing the same
message again finds the same row.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email
import email.parser
import email.utils
import hashlib
import itertools
import re
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


def raw_digest(raw: bytes) -> str:
    """Return the SHA-256 of ``raw`` in hex: what identifies a message by its content
    (``email_messages.raw_sha256``)."""
    return hashlib.sha256(raw).hexdigest()


def derived_message_id(raw: bytes, digest: str | None = None) -> str:
    """Return a Message-ID made from the SHA-256 of ``raw`` (or its ``digest``, when
    already computed): the same bytes, the same id."""
    return f"<{(digest or raw_digest(raw))[:40]}@{DERIVED_DOMAIN}>"


_UNDECODED = re.compile("[\udc80-\udcff]+")  # bytes the parser could not decode


def _cp1252_run(found: re.Match[str]) -> str:
    return found.group().encode("utf-8", "surrogateescape").decode("cp1252", "replace")


def decode_8bit(value: str) -> str:
    """Return ``value`` with its undecoded bytes (lone surrogates: 8-bit bytes in a
    header that declares no charset) read as UTF-8 when the whole value is valid UTF-8,
    else as Windows-1252 (Latin-1 with the quotes and dashes mail programs use), the way mail
    programs show such headers."""
    if not _UNDECODED.search(value):
        return value
    try:  # one charset for the whole value, as a mail program reads it
        return value.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeDecodeError:
        return _UNDECODED.sub(_cp1252_run, value)


def clean_text(value: str) -> str:
    """Return ``value`` as storable text: undecoded bytes read by ``decode_8bit``, and
    NUL characters removed."""
    return decode_8bit(value).replace("\x00", "")


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
        for key, value in msg.raw_items():
            if key.lower() == name.lower():
                if isinstance(value, str) and _UNDECODED.search(value):
                    # 8-bit bytes without a declared charset: the header classes would
                    # make each one U+FFFD; read them as a mail program does first.
                    return policy.default.header_factory(
                        name, "".join(decode_8bit(value).splitlines())
                    )
                break
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
    """Return what can be read from ``raw``; never raises (see the module docstring).

    The common shapes (see ``fast_parse``) are read directly; every other message goes
    through the ``email`` package (``full_parse``), and both give the same fields."""
    try:
        fast = fast_parse(raw)
    except Exception:  # the fast reader's own bug must not lose a message: read it fully
        fast = None
    if fast is not None:
        return fast
    return full_parse(raw, without_attachments(raw) if len(raw) > SKELETON_OVER else raw)


SKELETON_OVER = 1024 * 1024
"""Bytes above which a message's attachments are left out before the ``email`` package
reads it (``without_attachments``)."""
# One character class repeated (not a repeated group, whose backtracking state would
# cost memory per line): base64 text and its line ends, at least 4 KiB, from a line start.
_BASE64_RUN = re.compile(rb"(?<=\n)[A-Za-z0-9+/=][A-Za-z0-9+/=\r\n]{4096,}")
_LAST_TYPE = re.compile(rb"(?is).*content-type:[ \t]*([a-z]+)/")


def without_attachments(raw: bytes) -> bytes:
    """Return ``raw`` with the base64 body of every part that is not text (attachments,
    images: runs of at least 4 KiB of base64) cut to one line: what the fields of an
    inbox row are read from (they never hold an attachment). ``raw`` itself is stored
    whole. The ``email`` package keeps several copies of what it reads (a text copy,
    its lines, the joined payload): about eight times a big message's size, without
    this."""
    pieces: list[bytes] = []
    position = 0
    for run in _BASE64_RUN.finditer(raw):
        before = _LAST_TYPE.match(raw, max(position, run.start() - 4096), run.start())
        if before is not None and before.group(1).lower() == b"text":
            continue
        line_end = b"\r\n" if raw.endswith(b"\r\n", 0, run.end()) else b"\n"
        pieces += [raw[position : run.start()], b"AAAA" + line_end]
        position = run.end()
    if not pieces:
        return raw
    pieces.append(raw[position:])
    return b"".join(pieces)


def full_parse(raw: bytes, skeleton: bytes | None = None) -> ParsedMessage:
    """Read ``raw`` with the ``email`` package (``policy.default``); never raises. With
    ``skeleton`` (``without_attachments(raw)``) the fields are read from it instead."""
    problems: list[str] = []
    source = _tidy_header_names(raw if skeleton is None else skeleton)
    if _too_nested(source):
        # The email package parses parts recursively: thousands of nested multiparts
        # exhaust Python's recursion limit after seconds of work. Read it shallowly.
        return shallow_parse(raw, f"more than {MAX_NESTING} nested multiparts")
    try:
        msg = email.message_from_bytes(source, policy=policy.default)
    except RecursionError:
        return shallow_parse(raw, "too deeply nested")
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
        body_text=_body(msg, "plain", problems) or _unsplit_multipart(msg),
        body_html=_body(msg, "html", problems),
        date=_date(msg, problems),
        problem="; ".join(problems)[:PROBLEM_MAX],
    )


MAX_NESTING = 100
"""More ``multipart/`` than this and the message is read by ``shallow_parse``."""
_MULTIPART = re.compile(rb"multipart/", re.I)


def _too_nested(raw: bytes) -> bool:
    """Whether ``raw`` names more than ``MAX_NESTING`` multiparts (without copying it)."""
    for count, _found in enumerate(_MULTIPART.finditer(raw), start=1):
        if count > MAX_NESTING:
            return True
    return False


_OBSOLETE_NAME = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]+:", re.M)


def _tidy_header_names(raw: bytes) -> bytes:
    """``raw`` with white space between a header's name and its colon removed in the
    message's own header block (``Subject : Hello``, RFC 822's obsolete syntax, which
    mail programs still read but the email package takes for the start of the body)."""
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    head = raw if end < 0 else raw[:end]
    if not _OBSOLETE_NAME.search(head):
        return raw
    return _OBSOLETE_NAME.sub(rb"\1:", head) + raw[len(head) :]


def _unsplit_multipart(msg: EmailMessage) -> str:
    """The text of a multipart whose boundary never appears (the email package keeps its
    whole body as one unsplit string): a mail program shows that text."""
    if msg.get_content_maintype() != "multipart" or not isinstance(msg._payload, str):  # type: ignore[attr-defined]
        return ""
    payload = msg._payload.encode("ascii", "surrogateescape")  # type: ignore[attr-defined]
    return clean_text(payload.decode("ascii", "surrogateescape")).replace("\r\n", "\n")


_PART_TEXT = re.compile(
    rb"^content-type:[ \t]*text/plain[^\n]*(?:\n[ \t][^\n]*)*\n(?P<rest>(?:[^\n]+\n)*?)\r?\n",
    re.I | re.M,
)


def shallow_parse(raw: bytes, why: str) -> ParsedMessage:
    """Read a message the email package cannot (nested too deeply): the top-level headers
    with ``BytesHeaderParser``, and as its text the first ``text/plain`` part found in the
    bytes, up to its next boundary line. Never raises."""
    problems = [f"read shallowly: {why}"]
    try:
        msg = email.parser.BytesParser(policy=policy.default).parsebytes(
            _tidy_header_names(raw), headersonly=True
        )
    except Exception as exc:
        msg = EmailMessage()
        problems.append(f"could not read the headers ({_describe(exc)})")
    assert isinstance(msg, EmailMessage)
    senders = _addresses(msg, "From", problems)
    subject_header = _header(msg, "Subject", problems)
    text = ""
    data = raw.replace(b"\r\n", b"\n")
    start = data.find(b"\n\n")
    found = _PART_TEXT.search(data, start + 1) if start >= 0 else None
    if found is not None:
        body = data[found.end() :]
        stop = re.search(rb"^--", body, re.M)
        body = body[: stop.start()] if stop else body
        part_headers = found.group(0).lower()
        if b"quoted-printable" in part_headers:
            body = binascii.a2b_qp(body)
        elif b"base64" in part_headers:
            with contextlib.suppress(binascii.Error, ValueError):
                body = base64.b64decode(b"".join(body.split()))
        charset = re.search(rb'charset="?([A-Za-z0-9_.:-]+)', part_headers)
        try:
            text = body.decode(charset.group(1).decode() if charset else "utf-8")
        except (LookupError, UnicodeDecodeError):
            text = clean_text(body.decode("ascii", "surrogateescape"))
    return ParsedMessage(
        message_id=_message_id(msg, raw, problems),
        from_addr=(senders[0] if senders else "")[:FROM_ADDR_MAX],
        to_addrs=", ".join(_addresses(msg, "To", problems)),
        cc_addrs=", ".join(_addresses(msg, "Cc", problems)),
        subject=one_line(str(subject_header)) if subject_header is not None else "",
        body_text=clean_text(text),
        body_html="",
        date=_date(msg, problems),
        problem="; ".join(problems)[:PROBLEM_MAX],
    )


# --- the fast reader -------------------------------------------------------------------
#
# Most mail a practice receives is one of three shapes: a text/plain message, a
# text/html one, or multipart/alternative with a text and an HTML part. The ``email``
# package's policy.default re-parses headers on every access (the Content-Type about
# fifteen times per message) and costs about a millisecond per message; the reader
# below handles just those shapes with plain byte operations and gives up (None) on
# anything it does not fully understand, which ``full_parse`` then reads. Where it
# answers, it answers exactly what ``full_parse`` would (tests/test_mail_parse.py checks
# that with hypothesis, on well-formed messages and on arbitrary bytes).

_TOKEN = r"[^\s()<>@,;:\\\"/\[\]?=]+"
_CONTENT_TYPE = re.compile(
    rf"({_TOKEN})/({_TOKEN})((?:\s*;\s*{_TOKEN}\s*=\s*(?:{_TOKEN}|\"[^\"\\]*\"))*)\s*;?\s*"
)
_PARAM = re.compile(rf"\s*;\s*({_TOKEN})\s*=\s*({_TOKEN}|\"[^\"\\]*\")")
_FIELD = rb"[\x21-\x39\x3b-\x7e]+:[^\n]*(?:\n[ \t][^\n]*)*"
_HEADER_BLOCK = re.compile(_FIELD + rb"(?:\n" + _FIELD + rb")*")
_HEADER_FIELD = re.compile(rb"^([\x21-\x39\x3b-\x7e]+):[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)", re.M)
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOMAIN = rf"{_ATOM}(?:\.{_ATOM})*"
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@{_DOMAIN}"
_MAILBOX = re.compile(
    rf"\s*(?:(?P<bare>{_ADDR_SPEC})|(?:[^<>()\[\]\\\",;:@]*|\s*\"[^\"\\]*\"\s*)<(?P<angle>{_ADDR_SPEC})>)\s*"
)
_ENTRY = re.compile(r"(?:[^,\"]|\"[^\"\\]*\")+")
_MESSAGE_ID = re.compile(rf"<{_ADDR_SPEC}>")
_UNIQUE = (b"from", b"to", b"cc", b"subject", b"message-id", b"date", b"content-type")
_USED = frozenset((*_UNIQUE, b"content-transfer-encoding", b"content-disposition"))
_PLAIN_CTE = ("", "7bit", "8bit", "binary")
_TEXT_CTE = (*_PLAIN_CTE, "quoted-printable", "base64")


class _GiveUp(Exception):
    """Raised inside the fast reader when ``full_parse`` must read the message."""


def _fast_headers(block: bytes) -> dict[bytes, str]:
    """Unfold a header block (LF line ends) the way policy.default does; lower-case names.
    Gives up on a non-header line, a repeated header that matters, or non-ASCII."""
    if not block.isascii() or _HEADER_BLOCK.fullmatch(block) is None:
        raise _GiveUp
    headers: dict[bytes, str] = {}
    for name, value in _HEADER_FIELD.findall(block):
        key = name.lower()
        if key in headers:
            if key in _UNIQUE:
                raise _GiveUp
            continue  # the email package reads the first of repeated fields
        headers[key] = value.replace(b"\n", b"").decode("ascii") if key in _USED else ""
    return headers


def _split(data: bytes, *, part: bool = False) -> tuple[dict[bytes, str], bytes]:
    """Split a message (or, with ``part``, a MIME part without its last line end) into
    its unfolded headers and its body, as the ``email`` package's feed parser does."""
    if part and data.startswith(b"\n"):
        return {}, data[1:]
    head, blank, body = data.partition(b"\n\n")
    if not blank:
        if not part:
            raise _GiveUp  # a message without a body: leave it to the full reader
        head, body = data, b""
    if not head:
        raise _GiveUp
    return _fast_headers(head), body


def _content_type(headers: dict[bytes, str]) -> tuple[str, dict[str, str]]:
    value = headers.get(b"content-type")
    if value is None:
        return "text/plain", {}
    found = _CONTENT_TYPE.fullmatch(value)
    if found is None:
        raise _GiveUp
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(found.group(3)):
        key = key.lower()
        if "*" in key or key in params:
            raise _GiveUp
        params[key] = raw[1:-1] if raw.startswith('"') else raw
    return f"{found.group(1)}/{found.group(2)}".lower(), params


def _cte(headers: dict[bytes, str], allowed: tuple[str, ...]) -> str:
    value = headers.get(b"content-transfer-encoding", "").lower()
    if value not in allowed:
        raise _GiveUp
    return value


def _fast_text(headers: dict[bytes, str], params: dict[str, str], body: bytes) -> str:
    cte = _cte(headers, _TEXT_CTE)
    if b"content-disposition" in headers:
        raise _GiveUp
    if cte == "base64":
        joined = b"".join(body.split())
        if len(joined) % 4:
            raise _GiveUp
        try:
            payload = base64.b64decode(joined, validate=True)
        except binascii.Error:
            raise _GiveUp from None
    elif cte == "quoted-printable":
        payload = binascii.a2b_qp(body)
    else:
        payload = body
    try:
        text = payload.decode(params.get("charset", "ASCII"), "replace")
    except LookupError:
        raise _GiveUp from None
    if cte != "base64" and "\r" in text:
        raise _GiveUp  # a CR of the message's own: line ends were normalised above
    # Decoded with "replace": no lone surrogates, so clean_text only drops NULs here.
    return text.replace("\x00", "").replace("\r\n", "\n")


def _fast_addresses(headers: dict[bytes, str], name: bytes) -> str:
    value = headers.get(name)
    if value is None:
        return ""
    value = "".join(value.splitlines())
    entries = _ENTRY.findall(value)
    if ",".join(entries) != value and not (not entries and not value.strip()):
        raise _GiveUp
    found: list[str] = []
    for entry in entries:
        match = _MAILBOX.fullmatch(entry)
        if match is None:
            raise _GiveUp
        found.append(match.group("bare") or match.group("angle"))
    if not found:
        raise _GiveUp
    return ", ".join(found)


def _fast_subject(headers: dict[bytes, str]) -> str:
    value = headers.get(b"subject")
    if value is None:
        return ""
    if "=?" in value:
        return one_line(str(policy.default.header_factory("subject", value)))
    return one_line(value)


def _fast_message_id(headers: dict[bytes, str], raw: bytes) -> str:
    value = headers.get(b"message-id")
    if value is None:
        return derived_message_id(raw)
    token = value.strip()
    if len(token) > MESSAGE_ID_MAX or not _MESSAGE_ID.fullmatch(token):
        raise _GiveUp
    return token


def _fast_date(headers: dict[bytes, str]) -> datetime | None:
    value = headers.get(b"date")
    if value is None or not value.strip():
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _fast_bodies(headers: dict[bytes, str], body: bytes) -> tuple[str, str]:
    kind, params = _content_type(headers)
    if kind == "text/plain":
        return _fast_text(headers, params, body), ""
    if kind == "text/html":
        return "", _fast_text(headers, params, body)
    if kind != "multipart/alternative" or not params.get("boundary"):
        raise _GiveUp
    _cte(headers, _PLAIN_CTE)
    delimiter = b"--" + params["boundary"].encode("ascii")
    marks = _delimiter_lines(body, delimiter)  # (start, end) of each line starting with it
    if len(marks) < 2 or any(body[a:b] != delimiter for a, b in marks[:-1]):
        raise _GiveUp
    if body[marks[-1][0] : marks[-1][1]] != delimiter + b"--":
        raise _GiveUp
    text = html = None
    for (_a, start), (end, _b) in itertools.pairwise(marks):
        part_headers, part_body = _split(body[start + 1 : max(start + 1, end - 1)], part=True)
        part_kind, part_params = _content_type(part_headers)
        if part_kind == "text/plain" and text is None:
            text = _fast_text(part_headers, part_params, part_body)
        elif part_kind == "text/html" and html is None:
            html = _fast_text(part_headers, part_params, part_body)
        elif part_kind not in ("text/plain", "text/html"):
            raise _GiveUp
    return text or "", html or ""


def _delimiter_lines(body: bytes, delimiter: bytes) -> list[tuple[int, int]]:
    """Return (start, end) of every line of ``body`` that starts with ``delimiter``."""
    marks: list[tuple[int, int]] = []
    if body.startswith(delimiter):
        position = 0
    else:
        found = body.find(b"\n" + delimiter)
        if found < 0:
            return marks
        position = found + 1
    while True:
        end = body.find(b"\n", position)
        end = len(body) if end < 0 else end
        marks.append((position, end))
        found = body.find(b"\n" + delimiter, end)
        if found < 0:
            return marks
        position = found + 1


_TOP_TYPE = re.compile(rb"^content-type:[ \t]*([a-z]+/[a-z]+)", re.I | re.M)


def _simple_top(raw: bytes) -> bool:
    """Whether the message's own Content-Type (looked up in its header block only) is
    one of the shapes ``fast_parse`` reads."""
    end = raw.find(b"\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    found = _TOP_TYPE.search(raw, 0, len(raw) if end < 0 else end)
    kind = b"text/plain" if found is None else found.group(1).lower()
    return kind in (b"text/plain", b"text/html", b"multipart/alternative")


def fast_parse(raw: bytes) -> ParsedMessage | None:
    """Read ``raw`` when it has one of the common shapes; None when it has not (then
    ``full_parse`` must). Gives exactly ``full_parse``'s answer where it gives one."""
    if len(raw) > SKELETON_OVER and not _simple_top(raw):
        return None  # not a shape read here: give up before copying a big message
    data = raw.replace(b"\r\n", b"\n")
    if b"\r" in data or data.startswith(b"From "):
        return None
    try:
        headers, body = _split(data)
        text, html = _fast_bodies(headers, body)
        return ParsedMessage(
            message_id=_fast_message_id(headers, raw),
            from_addr=_fast_addresses(headers, b"from").split(", ")[0][:FROM_ADDR_MAX],
            to_addrs=_fast_addresses(headers, b"to"),
            cc_addrs=_fast_addresses(headers, b"cc"),
            subject=_fast_subject(headers),
            body_text=text,
            body_html=html,
            date=_fast_date(headers),
        )
    except _GiveUp:
        return None
