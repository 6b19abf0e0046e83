"""Storing a large ``raw`` without whole copies of it in the service's memory (issue 13,
item 8: an import peaks at no more than twice the message's size above idle).

Bound as a parameter of the INSERT, a message's bytes are copied whole beside the fetched
bytes before they reach the database: on SQLite the driver binds a copy
(``SQLITE_TRANSIENT``) and SQLite builds the row's record, another (a 25 MB message: 3
times its size above idle); psycopg hands the parameter to libpq, which copies it whole
into its output buffer (2.07 times). So a ``raw`` of at least ``STREAM_FROM`` bytes is
inserted as NULL and written afterwards, in the same transaction (nobody sees the NULL:
the row becomes visible with its ``raw`` at the commit), in ``CHUNK`` pieces:

- SQLite, where ``raw`` is the table's last column (tables made by ``db init`` since
  this version): ``raw`` is made a ``zeroblob`` of its size, then written through SQLite's
  incremental blob I/O (``sqlite3.Connection.blobopen``, Python 3.11+). SQLite builds the
  record without the zeroblob's bytes (``OP_MakeRecord`` leaves a zeroblob unexpanded only
  when no later column holds data bytes: NULL and the integers 0 and 1 hold none): no
  whole copy besides the fetched bytes.
- SQLite, a table made before (``raw`` after ``body_html``; ``created_at``, the IMAP UID
  and the digest after it hold data): bound whole, as before. Any statement that puts the
  bytes in that row builds its record whole from a whole value: the bound copy, a
  zeroblob ``OP_MakeRecord`` expands, or the column read back for an ``UPDATE`` of another
  column. So SQLite holds two whole copies at its peak however ``raw`` gets there (its
  ``UPDATE ... SET raw = zeroblob(size)`` alone: 1.99 times the size above idle), and with
  the fetched bytes a third: 3.03 times (``bench/mail.py --only big``). Writing it in
  pieces there would only add a row rewrite; only ``raw`` last (a rebuilt table) or the
  fetched bytes gone before SQLite's part (not done) bring it to twice the size.
- PostgreSQL: the pieces go into a large object (``lo_create``/``lo_put``), the server
  copies it into ``raw`` (``lo_get``) and drops it (``lo_unlink``): the client holds one
  piece at a time besides the fetched bytes. The large object lives in the transaction:
  a rollback leaves none.

MariaDB and SQL Server bind ``raw`` as it is (MariaDB parks what ``max_allowed_packet``
refuses, ``actors/mail/row_limits.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    LargeBinary,
    Select,
    TextClause,
    Update,
    bindparam,
    cast,
    column,
    func,
    select,
    table,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import OID

from actors.practice_schema import email_messages
from actors.statements import constant, statement

STREAM_FROM = 1 << 20
"""A ``raw`` at least this long (bytes) is written in pieces (SQLite, PostgreSQL)."""

CHUNK = 1 << 20
"""Bytes per piece."""

_SQLITE = frozenset({"sqlite"})
_POSTGRESQL = frozenset({"postgresql"})

_TABLE_INFO: TextClause = constant(
    "raw_blob.table_info", text("PRAGMA table_info(email_messages)"), backends=_SQLITE
)


@statement("raw_blob.zeroblob", 41, 1024, backends=_SQLITE)
def _zeroblob(row_id: int, size: int) -> Update:
    """The row's ``raw`` made ``size`` zero bytes, to be written in pieces."""
    return (
        update(email_messages).where(email_messages.c.id == row_id).values(raw=func.zeroblob(size))
    )


_LO_PUT: Select[Any] = constant(
    "raw_blob.lo_put",
    # lo_put returns nothing: the large object's id is what is read.
    select(
        column("o"),
        func.lo_put(column("o"), bindparam("offset"), bindparam("piece", type_=LargeBinary)),
    ).select_from(
        select(func.coalesce(cast(bindparam("oid"), OID), func.lo_create(0)).label("o")).subquery(
            "lo"
        )
    ),
    params={"oid": None, "offset": 0, "piece": b"piece"},
    backends=_POSTGRESQL,
)
"""Write ``piece`` at ``offset`` into the large object ``oid`` (a new one when ``oid`` is
NULL); selects the large object's id."""


@statement("raw_blob.from_large_object", 41, 0, backends=_POSTGRESQL)
def _from_large_object(row_id: int, oid: int) -> Update:
    """The row's ``raw`` set to the large object's bytes (read by the server)."""
    return (
        update(email_messages)
        .where(email_messages.c.id == row_id)
        .values(raw=func.lo_get(cast(oid, OID)))
    )


@statement("raw_blob.unlink", 0, backends=_POSTGRESQL)
def _unlink(oid: int) -> Select[Any]:
    """Drop the large object ``oid`` (nothing when there is none)."""
    meta = table("pg_largeobject_metadata", column("oid"))
    return select(func.lo_unlink(meta.c.oid)).where(meta.c.oid == cast(oid, OID))


def raw_is_last(conn: Connection) -> bool:
    """Whether ``raw`` is the last column of the SQLite table (``PRAGMA table_info``)."""
    columns = conn.execute(_TABLE_INFO).all()
    return bool(columns) and max(columns, key=lambda c: c[0])[1] == "raw"


def _blob_connection(conn: Connection) -> Any | None:
    """The sqlite3 connection under ``conn`` when it can write blobs in pieces, else None."""
    if conn.dialect.name != "sqlite":
        return None
    dbapi = conn.connection.dbapi_connection
    return dbapi if hasattr(dbapi, "blobopen") else None


def streams(conn: Connection) -> bool:
    """Whether a large ``raw`` is written in pieces on ``conn``'s database: PostgreSQL, and
    SQLite where ``raw`` is the table's last column."""
    if conn.dialect.name == "postgresql":
        return True
    return _blob_connection(conn) is not None and raw_is_last(conn)


def held_back(
    conn: Connection, rows: Sequence[Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any]], dict[int, bytes]]:
    """Return ``rows`` to insert, each large ``raw`` replaced by NULL where it is written in
    pieces afterwards (``write_raw``), and those ``raw`` values by row position."""
    big = any(isinstance(r.get("raw"), bytes) and len(r["raw"]) >= STREAM_FROM for r in rows)
    if not big or not streams(conn):
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
    pieces, in the caller's transaction."""
    view = memoryview(raw)
    pieces = (view[start : start + CHUNK] for start in range(0, len(view), CHUNK))
    if conn.dialect.name == "postgresql":
        oid: int | None = None
        for offset, piece in zip(range(0, len(view), CHUNK), pieces, strict=True):
            oid = conn.execute(
                _LO_PUT, {"oid": oid, "offset": offset, "piece": bytes(piece)}
            ).scalar_one()
        assert oid is not None, "held_back holds back only a raw of STREAM_FROM bytes or more"
        conn.execute(_from_large_object(row_id, oid))
        conn.execute(_unlink(oid))
        return
    dbapi = _blob_connection(conn)
    assert dbapi is not None, "held_back holds a raw back only where it can be written so"
    conn.execute(_zeroblob(row_id, len(raw)))
    with dbapi.blobopen(email_messages.name, "raw", row_id) as blob:
        for piece in pieces:
            blob.write(piece)
