"""SQLite's bulk page-cache allocation is switched off for the serving process only."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Each case runs in a fresh interpreter: the setting is process-wide and may only be made
# before any connection is open.
_PROBE = textwrap.dedent(
    """
    import ctypes, sqlite3, sys
    from actors import sqlite_memory

    lib = sqlite_memory._library()
    folder = sys.argv[1]
    early = sqlite3.connect(folder + "/early.db") if sys.argv[2] == "open-first" else None
    outcome = sqlite_memory.disable_page_cache_preallocation() if sys.argv[2] != "default" else "-"
    before = lib.sqlite3_memory_used()
    connection = sqlite3.connect(folder + "/db.sqlite3")
    connection.execute("create table t (x)")
    connection.execute("insert into t values (1)")
    connection.commit()
    assert connection.execute("select x from t").fetchall() == [(1,)]
    print(outcome)
    print(lib.sqlite3_memory_used() - before)
    """
)


def _run(folder: Path, mode: str) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(folder), mode],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    outcome, used = done.stdout.split("\n")[:2]
    return outcome, int(used)


def test_by_default_a_connection_preallocates_its_page_cache(tmp_path: Path) -> None:
    _, used = _run(tmp_path, "default")
    assert used > 80_000  # 20 pages of 4 KiB and their headers, at the first read


def test_switched_off_a_connection_allocates_only_the_pages_it_reads(tmp_path: Path) -> None:
    outcome, used = _run(tmp_path, "switch-off")
    assert outcome == "None"
    assert used < 40_000


def test_it_is_refused_while_a_connection_is_open(tmp_path: Path) -> None:
    outcome, used = _run(tmp_path, "open-first")
    assert outcome == "a SQLite connection is already open"
    assert used > 80_000  # unchanged, and SQLite still works
