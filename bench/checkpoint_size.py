"""Checkpoint benchmark: the start-up state's size and read time for crash-looping databases.

Run it as ``.venv/bin/python bench/checkpoint_size.py [--databases D] [--cycles N] [--json]``
(defaults: 1,000 databases, 300 failure cycles each).

Two logs are built in one run (temporary SQLite files, removed at the end), each through
the real store (``SqlEventStore.append_async``, group commits on a clock this script sets),
both with the same number of events per database:

- **healthy** (the baseline): per database ``DatabaseDiscovered`` and ``MailboxStarted``,
  then a ``SelfTestPassed`` every 15 s;
- **crash-looping**: per database the events the supervisor writes for a mailbox that keeps
  failing, decided by the real restart policy (``supervisor.restart_policy`` with the default
  ``[supervision]`` settings): ``MailboxStarted``, then ``MailboxCrashed`` (or, one in ten,
  ``CheckInMissed``: a hang) after a run of 2 s, 20 s or 120 s (fixed per database, so some
  give up and retry every ``backoff_max`` and some restart at once for ever), then
  ``RestartScheduled`` or ``MailboxGaveUp`` (``give_up_again`` while a give-up lasts), and
  about every 40th cycle a Restart pressed (``RestartRequested`` with a command id,
  ``MailboxStopped``, ``RestartScheduled``).

For each log, as the service does it: the first start folds the whole log
(``events.snapshot.read_memory``, with the supervisor's restart window where the code takes
one) and stores the checkpoint (``save_memory``, what the log keeper does); one check-in per
database is then appended after it. Figures, each phase in its own subprocess of this
interpreter (so its peak RSS, ``VmHWM``, is its own):

- the checkpoint row's bytes;
- read+decode: ``events.snapshot.load_checkpoint`` (the row read and decoded), median of 3;
- the start-up read: ``read_memory`` (the checkpoint plus the rows after it): seconds
  (median of 3), rows read after the checkpoint, peak RSS;
- the first fold (the whole log, no checkpoint): seconds and peak RSS.

Each crash-looping figure is printed beside the healthy one, as a ratio.
"""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH_DIR = Path(__file__).resolve().parent
_ROOT = _BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import heapq  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from events.recorded import Recorded  # noqa: E402
from events.snapshot import MEMORY_CHECKPOINT, load_checkpoint, read_memory, save_memory  # noqa: E402
from events.sql_store import SqlEventStore  # noqa: E402
from events.store import ANY, PendingAppend  # noqa: E402
from events.types import (  # noqa: E402
    CheckInMissed,
    DatabaseDiscovered,
    Event,
    MailboxCrashed,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    RestartRequested,
    RestartScheduled,
    SelfTestPassed,
)
from supervisor.restart_policy import (  # noqa: E402
    GiveUp,
    RestartPolicy,
    decide,
    decide_requested,
    give_up_again,
)

POLICY = RestartPolicy(5, 60.0, 1.0, 300.0)  # config/default.toml [supervision]
CHECKIN_SECONDS = 15.0
RUNS = (2.0, 20.0, 120.0)  # how long a database's mailbox lives before it fails
PRESSED_EVERY = 40  # cycles between two Restarts pressed
SLICE_SECONDS = 30.0  # one commit per 30 simulated seconds
SEED = 11

