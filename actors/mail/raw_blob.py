"""Storing a large ``raw`` on SQLite without whole copies of it in memory (issue 13, item 8).

Bound as a parameter of the INSERT, a message's bytes are copied whole twice more before
they reach a page: the driver binds a copy (``SQLITE_TRANSIENT``) and SQLite builds the
row's record, another. For a 25 MB message that took the import's peak to 3 times the
message's size above idle. SQLite builds a record without a zeroblob's bytes only when no
later column of the row holds data, so where ``raw`` is the table's last column (tables
made by ``db init`` since this version, ``actors.practice_schema``) a ``raw`` of at least
``STREAM_FROM`` bytes is inserted as NULL, then, in the same transaction, made a
``zeroblob`` of its size and written in ``CHUNK`` pieces through SQLite's incremental blob
I/O (``sqlite3.Connection.blobopen``, Python 3.11+): no whole copy besides the fetched
bytes. Nobody sees the NULL: the row becomes visible with its ``raw`` at the commit. A
table made before (``raw`` in the middle: the zeroblob would be expanded, a copy as
before) and other databases bind it as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, TextClause, Update, func, text, update

from actors.practice_schema import email_messages
from actors.statements import constant, statement

STREAM_FROM = 1 << 20
"""A ``raw`` at least this long (bytes) is written in pieces on SQLite."""

CHUNK = 1 << 20
"""Bytes per incremental write."""


def _blob_connection(conn: Connection) -> Any | None:
    """The sqlite3 connection under ``conn`` when it can write blobs in pieces, else None."""
    if conn.dialect.name != "sqlite":
        return None
    dbapi = conn.connection.dbapi_connection
    return dbapi if hasattr(dbapi, "blobopen") else None


_SQLITE = frozenset({"sqlite"})

_TABLE_INFO: TextClause = constant(
    "raw_blob.table_info", text("PRAGMA table_info(email_messages)"), backends=_SQLITE
)


@statement("raw_blob.zeroblob", 41, 1024, backends=_SQLITE)
def _zeroblob(row_id: int, size: int) -> Update:
    """The row's ``raw`` made ``size`` zero bytes, to be written in pieces."""
    return (
        update(email_messages).where(email_messages.c.id == row_id).values(raw=func.zeroblob(size))
    )


def raw_is_last(conn: Connection) -> bool:
    """Whether ``raw`` is the last column of the SQLite table (``PRAGMA table_info``)."""
    columns = conn.execute(_TABLE_INFO).all()
    return bool(columns) and max(columns, key=lambda c: c[0])[1] == "raw"


def held_back(
    conn: Connection, rows: Sequence[Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any]], dict[int, bytes]]:
    """Return ``rows`` to insert, each large ``raw`` replaced by NULL where it is written in
    pieces afterwards (``write_held_back``), and those ``raw`` values by row position."""
    big = any(isinstance(r.get("raw"), bytes) and len(r["raw"]) >= STREAM_FROM for r in rows)
    if not big or _blob_connection(conn) is None or not raw_is_last(conn):
        return list(rows), {}
    out: list[Mapping[str, Any]] = []
    held: dict[int, bytes] = {}
    for position, row in enumerate(rows):
        raw = row.get("raw")
        if isinstance(raw, bytes) and len(raw) >= STREAM_FROM:
            held[position] = raw
            row = {**row, "raw": None}
        out.append(row)
    return out, held


def write_raw(conn: Connection, row_id: int, raw: bytes) -> None:
    """Write ``raw``, held back by ``held_back``, into the row's ``raw`` column in ``CHUNK``
    pieces (SQLite), in the caller's transaction."""
    dbapi = _blob_connection(conn)
    assert dbapi is not None, "held_back holds a raw back only where it can be written so"
    conn.execute(_zeroblob(row_id, len(raw)))
    view = memoryview(raw)
    with dbapi.blobopen(email_messages.name, "raw", row_id) as blob:
        for start in range(0, len(view), CHUNK):
            blob.write(view[start : start + CHUNK])
