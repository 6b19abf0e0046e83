"""What each command costs to start: its imports and its wall time, against Python itself.

Run it as ``.venv/bin/python bench/cli_imports.py [--runs N] [--compare REF] [--json]``.

Issue 11 asks ``events stats`` and ``events replay --db NAME --until T`` for at most 1 s and
``serve`` for READY within 2 s on a 10-million-event log; ``bench/longrun.py`` shows the
log itself adds next to nothing, so what is left is each command's own start: the
interpreter and the modules it imports. This script measures that on a small log, in one
run and interleaved (the machine's load hits every figure alike):

1. the baselines: ``python -c pass`` (the interpreter) and ``python -c "import sqlalchemy"``
   (the floor of any command that reads a database through SQLAlchemy);
2. the read commands, each a new process (``python -m supervisor.cli --config FILE ...``):
   ``events stats``, ``events tail --no-follow``, ``events replay --db NAME --until T``,
   ``status``, ``status --db NAME``, ``diagnostics --db NAME``; timed from spawn to exit;
3. ``serve``: from spawn to its systemd ``READY=1`` (``bench/longrun.py``'s ``start_serve``:
   the script binds the ``NOTIFY_SOCKET``), then SIGTERM.

For each, the median over ``--runs`` runs of: the wall time; the process's CPU time (user +
system, from ``getrusage``; for ``serve`` up to READY=1, from ``/proc/PID/stat``), which a
busy machine changes much less than the wall time; and, from the same command run once
more under ``python -X importtime``, the sum of every imported module's own time (for
``serve``, the modules imported before ``READY=1``) and how many modules that is.
``-X importtime`` slows what it measures, so its sum is for comparing commands, not for
adding to the wall time; the module count does not depend on the machine at all.
Each wall and CPU time is printed as a ratio to both baselines.

``--compare REF`` also runs every command from the code at git revision REF (``git archive``
into the temporary folder; the same interpreter and packages), interleaved with this
code's runs: the before and after of a change in one run.

The log: 2 SQLite practice databases (``init_practice_database``) and about 20,000 events of
the real types written by ``bench/longrun.py``'s year generator through the real store.
"""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH_DIR = Path(__file__).resolve().parent
_ROOT = _BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime  # noqa: E402
from typing import Any  # noqa: E402

from bench import longrun  # noqa: E402
from bench._report import machine_info, print_machine  # noqa: E402

DATABASES = 2
EVENTS = 20_000
READY_TIMEOUT = 120.0
BARE = "python -c pass"
SQLA = 'python -c "import sqlalchemy"'


@dataclass
class Figures:
    """One command's runs."""

    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    imports: list[float] = field(default_factory=list)
    exit_codes: list[int | None] = field(default_factory=list)
    modules: int | None = None


def import_total(stderr: str) -> tuple[float, int]:
    """Sum the ``self`` column of ``-X importtime`` lines; return (seconds, modules). Pure."""
    total_us = 0
    modules = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        total_us += int(line.split("|")[0].split(":")[1])
        modules += 1
    return total_us / 1e6, modules


def run_once(argv: list[str], cwd: Path) -> tuple[float, float, int | None, str]:
    """Run ``argv`` to its end; return its wall time, its CPU time (user + system: what the
    machine's load changes least), exit code and standard error."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, done.returncode, done.stderr


def serve_imports(config: Path, root: Path, cwd: Path) -> tuple[float, int]:
    """Start ``serve`` under ``-X importtime``; sum the imports written before READY=1."""
    sock_path = root / "notify-imports.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.05)
    err_path = root / "serve-imports.log"
    env = dict(os.environ, NOTIFY_SOCKET=str(sock_path))
    env.pop("WATCHDOG_USEC", None)
    argv = [sys.executable, "-X", "importtime", *longrun.cli(config, "serve")[1:]]
    with err_path.open("wb") as err:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
        began = time.perf_counter()
        ready_at = None
        try:
            while time.perf_counter() - began < READY_TIMEOUT and process.poll() is None:
                try:
                    data = sock.recv(4096).decode("utf-8", "replace")
                except TimeoutError:
                    continue
                if "READY=1" in data.split("\n"):
                    ready_at = err_path.stat().st_size
                    break
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
            sock.close()
            sock_path.unlink(missing_ok=True)
    text = err_path.read_bytes()[:ready_at].decode(errors="replace")
    return import_total(text)


def make_log(root: Path) -> tuple[Path, str, str]:
    """The practices, the log and its config; return the config, a database and a time."""
    longrun.make_practices(root / "practices", DATABASES)
    log = root / "log.sqlite3"
    built = longrun.build_log(f"sqlite:///{log}", DATABASES, EVENTS, 300.0)
    config = longrun.write_config(root, log, root / "practices")
    first = datetime.fromisoformat(built["first"])
    last = datetime.fromisoformat(built["last"])
    return config, longrun.db_name(1), (first + (last - first) / 2).isoformat()


def commands(config: Path, db: str, until: str) -> dict[str, list[str]]:
    """Each measured command's name and arguments (after the interpreter)."""
    cli = [*longrun.cli(config)[1:]]
    return {
        BARE: ["-c", "pass"],
        SQLA: ["-c", "import sqlalchemy"],
        "events stats": [*cli, "events", "stats"],
        "events tail --no-follow": [*cli, "events", "tail", "--no-follow"],
        "events replay --db --until": [*cli, "events", "replay", "--db", db, "--until", until],
        "status": [*cli, "status"],
        "status --db": [*cli, "status", "--db", db],
        "diagnostics --db": [*cli, "diagnostics", "--db", db],
    }