Timed = tuple[float, int, str, Event]  # (seconds from start, order, stream, event)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class SetClock:
    """The store's clock: reads the time this script set (the simulated commit time)."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return time.monotonic()


def crash_loop(db: int, cycles: int, start: datetime, rng: random.Random) -> list[Timed]:
    """One database's events over ``cycles`` failures, decided by the real policy."""
    stream = f"db:Practice {db:04d}"
    run = RUNS[db % len(RUNS)]
    out: list[Timed] = []
    n = 0

    def emit(t: float, e: Event) -> Recorded:
        nonlocal n
        n += 1
        out.append((t, n, stream, e))
        return Recorded(0, stream, n, start + timedelta(seconds=t), e)

    history: list[Recorded] = []
    t = rng.uniform(0, 60)
    emit(t, DatabaseDiscovered(f"Practice {db:04d}", "eligible"))
    incarnation = 1
    history.append(emit(t, MailboxStarted(incarnation)))
    started = t
    gave_up: MailboxGaveUp | None = None
    command = db * 1_000_000
    for cycle in range(cycles):
        t += run
        now = start + timedelta(seconds=t)
        if cycle % PRESSED_EVERY == PRESSED_EVERY - 1:
            command += 1
            history.append(emit(t, RestartRequested("cli", "ann", command)))
            emit(t, MailboxStopped(incarnation, "restart requested"))
            d = decide_requested(POLICY, history, now)
            history.append(emit(t, RestartScheduled(d.delay, d.cause, d.attempt)))
            gave_up = None
            delay = 0.0
        else:
            hung = rng.random() < 0.1
            emit(
                t,
                CheckInMissed(incarnation, 30.0) if hung else MailboxCrashed(incarnation, "x", ""),
            )
            cause = "hung" if hung else "crashed"
            again = None
            if gave_up is not None:
                again = give_up_again(POLICY, gave_up, start + timedelta(seconds=started), now)
                if again is None:
                    gave_up = None
            decision = again or decide(POLICY, history, now, rng.random(), cause)
            if isinstance(decision, GiveUp):
                gave_up = MailboxGaveUp(
                    decision.restarts, decision.within_seconds, decision.retry_in
                )
                history.append(emit(t, gave_up))
                delay = decision.retry_in
            else:
                e = RestartScheduled(decision.delay, cause, decision.attempt)
                history.append(emit(t, e))
                delay = decision.delay
        t += delay
        incarnation += 1
        history.append(emit(t, MailboxStarted(incarnation)))
        started = t
        since = start + timedelta(seconds=t - POLICY.within_seconds)
        history = [r for r in history if r.recorded_at > since]
    return out


def healthy(db: int, events: int, rng: random.Random) -> list[Timed]:
    """One healthy database: discovered, started, then a passed check-in every 15 s."""
    stream = f"db:Practice {db:04d}"
    t = rng.uniform(0, CHECKIN_SECONDS)
    out: list[Timed] = [
        (t, 1, stream, DatabaseDiscovered(f"Practice {db:04d}", "eligible")),
        (t, 2, stream, MailboxStarted(1)),
    ]
    for i in range(events - 2):
        t += CHECKIN_SECONDS
        out.append((t, i + 3, stream, SelfTestPassed(1, ("database",))))
    return out


