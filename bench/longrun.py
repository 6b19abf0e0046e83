"""Long-run benchmark: the real service started on an event log a year of operation leaves.

Run it as ``.venv/bin/python bench/longrun.py [--events N] [--databases D ...] [--quick]
[--json]`` (defaults: 10,000,000 events, for 5 and for 1,000 databases; ``--quick``:
200,000 events, 5 and 50 databases, for a smoke run).

For each number of databases D, in one run (temporary files in one folder, removed at the
end):

1. **The practice folder.** D SQLite practice databases ("Practice 0001", ...) made by
   ``init_practice_database`` (what ``email-service db init`` calls), no mail server set.
   Each ``serve`` below gets its own copy of this pristine folder.
2. **The baseline: an empty log.** ``email-service serve`` (a subprocess: this
   interpreter, ``-m supervisor.cli --config FILE serve``) with ``NOTIFY_SOCKET`` set to
   a unix datagram socket this script binds. Figures: seconds from ``Popen`` to the
   datagram holding ``READY=1``; the process's peak resident memory up to then
   (``VmHWM`` from ``/proc/PID/status``, read every 20 ms and once more at READY). Then
   SIGTERM; and the same once more (the "next start", the judged baseline). Then
   ``events replay --db NAME --until T`` and ``events stats`` on that log, each a
   subprocess, timed from spawn to exit.
3. **The long log.** N events of the real types (``events/types.py``), appended through
   the real store (``SqlEventStore.append_async``, the writer thread's group commit), in
   the order and at the times a year of operation would have written them, ending now:
   per database a ``SelfTestPassed`` every 15 s (every 4th one with the mail servers'
   components, as a probe each minute adds them), about 3 ``SelfTestFailed`` a day with
   a diagnostic, a crash about every 10 days (``MailboxCrashed`` with a traceback,
   ``RestartScheduled``, ``MailboxStarted``), a Restart pressed about monthly
   (``RestartRequested``, ``MailboxStopped``, ``RestartScheduled``, ``MailboxStarted``),
   a missed check-in monthly, a reboot of the practice server weekly
   (``ServiceStopping``, ``MailboxStopped`` for each, ``ServiceStarted``,
   ``MailboxStarted`` for each), and on weekdays from 08:00 to 18:00 UTC about 60
   ``MessageSent`` (one in 200 a ``MessageSendFailed``) and 25 ``MessageReceived`` each
   followed by ``InboxSynced``. The store stamps ``recorded_at`` from its clock once per
   commit, as it does in the service: this script gives it a clock it sets, and commits
   one slice of simulated time at a time (``--commit-seconds``; by default so that a
   commit holds at least 100 events and 5 per database), so times fall on that grid. At
   5 databases 10 M events are about 340 days; at 1,000 databases about 1.7 days.
4. **The service on the long log**: the same two ``serve`` measurements on a fresh copy of
   the practice folder. A year of operation would have left whatever start-up state the
   service stores (i11-core's checkpoint, saved every minute and at stop); a log built
   here has none, so the first start on it is the upgrade's first start (information,
   waited for up to ``--first-ready-timeout``), and the judged figure is the next start.
   Then the two commands (T is the middle of the log's time span).
5. **Retention with the defaults.** If the code has ``email-service events prune``, it is
   run with no options (the defaults) and the log's size is read afterwards: the file
   (``os.stat``, with its WAL) and the bytes SQLite still uses (pages minus free pages).
   The judged figure is the bytes in use: this log was built a year at once and pruned
   once, so SQLite keeps the freed pages in the file, whereas a log pruned every hour
   from its first day reuses them and stays near its size in use. Without that command
   there is no retention, and the figure is the whole file. For D > 5 a year cannot be
   built; its size is computed from the 5-database year: the events kept per database,
   times D, times the bytes in use per kept event (stated as computed).

Targets (issue 11) at 10 M events: READY within 2 s and within 1.5x the empty log's time;
peak RSS at most 50 MB above the empty log's; each command at most 1 s; the log after
retention at most 100 MB for a year of 5 databases. A ``serve`` that does not become ready
within ``--ready-timeout`` seconds (or exits first) is reported as such, with its exit
code and last line on stderr: that is the figure, not a crash of the script. Each target
prints PASS or MISS; in parentheses when the log is smaller than the target's size.
"""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH_DIR = Path(__file__).resolve().parent
_ROOT = _BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from actors.practice_schema import init_practice_database  # noqa: E402
from bench._report import Row, machine_info, print_machine, print_table  # noqa: E402
from events.sql_store import SqlEventStore  # noqa: E402
from events.store import ANY, PendingAppend  # noqa: E402
from events.types import (  # noqa: E402
    SERVICE_STREAM,
    CheckInMissed,
    DatabaseDiscovered,
    Diagnostic,
    Event,
    InboxSynced,
    MailboxCrashed,
    MailboxStarted,
    MailboxStopped,
    MessageReceived,
    MessageSendFailed,
    MessageSent,
    RestartRequested,
    RestartScheduled,
    SelfTestFailed,
    SelfTestPassed,
    ServiceStarted,
    ServiceStopping,
    stream_for,
)

