"""``bench/supervision.py --server postgresql|mariadb``: N practice databases on one real
database server, beside the same N on SQLite (issue 17).

In one run: N eligible practice databases are created on this machine's server, owned by
a login of their own (``tests/many_practices.py``: PostgreSQL copies one initialised
database with ``CREATE DATABASE ... TEMPLATE``; MariaDB runs the schema's DDL in each),
and N SQLite files. For each, ``bench/supervision.py``'s scale child starts the real
tree (default settings, the server's ``databases.max_connections``), and reports the time
to all running (every database's first ``SelfTestPassed``) and its own CPU over the idle
window. Meanwhile this process samples every 0.1 s: the login's connections as the server
counts them (``pg_stat_activity`` / ``information_schema.processlist``: only this run's
service, since other programs use the server too), and the CPU of the server's processes
from ``/proc`` (every ``postgres`` process plus what the postmaster collected from
backends that ended; ``mariadbd``'s threads). The server is shared with whatever else runs
on the machine, so its CPU figure includes their load; it is read over the child's idle
window only, beside the same length of time just before the service starts (the others'
load alone). Everything created is dropped at the end.

The table: the server run beside the SQLite run (ratio server / SQLite), and the service's
peak connections beside its budget.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._report import Row, print_machine, print_table
from tests.many_practices import ManyPractices, many_practices

SAMPLE_S = 0.1
RUNNING_TIMEOUT_S = 600.0
"""How long the server run may take to have every database running (the SQLite run keeps
``bench/supervision.py``'s 120 s): a first rescan that opens every database on a shared,
loaded server takes minutes."""
SERVER_PROCESSES = {"postgresql": ("postgres",), "mariadb": ("mariadbd", "mysqld")}
_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[str, int, float, float] | None:
    """``(comm, ppid, own CPU s, reaped children's CPU s)`` of one process, from /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            raw = f.read()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is state (stat field 3): utime is field 14, so fields[11]
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return comm, int(fields[1]), (utime + stime) / _TICKS, (cutime + cstime) / _TICKS


def server_cpu_seconds(backend: str) -> float:
    """CPU seconds used so far by the server's processes (and their ended children)."""
    names = SERVER_PROCESSES[backend]
    stats = {pid: _stat(pid) for pid in os.listdir("/proc") if pid.isdigit()}
    ours = {pid: s for pid, s in stats.items() if s is not None and s[0] in names}
    total = 0.0
    for _comm, ppid, own, children in ours.values():
        total += own
        if str(ppid) not in ours:  # the postmaster: backends that ended are in its children
            total += children
    return total


@dataclass
class Samples:
    """What the sampler saw: (epoch, connections of the login, server CPU seconds)."""

    points: list[tuple[float, int, float]] = field(default_factory=list)

    def peak(self, since: float = 0.0, until: float = float("inf")) -> int:
        return max((n for t, n, _c in self.points if since <= t <= until), default=0)

    def cpu_pct(self, since: float, until: float) -> float | None:
        inside = [(t, c) for t, _n, c in self.points if since <= t <= until]
        if len(inside) < 2:
            return None
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return 100 * (c1 - c0) / (t1 - t0) if t1 > t0 else None


class Sampler:
    """Samples the login's connections and the server's CPU every ``SAMPLE_S``."""

    def __init__(self, made: ManyPractices) -> None:
        self._made = made
        self.samples = Samples()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            count = self._made.connections()
            self.samples.points.append((time.time(), count, server_cpu_seconds(self._made.backend)))
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Both runs; return their figures."""
    from bench import supervision

    n = args.databases
    results: dict[str, Any] = {
        "config": {"databases": n, "server": args.server, "no_move": args.no_move}
    }
    supervision.log(f"server: creating {n:,} practice databases on {args.server} ...")
    start = time.perf_counter()
    with many_practices(args.server, n) as made:
        created = time.perf_counter() - start
        supervision.log(f"  created in {created:.1f} s; starting the tree in a child process ...")
        settings: dict[str, object] = {"databases.server_url": made.server_url}
        if args.max_connections is not None:
            settings["databases.max_connections"] = args.max_connections
        if args.no_move:
            settings["bench.no_move"] = True
        settings["bench.running_timeout"] = RUNNING_TIMEOUT_S
        with Sampler(made) as sampler:
            quiet_from = time.time()
            time.sleep(args.idle_seconds)  # the server's CPU without this service
            quiet_to = time.time()
            server = supervision.bench_scale(
                folder / "server", n, args.idle_seconds, args.checkin_seconds, settings
            )
        server["create_databases_s"] = created
        idle = server.get("idle")
        samples = sampler.samples
        server["peak_connections_sampled"] = samples.peak()
        server["server_cpu_pct_before"] = samples.cpu_pct(quiet_from, quiet_to)
        if idle is not None:
            server["server_cpu_pct_idle"] = samples.cpu_pct(idle["epoch_from"], idle["epoch_to"])
            server["peak_connections_idle"] = samples.peak(idle["epoch_from"], idle["epoch_to"])
        supervision.log("  dropping the databases ...")
    results["server"] = server
    results["sqlite"] = supervision.bench_scale(
        folder / "sqlite", n, args.idle_seconds, args.checkin_seconds
    )
    return results


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def table(results: dict[str, Any]) -> list[Row]:
    """One row per figure: the server run beside the SQLite run."""
    server, sqlite = results["server"], results["sqlite"]
    n, kind = results["config"]["databases"], results["config"]["server"]
    s_idle, q_idle = server.get("idle") or {}, sqlite.get("idle") or {}
    budget = (server.get("budgets") or [{}])[0]

    def running(r: dict[str, Any]) -> str:
        if r["all_running"]:
            return f"{r['all_running_s']:.2f}"
        return f"> {r['all_running_s']:.0f} ({r['running_count']} of {n})"

    s_cpu, q_cpu = s_idle.get("cpu_pct_of_core"), q_idle.get("cpu_pct_of_core")
    return [
        Row(
            f"all {n:,} running, s ({kind} | SQLite)",
            running(server),
            running(sqlite),
            _ratio(server["all_running_s"], sqlite["all_running_s"]),
            "info",
            "",
        ),
        Row(
            f"service idle CPU, % of one core ({kind} | SQLite)",
            _f(s_cpu),
            _f(q_cpu),
            _ratio(s_cpu, q_cpu),
            "info",
            "",
        ),
        Row(
            f"{kind} server CPU, % of one core: the service idle | before it started",
            _f(server.get("server_cpu_pct_idle")),
            _f(server.get("server_cpu_pct_before")),
            _ratio(server.get("server_cpu_pct_idle"), server.get("server_cpu_pct_before")),
            "info",
            "",
        ),
        Row(
            "service's peak connections, sampled from the server | budget",
            str(server["peak_connections_sampled"]),
            str(budget.get("budget", "-")),
            _ratio(server["peak_connections_sampled"], budget.get("budget")),
            "<= 1.00x",
            "yes" if server["peak_connections_sampled"] <= budget.get("budget", 0) else "MISSED",
        ),
        Row(
            "service's peak connections, its own count | budget",
            str(budget.get("peak", "-")),
            str(budget.get("budget", "-")),
            _ratio(budget.get("peak"), budget.get("budget")),
            "<= 1.00x",
            "yes" if budget.get("peak", 1 << 30) <= budget.get("budget", 0) else "MISSED",
        ),
        Row(
            f"RSS after all running, MB ({kind} | SQLite)",
            _f(server["rss_all_running_mb"], 1),
            _f(sqlite["rss_all_running_mb"], 1),
            _ratio(server["rss_all_running_mb"], sqlite["rss_all_running_mb"]),
            "info",
            "",
        ),
    ]


def main(args: argparse.Namespace) -> int:
    """Run, print (or ``--json``), clean up."""
    from bench import supervision

    folder = Path(tempfile.mkdtemp(prefix="bench-server-", dir=args.dir)).resolve()
    try:
        results = run(args, folder)
        results["machine"] = supervision.machine_info(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    m, c, server = results["machine"], results["config"], results["server"]
    print_machine(m, f", pykka {m['pykka']}")
    budget = (server.get("budgets") or [{}])[0]
    print(
        f"config:  N={c['databases']:,} practice databases on {c['server']} (one login of"
        f" their own) and N SQLite files; default settings, check-in"
        f" {args.checkin_seconds:g} s, idle S={args.idle_seconds:g} s;"
        f" databases.max_connections {budget.get('configured', '-')}, the server accepts"
        f" {budget.get('server_limit', '-')}, budget {budget.get('budget', '-')}"
        f"{'; --no-move' if args.no_move else ''}"
    )
    for name in ("server", "sqlite"):
        r = results[name]
        idle = r.get("idle") or {}
        events = ", ".join(f"{k} {v}" for k, v in sorted(idle.get("events_during", {}).items()))
        print(
            f"{name}:  start CPU {r['start_cpu_s']:.2f} s; idle events: {events or 'none'};"
            f" log records {r['log_records'] or 'none'}"
        )
    print(f"         server budget figures: {budget}")
    print()
    print_table(table(results))
    return 0