def build(url: str, per_db: list[list[Timed]], start: datetime) -> dict[str, Any]:
    """Append every database's events in time order, one commit per 30 simulated seconds."""
    clock = SetClock(start)
    store = SqlEventStore(url, clock=clock)
    merged: Iterator[Timed] = heapq.merge(*per_db)
    written = 0
    began = time.perf_counter()
    try:
        slice_end: float | None = None
        batch: dict[str, list[Event]] = {}
        pending: PendingAppend | None = None

        def flush() -> None:
            nonlocal pending, batch
            if slice_end is not None:
                clock.at = start + timedelta(seconds=slice_end)
            for stream, evs in batch.items():
                pending = store.append_async(stream, ANY, evs)
            if pending is not None:
                pending.result()
            batch = {}

        for t, _n, stream, e in merged:
            if slice_end is None or t >= slice_end:
                flush()
                slice_end = (t // SLICE_SECONDS + 1) * SLICE_SECONDS
            batch.setdefault(stream, []).append(e)
            written += 1
        flush()
    finally:
        store.close()
    return {"events": written, "build_seconds": time.perf_counter() - began}


def _read_kwargs() -> dict[str, Any]:
    """The supervisor's restart window, where this code's ``read_memory`` takes one."""
    if "window_seconds" in inspect.signature(read_memory).parameters:
        return {"window_seconds": POLICY.within_seconds}
    return {}


def phase(kind: str, url: str) -> dict[str, Any]:
    """One measured phase (run in a subprocess of its own)."""
    store = SqlEventStore(url)
    out: dict[str, Any] = {}
    try:
        if kind == "first":
            began = time.perf_counter()
            memory = read_memory(store, **_read_kwargs())
            save_memory(store, memory)
            out["seconds"] = time.perf_counter() - began
            out["histories"] = sum(len(h) for h in memory.histories.values())
        elif kind == "decode":
            stored = store.load_checkpoint(MEMORY_CHECKPOINT)
            assert stored is not None
            out["bytes"] = len(stored[1])
            times = []
            for _ in range(3):
                began = time.perf_counter()
                m = load_checkpoint(store)
                times.append(time.perf_counter() - began)
                assert m is not None
            out["seconds"] = statistics.median(times)
        elif kind == "start":
            times, rows = [], []
            for _ in range(3):
                counted: list[int] = []
                began = time.perf_counter()
                read_memory(store, on_rows=counted.append, **_read_kwargs())
                times.append(time.perf_counter() - began)
                rows.append(sum(counted))
            out["seconds"] = statistics.median(times)
            out["rows"] = rows[0]
    finally:
        store.close()
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``: its own, whereas ``ru_maxrss`` of a
    child started by ``fork`` counts its parent's peak too)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_phase(kind: str, url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", kind, "--url", url],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def scenario(folder: Path, name: str, per_db: list[list[Timed]], start: datetime) -> dict[str, Any]:
    url = f"sqlite:///{folder / (name + '.sqlite')}"
    progress(f"{name}: building the log ({sum(len(x) for x in per_db):,} events)")
    built = build(url, per_db, start)
    progress(f"{name}: built in {built['build_seconds']:.0f} s; first start (whole fold)")
    first = run_phase("first", url)
    end = max(x[-1][0] for x in per_db) + CHECKIN_SECONDS
    tail: list[list[Timed]] = [
        [(end, 0, x[0][2], SelfTestPassed(1, ("database",)))] for x in per_db
    ]
    build(url, tail, start)  # the rows a start-up reads after the checkpoint
    progress(f"{name}: measuring the checkpoint and the start-up read")
    return {
        "built": built,
        "first": first,
        "decode": run_phase("decode", url),
        "start": run_phase("start", url),
    }


def ratio(ours: float, base: float) -> str:
    return f"{ours / base:.1f}x" if base else "-"


def print_report(report: dict[str, Any]) -> None:
    loop, base = report["crash_looping"], report["healthy"]
    rows = [
        ("events in the log", "built", "events", "{:,.0f}"),
        ("checkpoint row, bytes", "decode", "bytes", "{:,.0f}"),
        ("checkpoint read+decode, s", "decode", "seconds", "{:.3f}"),
        ("start-up read, s", "start", "seconds", "{:.3f}"),
        ("start-up read, rows after the checkpoint", "start", "rows", "{:,.0f}"),
        ("start-up read, peak RSS MB", "start", "peak_rss_mb", "{:.0f}"),
        ("history events in the memory", "first", "histories", "{:,.0f}"),
        ("first start (whole fold + save), s", "first", "seconds", "{:.2f}"),
        ("first start, peak RSS MB", "first", "peak_rss_mb", "{:.0f}"),
    ]
    print(f"databases: {report['databases']}, failure cycles each: {report['cycles']}")
    print(f"{'figure':44} {'crash-looping':>14} {'healthy':>14} {'ratio':>8}")
    for label, part, key, fmt in rows:
        a, b = loop[part][key], base[part][key]
        print(f"{label:44} {fmt.format(a):>14} {fmt.format(b):>14} {ratio(a, b):>8}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--databases", type=int, default=1000)
    p.add_argument("--cycles", type=int, default=300)
    p.add_argument("--json", action="store_true", help="print the figures as JSON too")
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.phase:
        print(json.dumps(phase(args.phase, args.url)))
        return 0
    rng = random.Random(SEED)
    start = datetime.now(UTC) - timedelta(days=30)
    loops = [crash_loop(i + 1, args.cycles, start, rng) for i in range(args.databases)]
    per_db_events = round(statistics.mean(len(x) for x in loops))
    calm = [healthy(i + 1, per_db_events, rng) for i in range(args.databases)]
    report: dict[str, Any] = {"databases": args.databases, "cycles": args.cycles}
    with tempfile.TemporaryDirectory(prefix="checkpoint-bench-") as tmp:
        report["healthy"] = scenario(Path(tmp), "healthy", calm, start)
        report["crash_looping"] = scenario(Path(tmp), "crash_looping", loops, start)
    print_report(report)
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
