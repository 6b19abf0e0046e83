"""How long a workstation waits for ``email-service status --db X``, against Python itself.

Run it as ``.venv/bin/python bench/cli_latency.py [--runs N] [--json]``.

A fresh SQLite practice database with one healthy check-in (written as the service
writes it: times from the database's clock, due one interval later) is made in a
temporary folder. Then, in the same run and interleaved (so the machine's load hits
all of them alike), N times each:

1. ``python -c pass``: the interpreter's own start, the floor of any command;
2. ``python -c "import sqlalchemy"``: the floor of any command that reads a database;
3. ``python -m supervisor.cli status --db Smile``: the command itself, which must
   answer ``running`` (exit 0), or the run stops with an error;
4. the same command made to take the regular path (discovery and SQLAlchemy, as every
   database server does) instead of the SQLite reader (``supervisor.sqlite_status``):
   the baseline the SQLite reader is judged against.

Figures: the median wall time of each (a new process each time, from ``fork`` to its
exit), and the status command's median as a ratio to each floor. The issue's target
is 0.3 s for ``status`` on a healthy SQLite practice; it is printed as met or not, but
the ratios are what carries across machines (this one is shared and noisy); the load
average is printed beside them. What the command imports is shown by
``python -X importtime -m supervisor.cli status --db X``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _report
from bench._report import Row, print_machine, print_table

TARGET_SECONDS = 0.3
REGULAR = "status --db Smile, regular path"
REGULAR_PATH = (
    "import sys\n"
    "from supervisor import sqlite_status\n"
    "sqlite_status.read_status = lambda *_args: None  # what it does when it cannot say\n"
    "from supervisor.cli import main\n"
    "sys.exit(main(['status', '--db', 'Smile']))\n"
)
"""``status --db Smile`` through discovery and SQLAlchemy (the path before the SQLite
reader, and still the path of every database server)."""


def make_practice(folder: Path) -> dict[str, str]:
    """Create ``Smile.db`` with a healthy check-in; return the environment to use it."""
    from actors.checkins_table import NewCheckIn, write_checkin
    from actors.practice_db import make_engine
    from actors.practice_schema import init_practice_database

    url = f"sqlite:///{folder / 'Smile.db'}"
    init_practice_database(url, practice_name="Smile")
    engine = make_engine(url)
    with engine.begin() as conn:
        write_checkin(conn, NewCheckIn(True, "ok", timedelta(hours=1), "bench", "bench"))
    engine.dispose()
    env = dict(os.environ)
    env["EMAIL_SERVICE_DATABASES_SERVER_URL"] = f"sqlite:///{folder}"
    env["EMAIL_SERVICE_SERVICE_EVENT_STORE"] = f"sqlite:///{folder / 'events.db'}"
    return env


def wall(argv: list[str], env: dict[str, str]) -> float:
    """Run ``argv`` to its end; return its wall time; fail on a non-zero exit."""
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    py = sys.executable
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import sqlalchemy'": [py, "-c", "import sqlalchemy"],
        "status --db Smile": [py, "-m", "supervisor.cli", "status", "--db", "Smile"],
        REGULAR: [py, "-c", REGULAR_PATH],
    }
    with tempfile.TemporaryDirectory(prefix="cli-latency-") as tmp:
        folder = Path(tmp)
        env = make_practice(folder)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():
            wall(argv, env)  # warm the page cache once, not counted
        for _ in range(args.runs):
            for name, argv in commands.items():
                times[name].append(wall(argv, env))
        machine = _report.machine_info(folder, ("sqlalchemy",))
    load = os.getloadavg()
    median = {name: statistics.median(t) for name, t in times.items()}
    status, regular = median["status --db Smile"], median[REGULAR]
    bare, sqla = median["python -c pass"], median["python -c 'import sqlalchemy'"]
    if args.json:
        print(
            json.dumps(
                {"machine": machine, "runs": args.runs, "load": load, "median_seconds": median}
            )
        )
        return
    loads = "/".join(f"{x:.1f}" for x in load)
    print_machine(machine, f"; runs: {args.runs} of each, interleaved; load {loads} (1/5/15 min)")
    print_table(
        [
            Row(
                "status --db (median wall)",
                f"{status:.3f} s",
                f"{bare:.3f} s (python -c pass)",
                f"{status / bare:.2f}x",
                f"<= {TARGET_SECONDS} s",
                _report.met(status <= TARGET_SECONDS),
            ),
            Row(
                "status --db (median wall)",
                f"{status:.3f} s",
                f"{regular:.3f} s (regular path)",
                f"{status / regular:.2f}x",
                "-",
                "-",
            ),
            Row(
                "status --db (median wall)",
                f"{status:.3f} s",
                f"{sqla:.3f} s (import sqlalchemy)",
                f"{status / sqla:.2f}x",
                "-",
                "-",
            ),
        ]
    )


if __name__ == "__main__":
    main()
