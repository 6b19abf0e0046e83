"""Soak benchmark: the real service for a while, against real servers, with faults injected.

Run it as ``.venv/bin/python bench/soak.py [--minutes M] [--databases N] [--postgres P]
[--json]`` (defaults: 30 minutes, 50 databases of which 10 on PostgreSQL). It is a
benchmark, not a test: it prints figures and PASS/MISS against the targets.

What runs (temporary files in one folder, removed at the end; PostgreSQL databases
dropped):

- **Servers, started as the tests start them.** One Dovecot (``tests/dovecot.py``), one
  user per practice, reached through the tests' fault proxy (``tests/fault_proxy.py``) so
  that every IMAP connection can be cut; one recording aiosmtpd
  (``tests/smtp_servers.RecordingSmtpServer``) on a fixed port, restarted on that port
  during the run. PostgreSQL from ``tests/servers.py`` (the machine's server).
- **The service: two ``email-service serve`` processes**, because one service serves one
  database server (``databases.server_url``): one on a folder of N - P SQLite practice
  databases, one on P PostgreSQL databases (random names, ``practice.registered_server``
  set to this run's ``server_id`` and the Genuine Server Check on, so neither serves a
  database another run made). Each has its own SQLite event log. Short intervals:
  check-in 5 s, probes 5 s, outbox looked at every 2 s, rescan 30 s, network timeouts
  5 s (``--checkin-seconds`` sets the first; the probes and the timeouts follow: the
  loader refuses a network timeout longer than the check-in interval, which keeps it
  under the watchdog's hang limit of two intervals).
  Retention is shortened when the code has retention settings (``RETENTION`` below: the
  keys are chosen by what ``config/default.toml`` holds), so the log should reach its
  bound inside the run.
- **Mail through the run.** Every few seconds a row is queued in a random practice's
  outbox (as the practice software does: ``email_messages`` status ``queued``), and a
  message is delivered to a random practice's IMAP folder. At the end queueing stops, the
  outbox is given ``--drain-seconds`` to empty, then both services get SIGTERM.
- **Faults on a schedule** (one every ``--fault-every`` seconds after the first minute,
  taking turns, on databases taking turns between SQLite and PostgreSQL):
  ``smtp-restart`` (the SMTP server stopped for 10 s, then started on its port),
  ``imap-cut`` (every IMAP connection cut at the proxy, and ``doveadm kick`` of one
  user), ``db-lock`` (a practice database locked for 20 s: ``BEGIN EXCLUSIVE`` on SQLite,
  ``LOCK TABLE ... ACCESS EXCLUSIVE`` on its tables on PostgreSQL), ``restart``
  (a Restart pressed: ``email-service restart --db``, or ``POST
  /api/databases/NAME/restart``, taking turns), ``crash`` (the database's
  ``email_messages`` table renamed away until the log shows the mailbox crashed, at most
  30 s, then renamed back: the outbox's query fails with an error the mailbox does not
  handle, the real "let it crash" path).
- **Samples every ``--sample-seconds`` (60)** of each ``serve``: RSS (``VmRSS``), threads,
  open file descriptors (``/proc/PID/fd``), the event log's size (file + WAL), and the
  check-in lag (the oldest newest check-in over its databases, minus the interval).
  Slopes are fitted by least squares to the samples after ``--warmup-minutes``.

Targets: no growth trend in threads or descriptors (fitted growth over 24 h below 10 % of
the mean), RSS slope under 1 MB/hour, log size flat once retention is reached (fitted
growth over 24 h below 10 % of its size), no mail lost (every queued row ``sent`` or
``failed`` with a reason, each sent row's Message-ID received by the SMTP server; every
delivered message imported), and every fault visible in ``email-service events replay
--db NAME --json`` (an event of the expected kinds for that database within the fault's
window), looked for 30 s after each fault while the run goes on (the shortened retention
would prune it before the end).

A short run cannot show a slow leak or the log's size over days: its slopes come from few
samples, and with the default retention nothing is pruned within minutes.
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
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402
from unittest import mock  # noqa: E402

from sqlalchemy import Engine, func, insert, select, text, update  # noqa: E402

from actors.practice_db import make_engine  # noqa: E402
from actors.practice_schema import (  # noqa: E402
    email_messages,
    email_service_checkins,
    email_settings,
    init_practice_database,
)
from bench._report import Row, machine_info, print_machine, print_table  # noqa: E402
from tests import smtp_servers  # noqa: E402
from tests.dovecot import Dovecot, make_message  # noqa: E402
from tests.fault_proxy import FaultProxy  # noqa: E402
from tests.servers import POSTGRES_ADMIN_URL, named_databases, server_url  # noqa: E402

TARGET_RSS_MB_PER_HOUR = 1.0
TREND_SHARE_PER_DAY = 0.10
"""A count or a size "has no growth trend" when its fitted growth over 24 hours is below
10 % of its mean (of its size, for the log)."""
FROM_ADDRESS = "reception@soak-dental.example"
FAULT_KINDS = ("smtp-restart", "imap-cut", "db-lock", "restart", "crash")
EVIDENCE: dict[str, tuple[str, ...]] = {
    "smtp-restart": ("SelfTestFailed", "MessageSendFailed", "MailboxCrashed"),
    "imap-cut": ("InboxConnectionLost", "SelfTestFailed", "MailboxCrashed"),
    "db-lock": ("SelfTestFailed", "CheckInMissed", "MailboxCrashed"),
    "restart": ("RestartRequested",),
    "crash": ("MailboxCrashed",),
}
"""The event types that show each fault in the log (any one, for the faulted database)."""
SMTP_DOWN_SECONDS = 10.0
LOCK_SECONDS = 20.0
CRASH_WAIT_SECONDS = 30.0
EVIDENCE_SLACK_SECONDS = 30.0

MINUTE_IN_DAYS = 1 / 1440
RETENTION: dict[str, dict[str, Any]] = {
    "retention": {
        "enabled": True,
        "steady_days": 2 * MINUTE_IN_DAYS,
        "selftest_failure_days": 3 * MINUTE_IN_DAYS,
        "keep_days": 4 * MINUTE_IN_DAYS,
        "checkpoint_seconds": 15.0,
        "prune_every_seconds": 20.0,
    },
}
"""Shortened retention (i11-core's ``[retention]`` keys), written only for the keys this
code's ``config/default.toml`` has: passes kept 2 minutes, failures 3, everything else 4,
pruned every 20 s. The log should then be flat from about 5 minutes into the run."""


def progress(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- the SMTP server, restartable on its port ---------------------------------------------


class SmtpServer:
    """A ``RecordingSmtpServer`` that can be stopped and started again on the same port;
    the Message-IDs it accepted are kept across restarts."""

    def __init__(self) -> None:
        self.port = smtp_servers.free_port()
        self.host = "127.0.0.1"
        self._server: smtp_servers.RecordingSmtpServer | None = None
        self._earlier: list[str | None] = []
        self.restarts = 0

    def start(self) -> None:
        # RecordingSmtpServer picks a free port itself; the restart must keep the port the
        # practices are configured with.
        with mock.patch.object(smtp_servers, "free_port", return_value=self.port):
            server = smtp_servers.RecordingSmtpServer(pipelining=True)
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._earlier.extend(self._server.message_ids())
            self._server = None

    def message_ids(self) -> list[str | None]:
        current = self._server.message_ids() if self._server is not None else []
        return [*self._earlier, *current]


# --- practice databases -------------------------------------------------------------------


@dataclass
class Practice:
    """One practice database the soak serves."""

    name: str
    url: str
    kind: str  # sqlite / postgresql
    user: str  # its IMAP user
    service: str  # which serve process serves it: "sqlite" / "postgresql"
    engine: Engine | None = None
    delivered: list[str] = field(default_factory=list)  # Message-IDs put in its IMAP folder
    queued: int = 0

    def connect(self) -> Engine:
        if self.engine is None:
            self.engine = make_engine(self.url, timeout=30)
        return self.engine


def configure(p: Practice, smtp: SmtpServer, imap_port: int, password: str, server_id: str) -> None:
    init_practice_database(p.url, practice_name=p.name, registered_server=server_id)
    with p.connect().begin() as conn:
        conn.execute(
            update(email_settings).values(
                from_address=FROM_ADDRESS,
                from_name="Soak Dental",
                smtp_host="127.0.0.1",
                smtp_port=smtp.port,
                smtp_security="none",
                imap_enabled=True,
                imap_host="127.0.0.1",
                imap_port=imap_port,
                imap_security="none",
                imap_username=p.user,
                imap_password=password,
                imap_after_import="keep",
            )
        )


# --- the service --------------------------------------------------------------------------


def retention_horizon_seconds(config_text: str) -> float | None:
    """Seconds after which every event kind has been pruned at least once; None without
    retention settings."""
    section = tomllib.loads(config_text).get("retention", {})
    days = [v for k, v in section.items() if k.endswith("_days")]
    if not days or not section.get("enabled", True):
        return None
    return max(days) * 86_400 + float(section.get("prune_every_seconds", 0.0))


def retention_config() -> str:
    """TOML lines that shorten the event log's retention, for the keys this code has."""
    defaults = tomllib.loads((_ROOT / "config" / "default.toml").read_text())
    lines: list[str] = []
    for section, keys in RETENTION.items():
        present = {k: v for k, v in keys.items() if k in defaults.get(section, {})}
        if present:
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in present.items()]
    return "\n".join(lines) + ("\n" if lines else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Service:
    """One ``email-service serve`` process and its event log."""

    def __init__(
        self, root: Path, name: str, server_url: str, server_id: str, args: argparse.Namespace
    ) -> None:
        self.name = name
        self.diagnose: str | None = args.diagnose
        self.root = root / f"service-{name}"
        self.root.mkdir()
        self.log = self.root / "events.sqlite3"
        self.port = free_port()
        c = args.checkin_seconds
        self.config = self.root / "service.toml"
        self.config.write_text(
            f'[service]\nserver_id = "{server_id}"\ngenuine_server_check = true\n'
            f'event_store = "sqlite:///{self.log}"\n'
            f'[databases]\nserver_url = "{server_url}"\nrescan_seconds = 30.0\n'
            f"[health]\ncheckin_seconds = {c}\nprobe_seconds = {max(c, 5.0)}\n"
            f"grace_seconds = {c}\n"
            "[supervision]\nbackoff_max_seconds = 10.0\n"
            "[mail]\noutbox_poll_seconds = 2.0\ninbox_poll_seconds = 5.0\n"
            f"io_timeout_seconds = {c}\n"  # the most the loader allows: at most the check-in
            f'[http]\nlisten = "127.0.0.1:{self.port}"\n' + args.retention
        )
        self.process: subprocess.Popen[bytes] | None = None
        self._err: Any = None
        self.generation = 0  # processes started: a dead one is started again, as systemd would
        self.retired = False  # stopped by the run's end (or an interrupt): not started again
        self.started = 0.0
        self.exits: list[str] = []
        self._offset = 0

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "supervisor.cli", "--config", str(self.config), *args]

    def start(self) -> None:
        if self._err is None:
            self._err = (self.root / "serve.log").open("ab")
        self.generation += 1
        self.started = time.monotonic()
        self._offset = self._err.tell()
        env = dict(os.environ)
        if self.diagnose:
            site = self.root / "diagnose-site"
            site.mkdir(exist_ok=True)
            (site / "sitecustomize.py").write_text(DIAGNOSE_SITE)
            env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
            env["SOAK_DIAG_FILE"] = str(self.root / f"diagnose-{self.name}.jsonl")
            env["SOAK_DIAG_MODE"] = self.diagnose
        self.process = subprocess.Popen(
            self.command("serve"),
            cwd=_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._err,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        self.retired = True
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            code = self.process.returncode
        if self._err is not None:
            self._err.close()
            self._err = None
        return code

    def last_stderr(self) -> str:
        """The line saying why this process exited (else its last line on stderr)."""
        with (self.root / "serve.log").open("rb") as log:
            log.seek(self._offset)
            lines = log.read().decode(errors="replace").strip().splitlines()
        why = [ln for ln in lines if ln.startswith(("email-service:", "CRITICAL"))]
        return (why or lines or [""])[-1][:200]


# --- sampling -----------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out


def log_bytes(log: Path) -> int:
    return sum(f.stat().st_size for f in (log, log.with_name(log.name + "-wal")) if f.exists())


def fd_kinds(pid: int) -> dict[str, int]:
    """The process's open descriptors by kind (from ``/proc/PID/fd`` links)."""
    kinds: dict[str, int] = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return kinds
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:"):
            kind = "socket"
        elif target.endswith(("-wal", "-shm")):
            kind = "sqlite wal/shm"
        elif target.endswith((".sqlite3", ".sqlite", ".db")):
            kind = "sqlite file"
        elif target.startswith("pipe:"):
            kind = "pipe"
        else:
            kind = "other"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def log_used_mb(log: Path) -> float | None:
    try:
        conn = sqlite3.connect(f"file:{log}?mode=ro", uri=True, timeout=10)
        try:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            size = conn.execute("PRAGMA page_size").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return float((pages - free) * size / 1e6)


def checkin_lag(practices: Sequence[Practice], interval: float) -> float | None:
    """Seconds the stalest database's newest check-in is older than the interval."""
    worst: float | None = None
    now = now_utc()
    for p in practices:
        try:
            with p.connect().connect() as conn:
                newest = conn.execute(select(func.max(email_service_checkins.c.checked_in_at)))
                at = newest.scalar_one()
        except Exception:  # a locked or renamed table: that database is skipped this time
            continue
        if at is None:
            continue
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        age = (now - at).total_seconds() - interval
        worst = age if worst is None else max(worst, age)
    return None if worst is None else max(0.0, worst)


@dataclass
class Sample:
    t: float  # seconds since the services started
    up: float  # seconds since this process started
    generation: int  # which process (1 = the first; more after the service died)
    rss_mb: float
    threads: int
    fds: int
    log_mb: float  # the file and its WAL
    log_used_mb: float | None  # SQLite's pages in use (the file keeps freed pages for reuse)
    lag_s: float | None
    fd_kinds: dict[str, int]  # what the descriptors are: sockets, SQLite files, ...
    fd_targets: dict[str, int]  # the same by target path (for finding which file grows)


def sample(service: Service, practices: Sequence[Practice], t: float, interval: float) -> Sample:
    assert service.process is not None
    pid = service.process.pid
    st = proc_status(pid)
    kinds = fd_kinds(pid)
    fds = sum(kinds.values()) if kinds else -1
    return Sample(
        t,
        time.monotonic() - service.started,
        service.generation,
        st.get("VmRSS", 0) / 1024,
        st.get("Threads", 0),
        fds,
        log_bytes(service.log) / 1e6,
        log_used_mb(service.log),
        checkin_lag(practices, interval),
        kinds,
        fd_targets(pid, str(service.root.parent)),
    )


DIAGNOSE_SITE = r"""
# Written by bench/soak.py --diagnose: loaded by every ``serve`` it starts (PYTHONPATH).
import ctypes, gc, json, os, threading, time, tracemalloc

TRACE = os.environ.get("SOAK_DIAG_MODE", "full") == "full"
if TRACE:
    tracemalloc.start(int(os.environ.get("SOAK_TRACE_FRAMES", "1")))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


def _mallinfo() -> dict:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        m = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    return {"malloc_in_use_mb": (m.uordblks + m.hblkhd) / 1e6,
            "malloc_free_mb": m.fordblks / 1e6, "malloc_arena_mb": m.arena / 1e6}


def _types() -> dict:
    counts: dict = {}
    for o in gc.get_objects():
        name = type(o).__qualname__
        counts[name] = counts.get(name, 0) + 1
    return counts


def _loop() -> None:
    path = os.environ["SOAK_DIAG_FILE"]
    every = float(os.environ.get("SOAK_DIAG_SECONDS", "300"))
    base_at = time.monotonic() + float(os.environ.get("SOAK_DIAG_WARMUP", "600"))
    base = None
    base_types = None
    while True:
        time.sleep(every)
        row = {"up": time.monotonic(), "threads": threading.active_count()}
        row.update(_mallinfo())
        if not TRACE:  # glibc's figures only: nothing here holds memory between rows
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(row) + "\n")
            continue
        cur, peak = tracemalloc.get_traced_memory()
        row.update(traced_mb=cur / 1e6, traced_peak_mb=peak / 1e6)
        snap = tracemalloc.take_snapshot()
        types = _types()
        if base is None and time.monotonic() >= base_at:
            base, base_types = snap, types
        if base is not None:
            row["top"] = [str(d) for d in snap.compare_to(base, "lineno")[:25]]
            grew = {k: v - base_types.get(k, 0) for k, v in types.items()}
            row["types_grew"] = sorted(grew.items(), key=lambda kv: -kv[1])[:25]
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")


threading.Thread(target=_loop, name="soak-diagnose", daemon=True).start()
"""
"""With ``--diagnose``: tracemalloc, glibc's malloc figures and object counts by type,
written every few minutes by each serve to ``diagnose-<name>.jsonl`` in the run folder.
``--diagnose malloc``: glibc's figures only. Tracemalloc's traces and the snapshot kept as
the baseline take tens of MB and move the RSS itself, so a run that judges the RSS slope
uses this mode."""


def fd_targets(pid: int, root: str) -> dict[str, int]:
    """The process's open descriptors by target, the run folder's path cut off."""
    out: dict[str, int] = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith(("socket:", "pipe:", "anon_inode:")):
            target = target.split(":")[0]
        out[target.replace(root, "")] = out.get(target.replace(root, ""), 0) + 1
    return out


RESTART_SECONDS = 2.0
"""systemd's RestartSec in deploy/: a serve that exits is started again after this long."""


def restart_dead(services: dict[str, Service], stop: threading.Event) -> None:
    """Do what the service manager does with ``Restart=on-failure``: start a serve that
    exited again, and remember why it exited."""
    while not stop.wait(1.0):
        for name, s in services.items():
            if s.retired or s.process is None or s.alive():
                continue
            up = time.monotonic() - s.started
            s.exits.append(f"exit {s.process.returncode} after {up:.0f} s: {s.last_stderr()}")
            progress(f"serve ({name}) {s.exits[-1]}; starting it again in {RESTART_SECONDS:g} s")
            if stop.wait(RESTART_SECONDS):
                return
            s.start()


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour; None with under 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return sxy / sxx * 3600


# --- faults -------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str
    db: str
    service: str
    started: str
    ended: str = ""
    note: str = ""
    seen: list[str] = field(default_factory=list)


class Faults:
    """Injects the faults; each returns once the fault is over."""

    def __init__(
        self,
        smtp: SmtpServer,
        proxy: FaultProxy,
        dovecot: Dovecot,
        services: dict[str, Service],
        mail: Mail,
    ) -> None:
        self.mail = mail
        self.smtp = smtp
        self.proxy = proxy
        self.dovecot = dovecot
        self.services = services
        self.presses = 0
        self.imap_cuts = 0

    def run(self, kind: str, p: Practice) -> Fault:
        fault = Fault(kind, p.name, p.service, now_utc().isoformat())
        action: dict[str, Callable[[Practice, Fault], None]] = {
            "smtp-restart": self.smtp_restart,
            "imap-cut": self.imap_cut,
            "db-lock": self.db_lock,
            "restart": self.restart,
            "crash": self.crash,
        }
        try:
            action[kind](p, fault)
        except Exception as exc:  # the fault could not be made: say so, go on
            fault.note = f"could not inject: {type(exc).__name__}: {exc}"[:200]
        fault.ended = now_utc().isoformat()
        return fault

    def smtp_restart(self, p: Practice, fault: Fault) -> None:
        self.smtp.stop()
        self.mail.queue_one(p)  # mail queued while the server is down, as happens
        time.sleep(SMTP_DOWN_SECONDS)
        self.smtp.start()
        self.smtp.restarts += 1
        fault.note = f"down {SMTP_DOWN_SECONDS:.0f} s"

    def imap_cut(self, p: Practice, fault: Fault) -> None:
        try:
            self.dovecot.kick(p.user)
            kicked = f"kicked {p.user}"
        except subprocess.CalledProcessError as exc:  # 68: the user had no session
            kicked = f"doveadm kick {p.user}: exit {exc.returncode} (no session)"
        links = len(self.proxy._links)  # the connections open through the proxy now
        self.proxy.cut_all()
        self.imap_cuts += links
        fault.note = f"{kicked}; proxy cut {links} connections"

    def db_lock(self, p: Practice, fault: Fault) -> None:
        if p.kind == "sqlite":
            path = p.url.removeprefix("sqlite:///")
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            try:
                conn.execute("BEGIN EXCLUSIVE")
                time.sleep(LOCK_SECONDS)
                conn.execute("ROLLBACK")
            finally:
                conn.close()
        else:
            with p.connect().connect() as conn:
                conn.execute(
                    text(
                        "LOCK TABLE email_messages, email_service_checkins, email_settings"
                        " IN ACCESS EXCLUSIVE MODE"
                    )
                )
                time.sleep(LOCK_SECONDS)
                conn.rollback()
        fault.note = f"locked {LOCK_SECONDS:.0f} s"

    def restart(self, p: Practice, fault: Fault) -> None:
        service = self.services[p.service]
        self.presses += 1
        if self.presses % 2:
            done = subprocess.run(
                service.command("restart", "--db", p.name),
                cwd=_ROOT,
                capture_output=True,
                timeout=60,
                check=False,
            )
            fault.note = f"email-service restart --db: exit {done.returncode}"
        else:
            url = (
                f"http://127.0.0.1:{service.port}/api/databases/"
                f"{urllib.parse.quote(p.name, safe='')}/restart"
            )
            request = urllib.request.Request(url, method="POST", data=b"")
            with urllib.request.urlopen(request, timeout=30) as answer:
                fault.note = f"POST {url.split('/api')[1]}: HTTP {answer.status}"

    def crash(self, p: Practice, fault: Fault) -> None:
        service = self.services[p.service]
        before = count_events(service.log, p.name, "MailboxCrashed")
        with p.connect().begin() as conn:
            conn.execute(text("ALTER TABLE email_messages RENAME TO email_messages_away"))
        try:
            deadline = time.monotonic() + CRASH_WAIT_SECONDS
            while time.monotonic() < deadline:
                if count_events(service.log, p.name, "MailboxCrashed") > before:
                    break
                time.sleep(0.5)
        finally:
            with p.connect().begin() as conn:
                conn.execute(text("ALTER TABLE email_messages_away RENAME TO email_messages"))
        fault.note = "email_messages renamed away until the mailbox crashed"


def count_events(log: Path, db: str, kind: str) -> int:
    conn = sqlite3.connect(f"file:{log}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute(
            "SELECT count(*) FROM events WHERE stream = ? AND type = ?", (f"db:{db}", kind)
        ).fetchone()
        return int(row[0])
    finally:
        conn.close()


def check_evidence(service: Service, fault: Fault, args: argparse.Namespace) -> None:
    fault.seen = evidence(service, fault, args.timeline)
    progress(f"  {fault.kind} on {fault.db}: {', '.join(fault.seen[:3]) or 'NOTHING'} in the log")


def evidence(service: Service, fault: Fault, timeline: int) -> list[str]:
    """The events ``events replay --db NAME --json`` shows for the fault's window."""
    start = datetime.fromisoformat(fault.started)
    end = datetime.fromisoformat(fault.ended) + timedelta(seconds=EVIDENCE_SLACK_SECONDS)
    done = subprocess.run(
        service.command(
            "events", "replay", "--db", fault.db, "--json", "--timeline", str(timeline)
        ),
        cwd=_ROOT,
        capture_output=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        return [f"(events replay exit {done.returncode})"]
    answer = json.loads(done.stdout)
    seen = []
    for event in answer.get("timeline", []):
        at = datetime.fromisoformat(event["recorded_at"])
        if start <= at <= end and event["type"] in EVIDENCE[fault.kind]:
            seen.append(f"{event['type']} {at.strftime('%H:%M:%S')}")
    return seen


# --- mail ---------------------------------------------------------------------------------


class Mail:
    """Queues outbox rows and delivers incoming messages while the run lasts."""

    def __init__(self, practices: Sequence[Practice], dovecot: Dovecot, seed: int) -> None:
        self.practices = practices
        self.dovecot = dovecot
        self.rng = random.Random(seed)
        self.paused: set[str] = set()  # a database whose outbox table is renamed away
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def queue_one(self, p: Practice | None = None) -> None:
        p = p or self.rng.choice(self.practices)
        if p.name in self.paused:
            return
        n = p.queued + 1
        try:
            with p.connect().begin() as conn:
                conn.execute(
                    insert(email_messages).values(
                        folder="outbox",
                        channel="email",
                        status="queued",
                        to_addrs=f"patient{n}@patients.example",
                        subject=f"Your appointment #{n}",
                        body_text=f"Dear patient,\n\nsee you soon ({p.name}, {n}).\n",
                    )
                )
            p.queued = n
        except Exception as exc:  # locked right now: the practice software would retry
            with self.lock:
                self.errors.append(f"queue {p.name}: {type(exc).__name__}")

    def deliver_one(self) -> None:
        p = self.rng.choice(self.practices)
        mid = f"<soak.{uuid.uuid4().hex}@patients.example>"
        raw = make_message(
            f"Question {len(p.delivered) + 1}",
            sender="Pat Smith <pat@patients.example>",
            to=f"Reception <{FROM_ADDRESS}>",
            message_id=mid,
        )
        try:
            self.dovecot.append(p.user, raw)
            p.delivered.append(mid)
        except Exception as exc:
            with self.lock:
                self.errors.append(f"deliver {p.name}: {type(exc).__name__}")


def outbox_state(p: Practice) -> tuple[dict[str, int], list[str], int, list[str], float]:
    """(rows by status, Message-IDs of sent rows, failed rows without a reason, the rows
    neither sent nor failed described, seconds until the latest of their next attempts)."""
    m = email_messages
    sent_or_outbox = m.c.folder.in_(("outbox", "sent"))  # a sent row moves to "sent"
    with p.connect().connect() as conn:
        by_status = dict(
            conn.execute(
                select(m.c.status, func.count()).where(sent_or_outbox).group_by(m.c.status)
            ).all()
        )
        sent = list(
            conn.execute(
                select(m.c.message_id).where(sent_or_outbox, m.c.status == "sent")
            ).scalars()
        )
        unexplained = conn.execute(
            select(func.count()).where(
                sent_or_outbox,
                m.c.status == "failed",
                func.coalesce(m.c.last_error, "") == "",
            )
        ).scalar_one()
        left = conn.execute(
            select(m.c.id, m.c.status, m.c.attempts, m.c.last_error, m.c.next_attempt_at).where(
                sent_or_outbox, m.c.status.not_in(("sent", "failed"))
            )
        ).all()
    described, wait = [], 0.0
    for row_id, status, attempts, error, next_at in left:
        if next_at is not None:
            at = next_at if next_at.tzinfo else next_at.replace(tzinfo=UTC)
            wait = max(wait, (at - now_utc()).total_seconds())
        described.append(
            f"{p.name} row {row_id}: {status}, {attempts} attempts, next {next_at},"
            f" {(error or 'no reason')[:80]}"
        )
    return by_status, [s for s in sent if s], int(unexplained), described, wait


def imported_ids(p: Practice) -> set[str]:
    m = email_messages
    with p.connect().connect() as conn:
        return set(
            conn.execute(
                select(m.c.message_id).where(
                    m.c.folder.not_in(("outbox", "sent")), m.c.message_id.is_not(None)
                )
            ).scalars()
        )


# --- the run ------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_practices(count: int, prefix: str) -> Iterator[dict[str, str]]:
    if count == 0:
        yield {}
        return
    names = [f"{prefix}_p{i + 1:02d}" for i in range(count)]
    with named_databases(POSTGRES_ADMIN_URL, names) as urls:
        yield urls


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    server_id = f"soak-{run_id}"
    password = "soak-secret-7"
    report: dict[str, Any] = {"machine": machine_info(root), "config": {}}
    smtp = SmtpServer()
    smtp.start()
    dovecot = Dovecot(root / "dovecot")
    services: dict[str, Service] = {}
    practices: list[Practice] = []
    proxy: FaultProxy | None = None
    try:
        n_pg = min(args.postgres, args.databases)
        n_sqlite = args.databases - n_pg
        for i in range(args.databases):
            dovecot.add_user(f"practice{i + 1:02d}", password)
        dovecot.start()
        proxy = FaultProxy(dovecot.host, dovecot.port).start()
        folder = root / "practices"
        folder.mkdir()
        for i in range(n_sqlite):
            name = f"Soak Practice {i + 1:02d}"
            practices.append(
                Practice(
                    name,
                    f"sqlite:///{folder / name}.sqlite3",
                    "sqlite",
                    f"practice{i + 1:02d}",
                    "sqlite",
                )
            )
        with postgres_practices(n_pg, f"soak_{run_id}") as pg_urls:
            for j, (name, url) in enumerate(sorted(pg_urls.items())):
                user = f"practice{n_sqlite + j + 1:02d}"
                practices.append(Practice(name, url, "postgresql", user, "postgresql"))
            progress(f"making {n_sqlite} SQLite and {n_pg} PostgreSQL practice databases")
            for p in practices:
                configure(p, smtp, proxy.port, password, server_id)
            if n_sqlite:
                services["sqlite"] = Service(root, "sqlite", f"sqlite:///{folder}", server_id, args)
            if n_pg:
                pg_server = server_url(POSTGRES_ADMIN_URL)
                services["postgresql"] = Service(root, "postgresql", pg_server, server_id, args)
            report["config"] = {
                "minutes": args.minutes,
                "sqlite": n_sqlite,
                "postgresql": n_pg,
                "checkin_seconds": args.checkin_seconds,
                "retention": args.retention.strip() or "(no retention settings in this code)",
                "retention_horizon_s": retention_horizon_seconds(args.retention),
                "fault_every": args.fault_every,
                "sample_seconds": args.sample_seconds,
                "warmup_minutes": args.warmup_minutes,
            }
            report.update(soak(args, practices, services, smtp, proxy, dovecot))
    finally:
        for s in services.values():
            s.stop()
        for p in practices:
            if p.engine is not None:
                p.engine.dispose()
        if proxy is not None:
            proxy.stop()
        dovecot.remove()
        smtp.stop()
    return report


def soak(
    args: argparse.Namespace,
    practices: list[Practice],
    services: dict[str, Service],
    smtp: SmtpServer,
    proxy: FaultProxy,
    dovecot: Dovecot,
) -> dict[str, Any]:
    for s in services.values():
        s.start()
    began = time.monotonic()
    end = began + args.minutes * 60
    progress(f"serving {len(practices)} databases for {args.minutes:g} min")
    mail = Mail(practices, dovecot, 20261202)
    faults = Faults(smtp, proxy, dovecot, services, mail)
    samples: dict[str, list[Sample]] = {name: [] for name in services}
    done_faults: list[Fault] = []
    stop = threading.Event()

    def mail_loop() -> None:
        while not stop.wait(args.queue_every):
            mail.queue_one()
            if mail.rng.random() < 0.5:
                mail.deliver_one()

    checkers: list[threading.Timer] = []

    def fault_loop() -> None:
        order = 0
        sqlite_ps = [p for p in practices if p.kind == "sqlite"]
        pg_ps = [p for p in practices if p.kind == "postgresql"]
        if stop.wait(60):
            return
        while time.monotonic() < end - args.fault_every / 2 - 30:
            kind = FAULT_KINDS[order % len(FAULT_KINDS)]
            pool = pg_ps if (order % 2 and pg_ps) or not sqlite_ps else sqlite_ps
            p = pool[(order // 2) % len(pool)]
            order += 1
            if kind == "crash":
                mail.paused.add(p.name)
            progress(f"fault {order}: {kind} on {p.name}")
            fault = faults.run(kind, p)
            mail.paused.discard(p.name)
            done_faults.append(fault)
            if fault.note.startswith("could not"):
                progress(f"  {fault.note}")
            # Looked for once the fault's window has passed, while the run goes on: the
            # shortened retention would have pruned it by the end of the run.
            checker = threading.Timer(
                EVIDENCE_SLACK_SECONDS, check_evidence, (services[fault.service], fault, args)
            )
            checker.daemon = True
            checker.start()
            checkers.append(checker)
            if stop.wait(args.fault_every):
                return

    threads = [
        threading.Thread(target=mail_loop, name="soak-mail", daemon=True),
        threading.Thread(target=fault_loop, name="soak-faults", daemon=True),
    ]
    for t in threads:
        t.start()
    next_sample = began + 5
    watcher = threading.Thread(
        target=restart_dead, args=(services, stop), name="soak-systemd", daemon=True
    )
    watcher.start()
    while time.monotonic() < end:
        time.sleep(max(0.0, min(next_sample, end) - time.monotonic()))
        for name, s in services.items():
            if not s.alive():
                continue
            own = [p for p in practices if p.service == name]
            got = sample(s, own, time.monotonic() - began, args.checkin_seconds)
            samples[name].append(got)
            progress(f"{name}: fds {' '.join(f'{k} {v}' for k, v in sorted(got.fd_kinds.items()))}")
            progress(
                f"{name}: t={got.t / 60:4.1f} min RSS {got.rss_mb:.1f} MB, {got.threads} threads,"
                f" {got.fds} fds, log {got.log_mb:.2f} MB ({_num(got.log_used_mb)} MB in use),"
                f" lag {_num(got.lag_s)} s"
            )
        next_sample += args.sample_seconds
    stop.set()
    watcher.join(timeout=30)
    for t in threads:
        t.join(timeout=LOCK_SECONDS + CRASH_WAIT_SECONDS + SMTP_DOWN_SECONDS + 30)
    progress(f"queueing stopped; draining the outboxes (at most {args.drain_seconds:.0f} s)")
    drain_until = time.monotonic() + args.drain_seconds
    while time.monotonic() < drain_until:
        states = [outbox_state(p) for p in practices]
        waiting = sum(len(state[3]) for state in states)
        if waiting == 0:
            break
        # Rows that failed while the server was down wait for their backed-off retry.
        retry_in = max(state[4] for state in states)
        progress(f"  {waiting} rows not yet sent; the latest retry is due in {retry_in:.0f} s")
        time.sleep(min(10.0, max(2.0, retry_in)))
    # The inbox imports what was delivered last within a poll or an IDLE wake-up.
    time.sleep(max(args.checkin_seconds, 5.0) * 2)
    exit_codes = {name: s.stop() for name, s in services.items()}
    progress("checking mail and the log")
    received = smtp.message_ids()
    received_set = {i for i in received if i}
    duplicates = len(received) - len(set(received))
    lost: dict[str, Any] = {
        "queued": 0,
        "sent": 0,
        "failed": 0,
        "other": 0,
        "failed_without_reason": 0,
        "sent_not_received": [],
        "delivered": 0,
        "not_imported": [],
        "left": [],
    }
    for p in practices:
        by_status, sent_ids, unexplained, left, _wait = outbox_state(p)
        lost["left"] += left
        lost["queued"] += sum(by_status.values())
        lost["sent"] += by_status.get("sent", 0)
        lost["failed"] += by_status.get("failed", 0)
        lost["other"] += sum(n for s, n in by_status.items() if s not in ("sent", "failed"))
        lost["failed_without_reason"] += unexplained
        lost["sent_not_received"] += [f"{p.name} {i}" for i in sent_ids if i not in received_set]
        imported = imported_ids(p)
        lost["delivered"] += len(p.delivered)
        lost["not_imported"] += [f"{p.name} {i}" for i in p.delivered if i not in imported]
    lost["smtp_messages"] = len(received)
    lost["smtp_duplicates"] = duplicates
    lost["queue_errors"] = len(mail.errors)
    for checker in checkers:
        checker.join(timeout=600)
    diagnose: dict[str, list[dict[str, Any]]] = {}
    for name, s in services.items():
        path = s.root / f"diagnose-{name}.jsonl"
        if path.exists():
            lines = path.read_text(encoding="utf-8").splitlines()
            diagnose[name] = [json.loads(line) for line in lines if line.strip()]
    return {
        "diagnose": diagnose,
        "samples": {k: [asdict(s) for s in v] for k, v in samples.items()},
        "faults": [asdict(f) for f in done_faults],
        "mail": lost,
        "exit_codes": exit_codes,
        "exits": {name: s.exits for name, s in services.items()},
        "smtp_restarts": smtp.restarts,
        "imap_cuts": faults.imap_cuts,
    }


# --- the report ---------------------------------------------------------------------------


def judged(report: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    warm = report["config"]["warmup_minutes"] * 60
    for name, every in report["samples"].items():
        # The last process only (a dead serve is started again): its samples after warm-up.
        last = max((s["generation"] for s in every), default=0)
        raw = [s for s in every if s["generation"] == last and s["up"] >= warm]
        after = raw
        if not after:
            rows.append(Row(f"{name}: samples after warm-up", "none", "-", "-", "-", "MISS"))
            continue
        for key, label, unit in (
            ("threads", "threads", ""),
            ("fds", "open fds", ""),
            ("rss_mb", "RSS", " MB"),
            ("log_mb", "event log file + WAL", " MB"),
            ("log_used_mb", "event log bytes in use", " MB"),
            ("lag_s", "check-in lag", " s"),
        ):
            since = warm
            if key.startswith("log"):
                horizon = report["config"]["retention_horizon_s"]
                since = max(warm, horizon if horizon is not None else 0.0)
                label += (
                    " (no retention in this code)"
                    if horizon is None
                    else f" after retention's horizon, {since / 60:.1f} min"
                )
            points = [
                (s["t"], float(s[key])) for s in raw if s[key] is not None and s["up"] >= since
            ]
            slope = slope_per_hour(points)
            mean = sum(y for _, y in points) / len(points) if points else 0.0
            last = points[-1][1] if points else 0.0
            slope_s = "-" if slope is None else f"{slope:+.2f}{unit}/h"
            if key == "rss_mb":
                target = f"< {TARGET_RSS_MB_PER_HOUR:g} MB/h"
                ok = slope is not None and slope < TARGET_RSS_MB_PER_HOUR
            elif key in ("lag_s", "log_mb"):
                target, ok = "info", None
            else:
                what = "its size" if key.startswith("log") else "its mean"
                target = f"24 h growth < 10 % of {what}"
                ok = slope is not None and slope * 24 < TREND_SHARE_PER_DAY * max(mean, 1e-9)
            rows.append(
                Row(
                    f"{name}: {label} ({_num(points[0][1] if points else None)} ->"
                    f" {_num(last)}{unit})",
                    slope_s,
                    f"{mean:.1f}{unit} mean",
                    "-" if slope is None or not mean else f"{slope * 24 / mean:+.1%}/day",
                    target,
                    "" if ok is None else "n/a" if slope is None else "PASS" if ok else "MISS",
                )
            )
    for name, exits in report["exits"].items():
        rows.append(
            Row(
                f"{name}: serve exits during the run (started again)",
                str(len(exits)),
                "-",
                "-",
                "0",
                "PASS" if not exits else "MISS",
            )
        )
    m = report["mail"]
    mail_ok = (
        m["other"] == 0
        and m["failed_without_reason"] == 0
        and not m["sent_not_received"]
        and not m["not_imported"]
    )
    rows.append(
        Row(
            "mail: queued rows sent / failed / left",
            f"{m['sent']} / {m['failed']} / {m['other']}",
            f"{m['queued']} queued",
            "-",
            "all sent or failed",
            "PASS" if m["other"] == 0 and m["failed_without_reason"] == 0 else "MISS",
        )
    )
    rows.append(
        Row(
            "mail: sent rows the SMTP server never got",
            str(len(m["sent_not_received"])),
            f"{m['smtp_messages']} received",
            "-",
            "0",
            "PASS" if not m["sent_not_received"] else "MISS",
        )
    )
    rows.append(
        Row(
            "mail: delivered messages not imported",
            str(len(m["not_imported"])),
            f"{m['delivered']} delivered",
            "-",
            "0",
            "PASS" if not m["not_imported"] else "MISS",
        )
    )
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for f in report["faults"]:
        by_kind.setdefault(f["kind"], []).append(f)
    for kind in FAULT_KINDS:
        fs = by_kind.get(kind, [])
        seen = sum(1 for f in fs if f["seen"] and not f["seen"][0].startswith("("))
        rows.append(
            Row(
                f"fault {kind}: visible in events replay",
                f"{seen} of {len(fs)}",
                "-",
                "-",
                "every one",
                ("PASS" if seen == len(fs) else "MISS") if fs else "not run",
            )
        )
    report["mail_ok"] = mail_ok
    return rows


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}".removesuffix(".0")


def print_report(report: dict[str, Any]) -> None:
    print_machine(report["machine"])
    c = report["config"]
    print(
        f"config: {c['minutes']:g} min, {c['sqlite']} SQLite + {c['postgresql']} PostgreSQL"
        f" practice databases (two serve processes), check-in {c['checkin_seconds']:g} s,"
        f" a fault every {c['fault_every']:g} s, samples every {c['sample_seconds']:g} s,"
        f" slopes after {c['warmup_minutes']:g} min; retention: "
        + c["retention"].replace("\n", " ")
    )
    for name, code in report["exit_codes"].items():
        print(
            f"serve ({name}): exit {code} at the end"
            + "".join(f"; died during the run, started again: {e}" for e in report["exits"][name])
        )
    for name, every in report["samples"].items():
        if every:
            first, last = every[0], every[-1]

            def kinds(sample: dict[str, Any]) -> str:
                return ", ".join(f"{k} {v}" for k, v in sorted(sample["fd_kinds"].items()))

            print(
                f"serve ({name}) descriptors: {kinds(first)} at {first['t'] / 60:.1f} min;"
                f" {kinds(last)} at {last['t'] / 60:.1f} min"
            )
    for name, every in report["samples"].items():
        last_gen = max((x["generation"] for x in every), default=0)
        warm = c["warmup_minutes"] * 60
        after = [x for x in every if x["generation"] == last_gen and x["up"] >= warm]
        if len(after) >= 2:
            a, b = after[0]["fd_targets"], after[-1]["fd_targets"]
            grew = {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}
            moved = ", ".join(f"{k} {v:+d}" for k, v in sorted(grew.items()) if v)
            print(f"serve ({name}) descriptors by target after warm-up: {moved or 'no change'}")
    for name, rows in report.get("diagnose", {}).items():
        for row in rows:
            traced = row.get("traced_mb")
            print(
                f"serve ({name}) memory, {(row['up'] - rows[0]['up']) / 60 + 5:.0f} min:"
                + ("" if traced is None else f" traced {traced:.1f} MB (Python objects),")
                + f" malloc in use {row.get('malloc_in_use_mb', 0):.1f} MB,"
                f" malloc free {row.get('malloc_free_mb', 0):.1f} MB, threads {row['threads']}"
            )
        if rows and "top" in rows[-1]:
            print(f"serve ({name}) Python allocations grown since warm-up (tracemalloc):")
            for line in rows[-1]["top"][:15]:
                print(f"    {line}")
            print(
                "    objects by type grown: "
                + ", ".join(f"{k} {v:+d}" for k, v in rows[-1]["types_grew"][:15])
            )
    m = report["mail"]
    print(
        f"mail: {m['queued']} rows queued, SMTP server got {m['smtp_messages']} messages"
        f" ({m['smtp_duplicates']} duplicates), {m['delivered']} delivered to IMAP;"
        f" {m['queue_errors']} queue/deliver attempts refused (locked database);"
        f" SMTP restarts {report['smtp_restarts']}, IMAP connections cut {report['imap_cuts']}"
    )
    for row in m["left"]:
        print(f"  left in the outbox: {row}")
    for f in report["faults"]:
        print(
            f"  {f['started'][11:19]} {f['kind']:<12} {f['db']:<28} {f['note']};"
            f" seen: {', '.join(f['seen'][:4]) or 'NOTHING'}"
        )
    print_table(judged(report))
    print(
        "A short run cannot show a slow leak or a log bounded over days: its slopes rest on"
        " few samples, and the log reaches its bound only if retention acts within the run."
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0, help="length of the run (30)")
    p.add_argument("--databases", type=int, default=50, help="practice databases (50)")
    p.add_argument("--postgres", type=int, default=10, help="of which on PostgreSQL (10)")
    p.add_argument("--checkin-seconds", type=float, default=5.0, help="health.checkin_seconds")
    p.add_argument("--fault-every", type=float, default=60.0, help="seconds between faults")
    p.add_argument("--sample-seconds", type=float, default=60.0, help="seconds between samples")
    p.add_argument("--warmup-minutes", type=float, help="slopes start here (default M/4, <= 5)")
    p.add_argument("--queue-every", type=float, default=2.0, help="seconds between queued rows")
    p.add_argument(
        "--drain-seconds", type=float, default=240.0, help="longest outbox drain at the end (240)"
    )
    p.add_argument("--timeline", type=int, default=100_000, help=argparse.SUPPRESS)
    p.add_argument("--dir", type=Path, help="temp files here (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument(
        "--diagnose",
        nargs="?",
        const="full",
        choices=("full", "malloc"),
        help="each serve writes memory figures to the run folder: 'full' (the default) with"
        " tracemalloc and object counts, 'malloc' glibc's figures only (the RSS unmoved)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.warmup_minutes is None:
        args.warmup_minutes = min(5.0, args.minutes / 4)
    args.retention = retention_config()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="soak-", dir=args.dir))
    os.chmod(root, 0o755)
    try:
        report = run(args, root)
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
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