TARGET_READY_SECONDS = 2.0
TARGET_READY_RATIO = 1.5
TARGET_RSS_ABOVE_MB = 50.0
TARGET_COMMAND_SECONDS = 1.0
TARGET_YEAR_MB = 100.0
TARGET_EVENTS = 10_000_000
"""The issue's targets, judged at 10 million events (and a year of 5 databases)."""

CHECKIN_SECONDS = 15.0
DAY = 86_400.0
SEED = 20261202
SAMPLE_SECONDS = 0.02
EVENTS_PER_COMMIT = 100
EVENTS_PER_APPEND = 5
"""A commit holds at least 100 events, and each database's append in it at least 5 (at
1,000 databases a 15 s slice would be one event per append: the build would crawl)."""

# A practice's day, per database (assumptions, stated in the module docstring).
FAILED_PER_DAY = 3.0
CRASH_EVERY_DAYS = 10.0
RESTART_PRESSED_EVERY_DAYS = 30.0
MISSED_EVERY_DAYS = 30.0
REBOOT_EVERY_DAYS = 7.0
SENT_PER_WORKDAY = 60.0
RECEIVED_PER_WORKDAY = 25.0
SEND_FAILED_SHARE = 1 / 200
OFFICE_HOURS = (8, 18)

TRACEBACK = (
    'Traceback (most recent call last):\n  File "actors/mailbox.py", line 171, in on_receive\n'
    "    self._run_due()\n"
    '  File "actors/mail/outbox.py", line 402, in send_due\n    rows = self._claim(conn)\n'
    '  File "sqlalchemy/engine/base.py", line 1967, in _exec_single_context\n'
    "    self.dialect.do_execute(\n"
    "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked\n"
)


