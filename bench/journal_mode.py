"""What a practice file's rollback journal costs the check-in, beside WAL mode (issue 15).

The service leaves a SQLite practice file in the journal mode its owner set
(``docs/databases.md``, "SQLite files keep their journal mode"). A file ``db init`` made
is in WAL mode, where the plain check-in commits without an ``fsync``
(``synchronous=NORMAL``); a file in rollback mode (``DELETE``) keeps every commit's
``fsync``s and its journal file. This times the service's own check-in write
(``CheckInWriter.write``, fenced, through ``actors.engines.default_engine``) on one file
of each kind, in interleaved rounds, on the same disk (a temporary folder), and prints
the mean per check-in for each beside the other (WAL is the baseline).

Run it as ``.venv/bin/python bench/journal_mode.py [--writes N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

# The repository first: this folder's events.py would hide the events package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors import practice_db
from actors.checkin_writer import CheckInWriter
from actors.engines import default_engine
from actors.practice_schema import init_practice_database
from events.clock import FakeClock
from events.projections.health import DbHealth, HealthStatus

RUNNING = DbHealth(HealthStatus.RUNNING)


def seconds_per_check_in(folder: Path, mode: str, writes: int) -> float:
    """Make a practice file in ``mode`` (``wal``: as ``db init`` makes one; ``delete``:
    as the practice software might), serve it, and time ``writes`` check-ins."""
    path = folder / f"{mode}-{time.monotonic_ns()}.sqlite3"
    if mode == "delete":
        owner = sqlite3.connect(path)
        owner.execute("PRAGMA journal_mode=DELETE")
        owner.close()
    url = f"sqlite:///{path}"
    init_practice_database(url, practice_name="Smile Dental")
    engine = default_engine(url)
    try:
        practice_db.claim_incarnation(engine, 1, "SRV1", datetime.now(UTC))
        writer = CheckInWriter(
            lambda: engine,
            server_name="SRV1",
            service_version="bench",
            interval_seconds=15.0,
            clock=FakeClock(datetime.now(UTC)),
        )
        assert writer.write(RUNNING, incarnation=1)  # the first one asks about outages
        started = time.perf_counter()
        for _ in range(writes):
            if not writer.write(RUNNING, incarnation=1):
                raise RuntimeError(f"a check-in failed: {writer.last_error}")
        took = (time.perf_counter() - started) / writes
    finally:
        engine.dispose()
    with sqlite3.connect(path) as check:
        kept = str(check.execute("PRAGMA journal_mode").fetchone()[0])
    if kept != mode:
        raise RuntimeError(f"the {mode} file ended in {kept} mode")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200, help="check-ins per file (200)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"wal": [], "delete": []}
    with tempfile.TemporaryDirectory() as folder:
        for round_number in range(args.rounds):
            order = ("wal", "delete") if round_number % 2 == 0 else ("delete", "wal")
            for mode in order:
                figures[mode].append(seconds_per_check_in(Path(folder), mode, args.writes))
    wal = statistics.mean(figures["wal"])
    delete = statistics.mean(figures["delete"])
    print(f"check-in, WAL file (baseline):      {wal * 1e3:8.3f} ms")
    print(f"check-in, rollback (DELETE) file:   {delete * 1e3:8.3f} ms  ({delete / wal:.0f}x)")
    print(f"({args.rounds} rounds of {args.writes} check-ins each, interleaved)")


if __name__ == "__main__":
    main()
