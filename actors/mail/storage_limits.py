"""What one practice database can store in an ``email_messages`` row, and fitting a row to it.

Mail comes from anyone, so a received message can be larger than the practice database
accepts: MariaDB with its defaults holds at most 65,535 bytes in a ``TEXT`` column
(``subject``, ``to_addrs``, ``cc_addrs``, ``last_error``; strict mode refuses more with
error 1406) and takes at most ``max_allowed_packet`` (16 MiB) in one statement (a longer
one drops the connection: "server has gone away"). Such a message must neither crash the
mailbox nor be lost, so the importer reads the database's own limits once
(``read_limits``: the column sizes from ``information_schema.columns``, MariaDB's
``@@max_allowed_packet``, SQLite's ``SQLITE_LIMIT_LENGTH``) and fits each row to them
(``fit_row``, pure):

- a text value longer than its column is cut to fit, with a note; the full text is still
  in ``raw``;
- a row whose statement would exceed the largest statement the server takes is stored
  without ``raw`` and with its bodies cut to fit, with a note: it is **parked**, and the
  message is left on the IMAP server (never deleted or moved), where the full message
  still is.

``docs/databases.md`` lists each server's limits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, TextClause, text

from actors.statements import SERVER, constant

STATEMENT_MARGIN = 64 * 1024
"""Bytes of a statement kept for its SQL text, the other columns and the protocol."""
_ESCAPED = b"\x00\\\n\r\x1a'\""  # what MySQL's text protocol sends as two bytes
_PARK_ORDER = ("raw", "body_html", "body_text")  # given up first to last when too large


@dataclass(frozen=True, slots=True)
class ColumnLimit:
    """A column's size: at most ``chars`` characters and ``octets`` bytes (None: no limit
    of that kind)."""

    chars: int | None = None
    octets: int | None = None


@dataclass(frozen=True, slots=True)
class StorageLimits:
    """One database's limits for ``email_messages``: per column, and the largest statement
    (``statement_bytes``, None when the server has no such limit)."""

    columns: Mapping[str, ColumnLimit] = field(default_factory=dict)
    statement_bytes: int | None = None
    statement_limit_name: str = ""  # how the server names it, for the note


@dataclass(frozen=True, slots=True)
class FittedRow:
    """A row made storable: ``notes`` says what was cut; ``parked`` when the message was
    too large to store whole (its ``raw`` is not stored: keep it on the server)."""

    row: dict[str, Any]
    notes: tuple[str, ...]
    parked: bool


def _size(value: Any) -> int:
    """Bytes ``value`` takes in a statement (MySQL's text protocol escapes some bytes)."""
    if value is None:
        return 4
    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return len(data) + sum(data.count(c) for c in _ESCAPED) + 10


def cut_text(value: str, limit: ColumnLimit) -> str:
    """Return the longest prefix of ``value`` within ``limit`` (whole characters)."""
    if limit.chars is not None and len(value) > limit.chars:
        value = value[: limit.chars]
    if limit.octets is not None and len(value) > limit.octets // 4:
        data = value.encode("utf-8")
        if len(data) > limit.octets:
            value = data[: limit.octets].decode("utf-8", "ignore")
    return value


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def fit_row(row: Mapping[str, Any], limits: StorageLimits) -> FittedRow:
    """Return ``row`` cut to fit ``limits`` (see the module docstring). Pure."""
    fitted = dict(row)
    notes: list[str] = []
    parked = False
    for name, value in row.items():
        limit = limits.columns.get(name)
        if limit is None or value is None:
            continue
        if isinstance(value, bytes):
            if limit.octets is not None and len(value) > limit.octets:
                fitted[name] = None
                parked = True
                notes.append(
                    f"{name} not stored: {len(value):,} bytes, the column holds {limit.octets:,}"
                )
            continue
        cut = cut_text(str(value), limit)
        if cut != value:
            fitted[name] = cut
            held = f"{limit.octets:,} bytes" if limit.octets is not None else ""
            held = held or f"{limit.chars:,} characters"
            notes.append(
                f"{name} cut from {len(value):,} to {len(cut):,} characters "
                f"(the column holds {held})"
            )
    budget = limits.statement_bytes
    if budget is not None:
        budget -= STATEMENT_MARGIN
        total = sum(_size(v) for v in fitted.values())
        for name in _PARK_ORDER:
            if total <= budget:
                break
            value = fitted.get(name)
            if value is None:
                continue
            others = total - _size(value)
            if isinstance(value, bytes) or others >= budget:
                fitted[name] = None if isinstance(value, bytes) else ""
            else:
                fitted[name] = _cut_to_size(str(value), budget - others)
            parked = True
            total = others + _size(fitted[name])
            what = "not stored" if not fitted[name] else "cut"
            limit_name = limits.statement_limit_name or "its limit"
            notes.append(
                f"{name} {what}: the message is larger than the database takes in one "
                f"statement ({limit_name} {_mib(limits.statement_bytes or 0)})"
            )
    if parked:
        notes.append("parked: the full message is left on the IMAP server (not deleted or moved)")
    return FittedRow(fitted, tuple(notes), parked)


def _cut_to_size(value: str, size: int) -> str:
    """The longest prefix of ``value`` whose statement size is at most ``size``."""
    low, high = 0, len(value)
    while low < high:  # binary search on characters: escaping makes bytes uneven
        middle = (low + high + 1) // 2
        if _size(value[:middle]) <= size:
            low = middle
        else:
            high = middle - 1
    return value[:low]


# --- reading a database's limits -----------------------------------------------------

POSTGRES_FIELD_BYTES = 1024 * 1024 * 1024
"""PostgreSQL stores at most 1 GB in one ``text`` or ``bytea`` value."""


def _columns_query(kind: str, schema: str) -> TextClause:
    return constant(
        f"limits.columns.{kind}",
        text(
            "SELECT column_name, data_type, character_maximum_length, character_octet_length "
            f"FROM information_schema.columns WHERE table_schema = {schema} AND table_name = :t"
        ),
        params={"t": "email_messages"},
        target=SERVER,
        backends=frozenset({kind}),
    )


_COLUMNS = {
    "mysql": _columns_query("mysql", "DATABASE()"),
    "postgresql": _columns_query("postgresql", "current_schema()"),
    "mssql": _columns_query("mssql", "SCHEMA_NAME()"),
}
"""The columns' limits, per kind of database (SQLite has one limit for every value)."""

_MAX_PACKET = constant(
    "limits.max_packet",
    text("SELECT @@max_allowed_packet"),
    target=SERVER,
    backends=frozenset({"mysql"}),
)


def read_limits(conn: Connection, table: str = "email_messages") -> StorageLimits:
    """Ask the database for its limits on ``table`` (read-only queries). Unknown
    dialects get no limits (their errors then surface as they are)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        raw = conn.connection.driver_connection
        size = raw.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)  # type: ignore[union-attr]
        return StorageLimits(
            {n: ColumnLimit(octets=size) for n in _text_columns()},
            statement_bytes=None,
        )
    kind = "mysql" if dialect == "mariadb" else dialect
    query = _COLUMNS.get(kind)
    if query is None:
        return StorageLimits()
    columns: dict[str, ColumnLimit] = {}
    rows = conn.execute(query, {"t": table})
    for name, data_type, chars, octets in rows:
        name = str(name).lower()
        kind = str(data_type).lower()
        chars = None if chars is None or int(chars) < 0 else int(chars)
        octets = None if octets is None or int(octets) < 0 else int(octets)
        if dialect == "postgresql" and kind in ("text", "bytea"):
            chars, octets = None, POSTGRES_FIELD_BYTES
        if "char" in kind or "text" in kind or "blob" in kind or kind in ("bytea", "varbinary"):
            columns[name] = ColumnLimit(chars=chars if "blob" not in kind else None, octets=octets)
    if dialect in ("mysql", "mariadb"):
        packet = conn.execute(_MAX_PACKET).scalar_one()
        return StorageLimits(columns, int(packet), "max_allowed_packet")
    return StorageLimits(columns)


def _text_columns() -> tuple[str, ...]:
    return (
        "to_addrs",
        "cc_addrs",
        "subject",
        "body_text",
        "body_html",
        "raw",
        "last_error",
    )