def progress(message: str) -> None:
    print(f"[longrun {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def db_name(i: int) -> str:
    return f"Practice {i:04d}"


# --- building the log ---------------------------------------------------------------------


class SetClock:
    """The store's clock: reads the time this script set (the simulated commit time)."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class DbState:
    """What the generator tracks per database to write consistent events."""

    incarnation: int = 1
    row_id: int = 0
    uid: int = 0
    checks: int = 0


def events_per_db_day() -> float:
    """The mean number of events one database adds a day with the mix above."""
    workday_share = 5 / 7
    return (
        DAY / CHECKIN_SECONDS
        + 3 / CRASH_EVERY_DAYS
        + 4 / RESTART_PRESSED_EVERY_DAYS
        + 1 / MISSED_EVERY_DAYS
        + 2 / REBOOT_EVERY_DAYS
        + workday_share * (SENT_PER_WORKDAY + 2 * RECEIVED_PER_WORKDAY)
    )


class YearOfEvents:
    """Yields, slice by slice of simulated time, the appends the service would have made."""

    def __init__(self, databases: int, start: datetime, slice_seconds: float, seed: int) -> None:
        self.names = [db_name(i + 1) for i in range(databases)]
        self.state = {n: DbState() for n in self.names}
        self.start = start
        self.slice = slice_seconds
        self.rng = random.Random(seed)
        self.next_reboot = start + timedelta(days=self.rng.uniform(0, REBOOT_EVERY_DAYS))

    def initial(self) -> list[tuple[str, list[Event]]]:
        """The first start of the service: discovered, started."""
        out: list[tuple[str, list[Event]]] = [
            (SERVICE_STREAM, [ServiceStarted("practice-server", "1.0.0", 4242)])
        ]
        for n in self.names:
            out.append((stream_for(n), [DatabaseDiscovered(n, "eligible"), MailboxStarted(1)]))
        return out

    def slice_at(self, t0: datetime) -> list[tuple[str, list[Event]]]:
        """The appends of the simulated interval [t0, t0 + slice), in order per stream."""
        rng = self.rng
        span_days = self.slice / DAY
        appends: list[tuple[str, list[Event]]] = []
        reboot = self.next_reboot < t0 + timedelta(seconds=self.slice)
        if reboot:
            self.next_reboot += timedelta(days=rng.expovariate(1 / REBOOT_EVERY_DAYS))
            appends.append((SERVICE_STREAM, [ServiceStopping("SIGTERM")]))
        workday = t0.weekday() < 5 and OFFICE_HOURS[0] <= t0.hour < OFFICE_HOURS[1]
        office_days = (OFFICE_HOURS[1] - OFFICE_HOURS[0]) / 24
        sent_rate = SENT_PER_WORKDAY / office_days if workday else 0.0
        received_rate = RECEIVED_PER_WORKDAY / office_days if workday else 0.0
        checks = int(self.slice // CHECKIN_SECONDS)
        for n in self.names:
            s = self.state[n]
            evs: list[Event] = []
            if reboot:
                evs.append(MailboxStopped(s.incarnation, "service stopping"))
            for _ in range(checks):
                s.checks += 1
                if rng.random() < FAILED_PER_DAY * CHECKIN_SECONDS / DAY:
                    diag = Diagnostic("smtp", "error", "smtp.practice.example:587: timed out")
                    evs.append(SelfTestFailed(s.incarnation, (diag,)))
                elif s.checks % 4 == 0:
                    evs.append(SelfTestPassed(s.incarnation, ("database", "smtp", "imap")))
                else:
                    evs.append(SelfTestPassed(s.incarnation, ("database",)))
            for _ in range(_poisson(rng, sent_rate * span_days)):
                s.row_id += 1
                mid = f"<{s.row_id}.{n[-4:]}@practice.example>"
                if rng.random() < SEND_FAILED_SHARE:
                    evs.append(
                        MessageSendFailed(
                            s.incarnation, s.row_id, mid, "550 5.1.1 mailbox unavailable", True
                        )
                    )
                else:
                    evs.append(MessageSent(s.incarnation, s.row_id, mid, 1))
            for _ in range(_poisson(rng, received_rate * span_days)):
                s.uid += 1
                mid = f"<r{s.uid}@mail.example.net>"
                evs.append(MessageReceived(s.incarnation, s.uid, mid, 1700000000, s.uid))
                evs.append(InboxSynced(s.incarnation, 1700000000, s.uid))
            if rng.random() < span_days / MISSED_EVERY_DAYS:
                evs.append(CheckInMissed(s.incarnation, 31.2))
            if rng.random() < span_days / CRASH_EVERY_DAYS:
                evs.append(MailboxCrashed(s.incarnation, "OperationalError", TRACEBACK))
                evs.append(RestartScheduled(1.0, "crash", 1))
                s.incarnation += 1
                evs.append(MailboxStarted(s.incarnation))
            if rng.random() < span_days / RESTART_PRESSED_EVERY_DAYS:
                evs.append(RestartRequested("http", "reception", None))
                evs.append(MailboxStopped(s.incarnation, "restart requested"))
                evs.append(RestartScheduled(0.0, "requested", 1))
                s.incarnation += 1
                evs.append(MailboxStarted(s.incarnation))
            if reboot:
                s.incarnation += 1
                evs.append(MailboxStarted(s.incarnation))
            appends.append((stream_for(n), evs))
        if reboot:
            appends.insert(1, (SERVICE_STREAM, [ServiceStarted("practice-server", "1.0.0", 4242)]))
        return appends


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; the means here are small)."""
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def build_log(url: str, databases: int, total: int, slice_seconds: float) -> dict[str, Any]:
    """Append ``total`` events (about) ending now; return what was built."""
    span_days = total / (databases * events_per_db_day())
    end = datetime.now(UTC) - timedelta(minutes=1)
    start = end - timedelta(days=span_days)
    gen = YearOfEvents(databases, start, slice_seconds, SEED + databases)
    clock = SetClock(start)
    store = SqlEventStore(url, clock=clock)
    types: Counter[str] = Counter()
    written = 0
    began = time.perf_counter()
    last_report = began
    try:
        t = start
        pending: PendingAppend | None = None
        batches: Iterator[list[tuple[str, list[Event]]]] = _slices(gen, start, end, slice_seconds)
        for at, appends in batches:
            clock.at = at
            for stream, evs in appends:
                if evs:
                    pending = store.append_async(stream, ANY, evs)
                    written += len(evs)
                    for e in evs:
                        types[type(e).__name__] += 1
            if pending is not None:
                pending.result()  # this slice is durable before the clock moves
            t = at
            if written >= total:
                break
            now = time.perf_counter()
            if now - last_report > 15:
                last_report = now
                rate = written / (now - began)
                progress(f"  {written:,} events ({written / total:.0%}), {rate:,.0f}/s")
    finally:
        store.close()
    seconds = time.perf_counter() - began
    return {
        "events": written,
        "seconds": seconds,
        "events_per_second": written / seconds,
        "first": start.isoformat(),
        "last": t.isoformat(),
        "span_days": (t - start).total_seconds() / DAY,
        "types": dict(types.most_common()),
    }


def _slices(
    gen: YearOfEvents, start: datetime, end: datetime, step: float
) -> Iterator[tuple[datetime, list[tuple[str, list[Event]]]]]:
    yield start, gen.initial()
    t = start
    while t < end:
        yield t + timedelta(seconds=step), gen.slice_at(t)
        t += timedelta(seconds=step)


# --- the practice folder, the config, serve -----------------------------------------------


def make_practices(folder: Path, databases: int) -> float:
    folder.mkdir(parents=True)
    began = time.perf_counter()
    for i in range(databases):
        name = db_name(i + 1)
        init_practice_database(f"sqlite:///{folder / name}.sqlite3", practice_name=name)
    return time.perf_counter() - began


def write_config(root: Path, log: Path, practices: Path, extra: str = "") -> Path:
    config = root / f"{log.stem}.toml"
    config.write_text(
        '[service]\nserver_id = "bench-longrun"\n'
        f'event_store = "sqlite:///{log}"\n'
        f'[databases]\nserver_url = "sqlite:///{practices}"\n'
        '[http]\nlisten = "127.0.0.1:0"\n' + extra
    )
    return config


def cli(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "supervisor.cli", "--config", str(config), *args]


def vm_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """The user + system CPU time of process ``pid`` so far (Linux ``/proc``), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command's name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class StartResult:
    """What one ``serve`` start showed."""

    ready_seconds: float | None = None
    peak_rss_mb: float | None = None
    cpu_seconds: float | None = None
    """The process's CPU time (user + system) up to READY=1 (``/proc/PID/stat``)."""
    outcome: str = ""
    exit_code: int | None = None
    messages: list[str] = field(default_factory=list)
    last_stderr: str = ""


def start_serve(
    config: Path, root: Path, timeout: float, label: str, code: Path = _ROOT
) -> StartResult:
    """Spawn ``serve`` (of the code in ``code``: this checkout's), wait for READY=1 on our
    notify socket, read VmHWM, stop it."""
    sock_path = root / f"notify-{config.stem}-{label}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(SAMPLE_SECONDS)
    err_path = root / f"serve-{config.stem}-{label}.log"
    result = StartResult()
    env = dict(os.environ, NOTIFY_SOCKET=str(sock_path))
    env.pop("WATCHDOG_USEC", None)
    with err_path.open("wb") as err:
        began = time.perf_counter()
        process = subprocess.Popen(
            cli(config, "serve"),
            cwd=code,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
        peak = 0
        try:
            while True:
                hwm = vm_kb(process.pid, "VmHWM")
                if hwm is not None:
                    peak = max(peak, hwm)
                try:
                    data = sock.recv(4096).decode("utf-8", "replace")
                except TimeoutError:
                    data = ""
                if data:
                    result.messages.append(
                        f"{time.perf_counter() - began:.2f}s {data.replace(chr(10), ' ')}"
                    )
                    if "READY=1" in data.split("\n"):
                        result.ready_seconds = time.perf_counter() - began
                        result.cpu_seconds = cpu_seconds(process.pid)
                        hwm = vm_kb(process.pid, "VmHWM")
                        peak = max(peak, hwm or 0)
                        result.outcome = "ready"
                        break
                code = process.poll()
                if code is not None:
                    result.exit_code = code
                    result.outcome = (
                        f"exited {code} after {time.perf_counter() - began:.1f} s, never ready"
                    )
                    break
                if time.perf_counter() - began > timeout:
                    result.outcome = f"not ready after {timeout:.0f} s (timeout)"
                    break
        finally:
            result.peak_rss_mb = peak / 1024 if peak else None
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    result.exit_code = process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    result.exit_code = process.wait()
            sock.close()
            sock_path.unlink(missing_ok=True)
    lines = err_path.read_text(errors="replace").strip().splitlines()
    why = [ln for ln in lines if ln.startswith(("email-service:", "CRITICAL"))]
    result.last_stderr = (why or lines or [""])[-1][:200]  # the line saying why, if any
    return result


@dataclass
class CommandResult:
    seconds: float
    exit_code: int | None
    note: str = ""


def median_start(results: list[StartResult]) -> StartResult:
    """The median start by time to READY; a start that never became ready wins."""
    failed = [r for r in results if r.ready_seconds is None]
    if failed:
        return failed[0]
    return sorted(results, key=lambda r: r.ready_seconds or 0.0)[len(results) // 2]


def median_command(results: list[CommandResult]) -> CommandResult:
    """The median run by time; a run that failed wins."""
    failed = [r for r in results if r.exit_code != 0]
    if failed:
        return failed[0]
    return sorted(results, key=lambda r: r.seconds)[len(results) // 2]


def time_command(config: Path, args: Sequence[str], timeout: float) -> CommandResult:
    began = time.perf_counter()
    try:
        done = subprocess.run(
            cli(config, *args), cwd=_ROOT, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return CommandResult(time.perf_counter() - began, None, f"timeout after {timeout:.0f} s")
    seconds = time.perf_counter() - began
    note = ""
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        note = lines[-1][:160] if lines else ""
    return CommandResult(seconds, done.returncode, note)


def has_prune(config: Path) -> bool:
    done = subprocess.run(
        cli(config, "events", "--help"), cwd=_ROOT, capture_output=True, check=False
    )
    return b"prune" in done.stdout


def has_compact(config: Path) -> bool:
    done = subprocess.run(
        cli(config, "events", "prune", "--help"), cwd=_ROOT, capture_output=True, check=False
    )
    return b"--compact" in done.stdout


def log_sizes(log: Path) -> dict[str, float]:
    """The file's size on disk (with its WAL) and the bytes SQLite uses, in MB."""
    files = [log, log.with_name(log.name + "-wal")]
    on_disk = sum(f.stat().st_size for f in files if f.exists())
    conn = sqlite3.connect(log)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()
    return {"file_mb": on_disk / 1e6, "used_mb": (pages - free) * size / 1e6, "events": count}


def kept_by_type(log: Path) -> dict[str, int]:
    conn = sqlite3.connect(log)
    try:
        return dict(conn.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
    finally:
        conn.close()


# --- one scenario -------------------------------------------------------------------------


def scenario(root: Path, databases: int, events: int, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"databases": databases, "target_events": events}
    base = root / f"d{databases}"
    base.mkdir()
    pristine = base / "pristine"
    progress(f"{databases} databases: making the practice folder")
    out["practices_seconds"] = make_practices(pristine, databases)
    middle_db = db_name(max(1, databases // 2))

    progress(f"{databases} databases: serve on an empty log")
    empty_practices = base / "practices-empty"
    shutil.copytree(pristine, empty_practices)
    empty_log = base / "empty.sqlite3"
    empty_config = write_config(base, empty_log, empty_practices)
    out["empty_first"] = asdict(start_serve(empty_config, base, args.ready_timeout, "first"))

    long_log = base / "long.sqlite3"
    rate = databases / CHECKIN_SECONDS
    slice_seconds = args.commit_seconds or max(
        EVENTS_PER_APPEND * CHECKIN_SECONDS, EVENTS_PER_COMMIT / rate
    )
    slice_seconds = math.ceil(slice_seconds / CHECKIN_SECONDS) * CHECKIN_SECONDS
    progress(
        f"{databases} databases: building {events:,} events (one commit per"
        f" {slice_seconds:.0f} simulated s)"
    )
    out["build"] = build_log(f"sqlite:///{long_log}", databases, events, slice_seconds)
    out["build"]["commit_seconds"] = slice_seconds
    out["long_before"] = log_sizes(long_log)
    progress(
        f"  built {out['build']['events']:,} events in {out['build']['seconds']:.0f} s,"
        f" {out['long_before']['file_mb']:.0f} MB, {out['build']['span_days']:.1f} days"
    )

    progress(f"{databases} databases: serve on the long log")
    long_practices = base / "practices-long"
    shutil.copytree(pristine, long_practices)
    long_config = write_config(base, long_log, long_practices)
    # A year of operation would have stored the start-up state the service keeps (where
    # the code keeps one) many times; a log built here has none. So the first start on it
    # is the upgrade's (information, with a longer wait), and the judged one is the next.
    out["long_first"] = asdict(start_serve(long_config, base, args.first_ready_timeout, "first"))
    progress(f"  first start: {out['long_first']['outcome']}")
    # The next starts and the commands take turns between the two logs, --repeat times
    # each; the median is the figure (the machine is shared: one run can be unlucky).
    starts: dict[str, list[StartResult]] = {"empty": [], "long": []}
    for i in range(args.repeat):
        for which, config in (("empty", empty_config), ("long", long_config)):
            got = start_serve(config, base, args.ready_timeout, f"again{i}")
            starts[which].append(got)
            progress(f"  next start on the {which} log: {got.outcome} {_s(got.ready_seconds)}")
    for which in starts:
        out[f"{which}_start"] = asdict(median_start(starts[which]))
        out[f"{which}_starts"] = [r.ready_seconds for r in starts[which]]
    first = datetime.fromisoformat(out["build"]["first"])
    last = datetime.fromisoformat(out["build"]["last"])
    until = (first + (last - first) / 2).isoformat()
    out["until"] = until
    progress(f"{databases} databases: events replay --db and events stats on both logs")
    commands: dict[str, list[CommandResult]] = {}
    for _ in range(args.repeat):
        for which, config, at in (
            ("empty", empty_config, datetime.now(UTC).isoformat()),
            ("long", long_config, until),
        ):
            for key, cmd in (
                ("replay", ["events", "replay", "--db", middle_db, "--until", at]),
                ("stats", ["events", "stats"]),
            ):
                got_c = time_command(config, cmd, args.command_timeout)
                commands.setdefault(f"{which}_{key}", []).append(got_c)
                progress(f"  {' '.join(cmd[:2])} on the {which} log: {_s(got_c.seconds)}")
    for key, results in commands.items():
        out[key] = asdict(median_command(results))
        out[f"{key}_all"] = [r.seconds for r in results]

    out["has_prune"] = has_prune(long_config)
    if out["has_prune"]:
        progress(f"{databases} databases: events prune (the defaults)")
        out["prune"] = asdict(
            time_command(long_config, ["events", "prune"], args.command_timeout * 10)
        )
    out["long_after"] = log_sizes(long_log)
    out["kept_types"] = kept_by_type(long_log)
    out["has_compact"] = has_compact(long_config)
    if out["has_prune"] and out["has_compact"]:
        progress(f"{databases} databases: events prune --compact (the service is stopped)")
        out["compact"] = asdict(
            time_command(long_config, ["events", "prune", "--compact"], args.command_timeout * 10)
        )
        out["long_compacted"] = log_sizes(long_log)
    return out


# --- the report ---------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} MB"


def _ratio(ours: float | None, base: float | None) -> str:
    if ours is None or not base:
        return "-"
    return f"{ours / base:.2f}x"


def year_estimate(five: dict[str, Any], databases: int) -> dict[str, float] | None:
    """A year of ``databases`` after retention, computed from the 5-database year."""
    if five["build"]["span_days"] < 300:
        return None
    kept = five["kept_types"]
    service = kept.get("ServiceStarted", 0) + kept.get("ServiceStopping", 0)
    per_db = (sum(kept.values()) - service) / five["databases"]
    after = five["long_after"]
    bytes_per_event = after["used_mb"] * 1e6 / max(1, after["events"])
    events = per_db * databases + service
    return {"events": events, "mb": events * bytes_per_event / 1e6, "per_db": per_db}


def verdict(ok: bool, judged: bool) -> str:
    """PASS or MISS; in parentheses when the log is smaller than the target's size."""
    word = "PASS" if ok else "MISS"
    return word if judged else f"({word})"


def start_row(label: str, ours: dict[str, Any], base: dict[str, Any], judged: bool | None) -> Row:
    target = "<= 2 s, <= 1.5x" if judged is not None else "info"
    if ours["ready_seconds"] is None:
        return Row(
            label,
            ours["outcome"],
            _s(base["ready_seconds"]),
            "-",
            target,
            "" if judged is None else verdict(False, judged),
        )
    ok = ours["ready_seconds"] <= TARGET_READY_SECONDS and (
        base["ready_seconds"] is not None
        and ours["ready_seconds"] <= TARGET_READY_RATIO * base["ready_seconds"]
    )
    return Row(
        label,
        _s(ours["ready_seconds"]),
        _s(base["ready_seconds"]),
        _ratio(ours["ready_seconds"], base["ready_seconds"]),
        target,
        "" if judged is None else verdict(ok, judged),
    )


def rows_for(s: dict[str, Any], estimate: dict[str, float] | None) -> list[Row]:
    d = s["databases"]
    built = s["build"]["events"]
    at_target = built >= 0.99 * TARGET_EVENTS  # the builder stops within a slice of it
    tag = f"{d} dbs, {built / 1e6:.1f} M events"
    rows = [
        start_row(
            f"{tag}: first serve -> READY (no stored state yet)",
            s["long_first"],
            s["empty_first"],
            None,
        ),
        start_row(f"{tag}: next serve -> READY", s["long_start"], s["empty_start"], at_target),
    ]
    e, lg = s["empty_start"], s["long_start"]
    above = (
        None
        if lg["peak_rss_mb"] is None or e["peak_rss_mb"] is None
        else lg["peak_rss_mb"] - e["peak_rss_mb"]
    )
    rss_ok = above is not None and above <= TARGET_RSS_ABOVE_MB and lg["ready_seconds"] is not None
    rows.append(
        Row(
            f"{tag}: peak RSS in the next start-up"
            + ("" if lg["ready_seconds"] is not None else " (until it gave up)"),
            _mb(lg["peak_rss_mb"]),
            _mb(e["peak_rss_mb"]),
            "-" if above is None else f"{above:+.1f} MB",
            "<= +50 MB",
            verdict(rss_ok, at_target),
        )
    )
    for key, label in (("replay", "events replay --db --until"), ("stats", "events stats")):
        ours, base = s[f"long_{key}"], s[f"empty_{key}"]
        ok = ours["exit_code"] == 0 and ours["seconds"] <= TARGET_COMMAND_SECONDS
        shown = (
            _s(ours["seconds"])
            if ours["exit_code"] == 0
            else (f"exit {ours['exit_code']} {ours['note']}".strip())
        )
        rows.append(
            Row(
                f"{tag}: {label}",
                shown,
                _s(base["seconds"]),
                _ratio(ours["seconds"], base["seconds"]),
                "<= 1 s",
                verdict(ok, at_target),
            )
        )
    after = s["long_after"]
    days = s["build"]["span_days"]
    year = days >= 300
    span = f"{days:.0f} days" if days >= 10 else f"{days:.1f} days"
    if not s["has_prune"]:
        rows.append(
            Row(
                f"{d} dbs, {span}: log size (no retention in this code)",
                _mb(after["file_mb"]),
                _mb(TARGET_YEAR_MB) if d <= 5 else "-",
                _ratio(after["file_mb"], TARGET_YEAR_MB) if d <= 5 else "-",
                "<= 100 MB/year" if d <= 5 else "info",
                verdict(after["file_mb"] <= TARGET_YEAR_MB, year) if d <= 5 else "",
            )
        )
    else:
        rows.append(
            Row(
                f"{d} dbs, {span}: log file after events prune (freed pages kept)",
                _mb(after["file_mb"]),
                "-",
                "-",
                "info",
                "",
            )
        )
        if "long_compacted" in s:
            rows.append(
                Row(
                    f"{d} dbs, {span}: log file after events prune --compact"
                    f" ({s['compact']['seconds']:.0f} s)",
                    _mb(s["long_compacted"]["file_mb"]),
                    _mb(after["file_mb"]),
                    _ratio(s["long_compacted"]["file_mb"], after["file_mb"]),
                    "info",
                    "",
                )
            )
        rows.append(
            Row(
                f"{d} dbs, {span}: log bytes in use after events prune",
                _mb(after["used_mb"]),
                _mb(TARGET_YEAR_MB) if d <= 5 else "-",
                _ratio(after["used_mb"], TARGET_YEAR_MB) if d <= 5 else "-",
                "<= 100 MB/year" if d <= 5 else "info",
                verdict(after["used_mb"] <= TARGET_YEAR_MB, year) if d <= 5 else "",
            )
        )
    if estimate is not None:
        rows.append(
            Row(
                f"{d} dbs, a year: log size computed from 5 dbs' kept events",
                _mb(estimate["mb"]),
                "-",
                "-",
                "info",
                "",
            )
        )
    return rows


def _notes(messages: list[str]) -> str:
    """The notify datagrams, the first few and the last."""
    if not messages:
        return "(none)"
    shown = messages[:3] + (["...", *messages[-1:]] if len(messages) > 4 else messages[3:])
    return f"{len(messages)}: " + " | ".join(m[:90] for m in shown)


def print_report(report: dict[str, Any]) -> None:
    print_machine(report["machine"])
    print(
        f"config: defaults; targets judged at 10 M events (rows built smaller show the"
        f" verdict in parentheses); ready timeout {report['ready_timeout']:.0f} s; load average"
        f" {' '.join(f'{x:.1f}' for x in report['load_average_at_start'])} at the start,"
        f" {' '.join(f'{x:.1f}' for x in report['load_average'])} at the end"
    )
    rows: list[Row] = []
    five = next((s for s in report["scenarios"] if s["databases"] <= 5), None)
    for s in report["scenarios"]:
        b = s["build"]
        print(
            f"{s['databases']} databases: built {b['events']:,} events in {b['seconds']:.0f} s"
            f" ({b['events_per_second']:,.0f}/s, one commit per {b['commit_seconds']:.0f}"
            f" simulated s), {b['span_days']:.1f} days from {b['first'][:16]} to"
            f" {b['last'][:16]}; {s['long_before']['file_mb']:.1f} MB,"
            f" {s['long_before']['file_mb'] * 1e6 / max(1, b['events']):.0f} B/event"
        )
        print(f"  mix: {', '.join(f'{k} {v:,}' for k, v in b['types'].items())}")
        for which in ("empty", "long"):
            for when, key in (("first start", "first"), ("next start", "start")):
                st = s[f"{which}_{key}"]
                took = "" if st["ready_seconds"] is None else f" in {st['ready_seconds']:.2f} s"
                peak = "" if st["peak_rss_mb"] is None else f", peak RSS {st['peak_rss_mb']:.1f} MB"
                print(
                    f"  serve on the {which} log, {when}: {st['outcome']}{took}{peak};"
                    f" exit {st['exit_code']}; notify: {_notes(st['messages'])}"
                )
                if st["outcome"] != "ready":
                    print(f"    last stderr line: {st['last_stderr']}")

        def runs(values: list[float | None]) -> str:
            return "/".join("-" if v is None else f"{v:.2f}" for v in values)

        print(
            f"  runs (s; the median is the figure): next starts empty {runs(s['empty_starts'])},"
            f" long {runs(s['long_starts'])}; replay empty {runs(s['empty_replay_all'])}, long"
            f" {runs(s['long_replay_all'])}; stats empty {runs(s['empty_stats_all'])}, long"
            f" {runs(s['long_stats_all'])}"
        )
        if s.get("prune"):
            p = s["prune"]
            print(f"  events prune: {_s(p['seconds'])}, exit {p['exit_code']} {p['note']}")
        a = s["long_after"]
        print(
            f"  after: {a['events']:,} events, file {a['file_mb']:.1f} MB, SQLite uses"
            f" {a['used_mb']:.1f} MB"
        )
        estimate = year_estimate(five, s["databases"]) if five and s is not five else None
        if estimate is not None:
            print(
                f"  a year of {s['databases']} databases (computed, not built):"
                f" {estimate['per_db']:,.0f} kept events per database x {s['databases']}"
                f" = {estimate['events']:,.0f} events, about {estimate['mb']:,.0f} MB"
            )
        rows.extend(rows_for(s, estimate))
    print_table(rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=10_000_000, help="events per log (10,000,000)")
    p.add_argument(
        "--databases", type=int, nargs="+", default=[5, 1000], help="one log per count (5 1000)"
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 200,000 events, 5 and 50 databases"
    )
    p.add_argument("--commit-seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument(
        "--ready-timeout", type=float, default=120.0, help="seconds to READY, judged start (120)"
    )
    p.add_argument(
        "--first-ready-timeout",
        type=float,
        default=900.0,
        help="seconds to READY, the first start on a built log (900)",
    )
    p.add_argument("--command-timeout", type=float, default=300.0, help="seconds (300)")
    p.add_argument(
        "--repeat", type=int, default=3, help="next starts and commands per log; median (3)"
    )
    p.add_argument("--dir", type=Path, help="temp files here (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.quick:
        args.events = min(args.events, 200_000)
        args.repeat = 1
        if args.databases == [5, 1000]:
            args.databases = [5, 50]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="longrun-", dir=args.dir))
    report: dict[str, Any] = {
        "machine": machine_info(root),
        "ready_timeout": args.ready_timeout,
        "load_average_at_start": os.getloadavg(),
        "load_average": os.getloadavg(),
        "scenarios": [],
    }
    try:
        for d in sorted(args.databases):
            report["scenarios"].append(scenario(root, d, args.events, args))
            report["load_average"] = os.getloadavg()
            with contextlib.redirect_stdout(sys.stderr):
                print_report(report)  # so far: a run stopped later still leaves its figures
    finally:
        if args.keep:
            progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
