"""Giving a SQLite event log's free pages back to the file system (``events prune --compact``).

Retention deletes old events; SQLite keeps the pages they used in the file and reuses
them for new events, so a log pruned from its first day stays near its size in use. A
log that grew for a long time before retention existed (an upgrade) keeps its old size on
disk until it is rewritten: ``VACUUM`` does that. It needs free disk space up to the
log's size and holds the log exclusively while it runs, so it is run only by the command,
with the service stopped (the caller takes the log's lock).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Compacted:
    """The log file's size (with its WAL) before and after."""

    before_bytes: int
    after_bytes: int


def _size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return sum(p.stat().st_size for p in (path, wal) if p.exists())


def compact_sqlite(path: Path) -> Compacted:
    """``VACUUM`` the SQLite file at ``path`` and fold its WAL in; return the sizes."""
    before = _size(path)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return Compacted(before, _size(path))
