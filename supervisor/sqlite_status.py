"""``status --db NAME`` on a folder of SQLite practices, read with Python's own ``sqlite3``.

A workstation runs ``email-service status --db NAME`` to see one practice. Importing
SQLAlchemy costs most of that command's time (``bench/cli_latency.py``, ``python -X
importtime``), so for ``databases.server_url = sqlite:///FOLDER`` this module reads the
same rows the regular path reads (``supervisor.workstation_view.read_status``: the
database's clock, the newest check-ins) with the standard library, and hands them to the
same pure function, ``status_rule.status_of``. It reads nothing else and writes nothing
(the file is opened read-only, as discovery opens it).

It answers only the plain case: exactly one file named ``NAME`` (the way discovery names
SQLite files), with the ``practice`` table, every value as the service stores it.
Anything else (no such file, two of that name, not a practice database, a missing
table or column, a locked or broken file, an unexpected value) returns None, and the
caller takes the regular path, which says what is wrong in its own words.
``tests/test_sqlite_status.py`` checks both paths agree on the same databases.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from supervisor.status_rule import CheckIn, DatabaseStatus, status_of

SQLITE_SUFFIXES = (".sqlite3", ".sqlite", ".db")
"""The files discovery lists in a SQLite folder (``supervisor.discovery.SQLITE_SUFFIXES``)."""

NEWEST_CHECKINS = 10
"""As many check-ins as the regular path reads (``actors.checkins_table.NEWEST_CHECKINS``)."""

LOCK_WAIT_SECONDS = 1.0
"""How long a read here waits on a writer's lock (a commit takes milliseconds). A lock held
longer is left to the regular path, which waits its own ``READ_TIMEOUT_SECONDS`` and says
what it found, so a database locked for good costs one more second, not a second wait."""

_PREFIX = "sqlite:///"
_HEADER = b"SQLite format 3\x00"
_WAL = 2

# The three statements, plain SQLite text run through the sqlite3 module: the registry
# (``actors.statements``) is SQLAlchemy's, which this module exists to avoid importing;
# ``tests/test_statement_contract.py`` allows them by name, and ``tests/test_sqlite_status.py``
# checks they read what the registered statements read.
_PRACTICE_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'practice'"

_NOW = "SELECT strftime('%Y-%m-%d %H:%M:%f000', 'now')"
"""The database's clock, as ``actors.practice_schema.utcnow`` reads it on SQLite."""

_CHECKINS = (
    "SELECT checked_in_at, next_checkin_due_at, ok, summary, server_name, service_instance "
    "FROM email_service_checkins ORDER BY checked_in_at DESC, id DESC LIMIT ?"
)


def sqlite_folder(server_url: str) -> Path | None:
    """Return the folder of a plain ``sqlite:///FOLDER`` server URL; None for any other."""
    if not server_url.startswith(_PREFIX) or "?" in server_url:
        return None
    rest = server_url[len(_PREFIX) :]
    return Path(rest) if rest and rest != ":memory:" else None


def practice_file(folder: Path, name: str) -> Path | None:
    """Return the one file in ``folder`` that discovery names ``name``; None if there is
    none or more than one (the regular path then says which)."""
    try:
        found = [
            p
            for p in folder.iterdir()
            if p.suffix.lower() in SQLITE_SUFFIXES and p.stem == name and p.is_file()
        ]
    except OSError:
        return None
    return found[0] if len(found) == 1 else None


def read_status(folder: Path, name: str, grace: timedelta) -> DatabaseStatus | None:
    """Return the status of the practice ``name`` in ``folder``, or None for the regular
    path to answer (see the module's docstring)."""
    path = practice_file(folder, name)
    if path is None:
        return None
    try:
        with contextlib.closing(_open_readonly(path)) as conn:
            if not _has_practice_table(conn):
                return None
            now = _server_now(conn)
            newest = _newest_checkins(conn)
    except (OSError, sqlite3.Error, TypeError, ValueError):
        return None
    return DatabaseStatus(name, status_of(newest, now, grace))


def _open_readonly(path: Path) -> sqlite3.Connection:
    """Open ``path`` so that it can never change (``supervisor.discovery``'s way): with
    ``mode=ro``; and ``immutable=1`` for a WAL-mode file without a ``-wal`` file, which a
    read-only open would otherwise create beside it."""
    uri = path.resolve().as_uri() + "?mode=ro"
    if not Path(f"{path}-wal").exists():
        with path.open("rb") as f:
            header = f.read(100)
        if not header.startswith(_HEADER):
            raise ValueError("not a SQLite database file")
        if len(header) >= 20 and _WAL in (header[18], header[19]):
            uri += "&immutable=1"
    return sqlite3.connect(uri, uri=True, timeout=LOCK_WAIT_SECONDS)


def _has_practice_table(conn: sqlite3.Connection) -> bool:
    return conn.execute(_PRACTICE_TABLE).fetchone() is not None


def _server_now(conn: sqlite3.Connection) -> datetime:
    value = conn.execute(_NOW).fetchone()[0]
    if not isinstance(value, str):
        raise TypeError("the database's clock gave no text")
    return datetime.fromisoformat(value[:26])


def _newest_checkins(conn: sqlite3.Connection) -> list[CheckIn]:
    rows = conn.execute(_CHECKINS, (NEWEST_CHECKINS,)).fetchall()
    return [
        CheckIn(
            _stored_time(r[0]),
            _stored_time(r[1]),
            bool(r[2]),
            r[3] or "",
            _text(r[4]),
            None if r[5] is None else _text(r[5]),
        )
        for r in rows
    ]


def _stored_time(value: object) -> datetime:
    """A time as SQLAlchemy reads it from SQLite (``datetime.fromisoformat`` of the text)."""
    if not isinstance(value, str):
        raise TypeError("a stored time that is not text")
    return datetime.fromisoformat(value)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("a stored name that is not text")
    return value