def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    config, db, until = make_log(root)
    trees: dict[str, Path] = {"this code": _ROOT}
    if args.compare:
        before = root / "compare"
        before.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(_ROOT), "archive", args.compare], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
        trees[f"at {args.compare}"] = before
    argvs = commands(config, db, until)
    figures: dict[str, dict[str, Figures]] = {
        tree: {name: Figures() for name in [*argvs, "serve -> READY"]} for tree in trees
    }
    for cwd in trees.values():  # once each, not counted: the page cache, .pyc files
        for argv in argvs.values():
            run_once([sys.executable, *argv], cwd)
    for i in range(args.runs):
        for tree, cwd in trees.items():
            for name, argv in argvs.items():
                if name in (BARE, SQLA) and tree != "this code":
                    continue
                f = figures[tree][name]
                wall, cpu, code, _err = run_once([sys.executable, *argv], cwd)
                f.walls.append(wall)
                f.cpus.append(cpu)
                f.exit_codes.append(code)
                _w, _c, _code, err = run_once([sys.executable, "-X", "importtime", *argv], cwd)
                seconds, f.modules = import_total(err)
                f.imports.append(seconds)
            f = figures[tree]["serve -> READY"]
            started = longrun.start_serve(config, root, READY_TIMEOUT, f"i{i}", code=cwd)
            if started.ready_seconds is None or started.cpu_seconds is None:
                raise SystemExit(f"serve from {cwd}: {started.outcome}: {started.last_stderr}")
            f.walls.append(started.ready_seconds)
            f.cpus.append(started.cpu_seconds)
            f.exit_codes.append(0)
            seconds, f.modules = serve_imports(config, root, cwd)
            f.imports.append(seconds)
    return {
        "machine": machine_info(root),
        "runs": args.runs,
        "load": os.getloadavg(),
        "figures": {
            tree: {name: vars(f) for name, f in by_name.items() if f.walls}
            for tree, by_name in figures.items()
        },
    }


def print_report(report: dict[str, Any]) -> None:
    loads = "/".join(f"{x:.1f}" for x in report["load"])
    print_machine(report["machine"], f"; runs: {report['runs']} of each, interleaved; load {loads}")
    ours = report["figures"]["this code"]
    bare = statistics.median(ours[BARE]["walls"])
    sqla = statistics.median(ours[SQLA]["walls"])
    bare_cpu = statistics.median(ours[BARE]["cpus"])
    sqla_cpu = statistics.median(ours[SQLA]["cpus"])
    head = (
        f"{'command':<28} {'code':<10} {'wall':>8} {'/ pass':>7} {'/ sqla':>6}"
        f" {'CPU':>8} {'/ pass':>7} {'/ sqla':>6} {'imports':>8} {'modules':>7}  exit"
    )
    print(head)
    print("-" * len(head))
    for name in ours:
        for tree, by_name in report["figures"].items():
            f = by_name.get(name)
            if f is None:
                continue
            wall = statistics.median(f["walls"])
            cpu = statistics.median(f["cpus"])
            imports = statistics.median(f["imports"])
            codes = ",".join(sorted({str(c) for c in f["exit_codes"]}))
            print(
                f"{name:<28} {tree:<10} {wall:>6.3f} s {wall / bare:>6.2f}x {wall / sqla:>5.2f}x"
                f" {cpu:>6.3f} s {cpu / bare_cpu:>6.2f}x {cpu / sqla_cpu:>5.2f}x"
                f" {imports:>6.3f} s {f['modules'] or '-':>7}  {codes}"
            )
    print(
        "\nwall: spawn to exit (serve: to READY=1); CPU: the process's user + system time (serve:"
        " up to READY=1); imports: the sum of -X importtime's own times, each run once more"
        " under it (serve: before READY=1), and how many modules; each the median of the runs;"
        " sqla: python -c 'import sqlalchemy'."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (5)")
    parser.add_argument(
        "--compare", metavar="REF", help="also run the commands from the code at git REF"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cli-imports-") as tmp:
        report = measure(args, Path(tmp))
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
