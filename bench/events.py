"""Event store benchmark: our SQLite event store against the ``eventsourcing`` library.

Run it as ``.venv/bin/python bench/events.py [--events N] [--baseline-events M] [--json]``.

What is measured, all in one run, on one machine, on one disk (temporary files in the
same folder, removed at the end):

1. **Durable append** (ours). N pre-generated events of the service's real types and
   mix (about 200 practice streams ``db:Practice NNN`` and a few ``service`` events)
   are appended to a fresh SQLite file through ``events.sql_store.SqlEventStore`` by 4
   producer threads, as mailbox actors would: one event per ``append_async``, and after
   every window of 250 appends the producer waits for the window's last ``result()``
   (and checks the rest), so every counted event was committed when it was counted.
   Generation is done before the clock starts; encoding is inside the timing (it runs
   in ``append_async``). Figure: N / (first append to last result).
2. **Replay+fold** (ours). A child process (this script with a hidden flag, so its
   peak resident memory is the replay's own and not the parent's pre-generated events)
   opens the file and runs ``events.replay.replay_store``. Figures: events/s, and the
   child's peak RSS at the end, which includes the interpreter and SQLAlchemy (the
   RSS before the replay is printed beside it). The peak is ``VmHWM`` from
   ``/proc/self/status``, not ``ru_maxrss``: Linux carries the parent's resident size
   at fork over into the child's ``ru_maxrss`` (it would read about 335 MB for a
   million events, all the parent's), so ``ru_maxrss`` is printed for information only.
   The child returns a checksum (events read, databases folded, last ``seq``, records
   skipped) that the parent checks; a wrong checksum stops the run with an error.
3. **Baseline** (``eventsourcing`` with its SQLite persistence, the pinned version):
   (a) ``Application.save`` of one new aggregate event per call, M calls, round-robin
   over 200 aggregates, one thread (``save`` is synchronous: it returns once committed);
   (a') the same with ``PRAGMA synchronous=NORMAL`` put on its connections, for
   information only; (b) its recorder's ``insert_events`` with batches of 100 stored
   events, 5*M events (the stored events are built with the application's mapper before
   the clock starts, so only the inserts are timed); (c) reading its whole log back in
   pages of 5,000 with ``select_notifications`` and decoding every record with
   ``mapper.to_domain_event``.

Why it is fair: both sides commit durably before an event is counted, on the same disk
in the same run, and both use SQLite in WAL mode. Ours sets ``synchronous=NORMAL`` (a
commit survives the process being killed; a power cut may lose the last commits).
``eventsourcing`` 9.5 opens connections with ``isolation_level=None`` (it issues
``BEGIN`` itself), sets ``PRAGMA journal_mode=WAL`` and leaves ``synchronous`` at
SQLite's default, which is FULL (2): every commit fsyncs the WAL. That makes its
per-event commits slower, so row (a') shows its save with NORMAL too. Its events carry
a similar payload (a message id string and two ints, plus its own timestamp), encoded as
JSON by its default transcoder; ours are msgpack. The page cache is warm on both read
sides (each file was just written). Our producers are 4 threads sharing one group-commit
writer; its save is measured the way it is meant to be called, one call per event.
"""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH_DIR = Path(__file__).resolve().parent
_ROOT = _BENCH_DIR.parent
# This file is named events.py: take its own folder off the import path, or
# ``import events`` would find this script instead of the project's package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from importlib import metadata  # noqa: E402
from typing import Any  # noqa: E402

from bench import _report  # noqa: E402
from bench._report import Row, print_machine, print_table  # noqa: E402
from events.codec import DEFAULT_CODEC  # noqa: E402
from events.replay import replay_store  # noqa: E402
from events.sql_store import SqlEventStore  # noqa: E402
from events.store import ANY, PendingAppend  # noqa: E402
from events.types import (  # noqa: E402
    SERVICE_STREAM,
    CheckInWritten,
    DatabaseDiscovered,
    Diagnostic,
    Event,
    InboxSynced,
    MailboxCrashed,
    MailboxStarted,
    MessageReceived,
    MessageSent,
    RestartScheduled,
    SelfTestFailed,
    SelfTestPassed,
    ServiceStarted,
    ServiceStopping,
    stream_for,
)

PRODUCERS = 4
WINDOW = 250
STREAMS = 200
BATCH_SIZE = 100
READ_PAGE = 5_000
SERVICE_RESTART_EVERY = 250_000
SEED = 20260105

TARGET_APPEND_PER_S = 50_000
TARGET_APPEND_VS_SAVE = 10.0
TARGET_REPLAY_PER_S = 500_000
TARGET_REPLAY_MILLION_S = 3.0
TARGET_REPLAY_RSS_MB = 150.0

Item = tuple[str, Event]


def log(message: str) -> None:
    """Print progress to stderr, so ``--json`` keeps stdout to the one object."""
    print(message, file=sys.stderr, flush=True)


# --- the workload --------------------------------------------------------------------

_DOMAINS = (
    "smile-dental",
    "parkside-dental",
    "riverside-ortho",
    "old-town-dentists",
    "brightwater-dental",
    "kingsway-dental-care",
    "harbour-family-dentistry",
    "elm-street-smiles",
)
_COMPONENTS = ("database", "smtp", "imap")
_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+_-"
_FAILURES = (  # (component, message of about 80 characters)
    ("smtp", "SMTP AUTH failed for {d}.example: 535 5.7.8 authentication credentials invalid"),
    ("imap", "IMAP connect to mail.{d}.example:993 timed out after 30 s (no route to host)"),
    ("database", "practice database did not answer within 10 s: login timeout expired (HYT00)"),
)
_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "actors/mailbox.py", line 212, in _poll_inbox\n'
    '  File "imapclient/imapclient.py", line 1719, in _command_and_check\n'
    "ConnectionResetError: [Errno 104] Connection reset by peer"
)

# (kind, weight): a crash writes three events (crashed, restart scheduled, started),
# so the shares of events are 35/25/10/20/5 % mail and health, 5 % lifecycle.
_MIX: tuple[tuple[str, int], ...] = (
    ("sent", 35),
    ("received", 25),
    ("synced", 10),
    ("passed", 20),
    ("checkin", 5),
    ("failed", 2),
    ("crash", 1),
)


@dataclass
class _Mailbox:
    """What one practice's generator remembers between its events."""

    stream: str
    domain: str
    uidvalidity: int
    incarnation: int = 1
    row_id: int = 0
    last_uid: int = 0
    checkin_id: int = 0


class _Generator:
    """Makes events of the service's real types in a realistic order per stream."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self.count = 0
        self.makers: dict[str, Callable[[_Mailbox], tuple[Event, ...]]] = {
            "sent": self.sent,
            "received": self.received,
            "synced": self.synced,
            "passed": self.passed,
            "checkin": self.checkin,
            "failed": self.failed,
            "crash": self.crash,
        }

    def message_id(self, domain: str) -> str:
        when = self.start + timedelta(seconds=self.count // 4)
        return f"<{when:%Y%m%d%H%M%S}.{self.rng.getrandbits(32):08x}@{domain}.example>"

    def sent(self, m: _Mailbox) -> tuple[Event, ...]:
        m.row_id += 1
        recipients = 1 if self.rng.random() < 0.9 else 2
        return (MessageSent(m.incarnation, m.row_id, self.message_id(m.domain), recipients),)

    def received(self, m: _Mailbox) -> tuple[Event, ...]:
        m.row_id += 1
        m.last_uid += 1
        return (
            MessageReceived(
                m.incarnation, m.row_id, self.incoming_id(m.domain), m.uidvalidity, m.last_uid
            ),
        )

    def incoming_id(self, domain: str) -> str:
        """Return a message id in the style of the sender's mail system."""
        rng = self.rng
        style = rng.random()
        if style < 0.4:  # Gmail
            token = "".join(rng.choices(_BASE64, k=52))
            return f"<CA{token}@mail.gmail.com>"
        if style < 0.7:  # Outlook / Exchange Online
            box = f"{rng.choice(('AM0PR04', 'DB9PR07', 'LO2P265'))}MB{rng.randrange(10**4):04d}"
            return f"<{box}{rng.getrandbits(48):012X}@{box}.eurprd04.prod.outlook.com>"
        return self.message_id(rng.choice(("nhs-mail", "dental-lab", domain)))

    def synced(self, m: _Mailbox) -> tuple[Event, ...]:
        return (InboxSynced(m.incarnation, m.uidvalidity, m.last_uid),)

    def passed(self, m: _Mailbox) -> tuple[Event, ...]:
        return (SelfTestPassed(m.incarnation, _COMPONENTS),)

    def checkin(self, m: _Mailbox) -> tuple[Event, ...]:
        m.checkin_id += 1
        return (CheckInWritten(m.checkin_id, True, self.count),)

    def failed(self, m: _Mailbox) -> tuple[Event, ...]:
        component, text = self.rng.choice(_FAILURES)
        diagnostic = Diagnostic(component, "error", text.format(d=m.domain))
        return (SelfTestFailed(m.incarnation, (diagnostic,)),)

    def crash(self, m: _Mailbox) -> tuple[Event, ...]:
        crashed = MailboxCrashed(
            m.incarnation, "ConnectionResetError: [Errno 104] Connection reset by peer", _TRACEBACK
        )
        m.incarnation += 1
        return (
            crashed,
            RestartScheduled(round(self.rng.uniform(0.5, 8.0), 1), "crashed", 1),
            MailboxStarted(m.incarnation),
        )


def generate_workload(n: int, streams: int, producers: int, seed: int = SEED) -> list[list[Item]]:
    """Return ``n`` (stream, event) pairs split over ``producers``, each stream to one.

    Every practice stream starts with ``DatabaseDiscovered`` and ``MailboxStarted``;
    the ``service`` stream has ``ServiceStarted`` first, a restart every 250,000
    events and ``ServiceStopping`` last. Stream ``i`` belongs to producer ``i % producers``
    (the service stream to producer 0), so each stream's events stay in order.
    """
    rng = random.Random(seed)
    gen = _Generator(rng)
    boxes = [
        _Mailbox(
            stream_for(f"Practice {i + 1:03d}"), _DOMAINS[i % len(_DOMAINS)], 1_700_000_000 + i
        )
        for i in range(streams)
    ]
    items: list[tuple[int, Event]] = [(-1, ServiceStarted("SRV1", "0.1.0", 4242))]
    for i in range(streams):
        items.append((i, DatabaseDiscovered(f"Practice {i + 1:03d}", "eligible practice")))
        items.append((i, MailboxStarted(1)))
    kinds = [k for k, _ in _MIX]
    weights = [w for _, w in _MIX]
    next_restart = SERVICE_RESTART_EVERY
    while len(items) < n - 1:
        for kind in rng.choices(kinds, weights, k=10_000):
            i = rng.randrange(streams)
            gen.count = len(items)
            items.extend((i, e) for e in gen.makers[kind](boxes[i]))
            if len(items) >= next_restart:
                next_restart += SERVICE_RESTART_EVERY
                items.append((-1, ServiceStopping("upgrade")))
                items.append((-1, ServiceStarted("SRV1", "0.1.1", 4242 + len(items) // 1000)))
            if len(items) >= n - 1:
                break
    del items[n - 1 :]
    items.append((-1, ServiceStopping("SIGTERM")))
    per_producer: list[list[Item]] = [[] for _ in range(producers)]
    for i, event in items:
        stream = SERVICE_STREAM if i < 0 else boxes[i].stream
        per_producer[max(i, 0) % producers].append((stream, event))
    return per_producer


def average_encoded_size(workload: list[list[Item]]) -> float:
    """Return the mean size in bytes of the events as the codec writes them."""
    encode = DEFAULT_CODEC.encode
    total = count = 0
    for items in workload:
        for _, event in items:
            total += len(encode(event))
            count += 1
    return total / count


# --- ours: durable append ----------------------------------------------------------


def _produce(
    store: SqlEventStore, items: list[Item], window: int, barrier: threading.Barrier
) -> tuple[float, float]:
    """Append one event per call; wait for each window to be durable; return (start, end)."""
    append_async = store.append_async
    barrier.wait()
    start = time.perf_counter()
    for first in range(0, len(items), window):
        pending: list[PendingAppend] = [
            append_async(stream, ANY, [event]) for stream, event in items[first : first + window]
        ]
        pending[-1].result()
        for p in pending:  # all done by now (one writer, in order): raises if any failed
            p.result()
    return start, time.perf_counter()


def bench_append(path: Path, workload: list[list[Item]], window: int) -> dict[str, float]:
    """Run the producers against a fresh store; return the append figures."""
    n = sum(len(items) for items in workload)
    store = SqlEventStore(f"sqlite:///{path}")
    try:
        barrier = threading.Barrier(len(workload))
        with ThreadPoolExecutor(len(workload), thread_name_prefix="producer") as pool:
            futures = [pool.submit(_produce, store, w, window, barrier) for w in workload]
            spans = [f.result() for f in futures]
        seconds = max(end for _, end in spans) - min(start for start, _ in spans)
        last_seq = store.last_seq()
    finally:
        store.close()
    if last_seq != n:
        raise RuntimeError(f"the store holds {last_seq} events, {n} were appended")
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return {
        "events": n,
        "seconds": seconds,
        "events_per_s": n / seconds,
        "file_bytes_per_event": size / n,
    }


# --- ours: replay in a child process -------------------------------------------------


def ru_maxrss_mb() -> float:
    """Return ``getrusage(RUSAGE_SELF).ru_maxrss`` in MB (it is KiB on Linux).

    On Linux this is not the child's own peak: the kernel carries the parent's
    resident size at fork over into the child's ``ru_maxrss`` (through exec), so a
    child of a parent holding a million events starts at the parent's size.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    """Return this process's own peak resident memory in MB.

    ``VmHWM`` of ``/proc/self/status`` belongs to the address space made at exec, so
    nothing of the parent is in it; ``ru_maxrss`` where there is no ``/proc``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return ru_maxrss_mb()


def replay_child(path: str) -> None:
    """The child's whole job: replay the file, print figures and checksum as JSON."""
    rss_before = peak_rss_mb()
    store = SqlEventStore(f"sqlite:///{path}", create=False)
    try:
        start = time.perf_counter()
        view, report = replay_store(store)
        seconds = time.perf_counter() - start
    finally:
        store.close()
    result = {
        "events": report.events,
        "skipped": len(report.skipped),
        "databases": len(view.health),
        "last_seq": view.last_seq,
        "seconds": seconds,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "ru_maxrss_mb": ru_maxrss_mb(),
    }
    print(json.dumps(result))


def bench_replay(path: Path, expected_events: int, expected_dbs: int) -> dict[str, Any]:
    """Run the replay child on ``path``; check its checksum; return its figures."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--replay-child", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    checksum = (figures["events"], figures["last_seq"], figures["databases"], figures["skipped"])
    expected = (expected_events, expected_events, expected_dbs, 0)
    if checksum != expected:
        raise RuntimeError(
            f"replay checksum (events, last_seq, databases, skipped) is {checksum},"
            f" expected {expected}"
        )
    figures["events_per_s"] = figures["events"] / figures["seconds"]
    figures["checksum_ok"] = True
    return figures


# --- the baseline: eventsourcing ------------------------------------------------------


def _message_id(rng: random.Random, i: int) -> str:
    when = datetime(2026, 1, 5, 9, 0, tzinfo=UTC) + timedelta(seconds=i // 4)
    return f"<{when:%Y%m%d%H%M%S}.{rng.getrandbits(32):08x}@smile-dental.example>"


def _baseline_app(path: Path, *, synchronous_normal: bool = False) -> Any:
    """Return an eventsourcing Application on its SQLite persistence at ``path``."""
    from eventsourcing.application import Application

    class BenchApplication(Application[Any]):
        def construct_factory(self, env: Any) -> Any:
            factory = super().construct_factory(env)
            if synchronous_normal:
                pool = factory.datastore.pool
                create = pool._create_connection

                def create_normal() -> Any:
                    conn = create()
                    conn._sqlite_conn.execute("PRAGMA synchronous=NORMAL")
                    return conn

                pool._create_connection = create_normal
            return factory

    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    return BenchApplication(env=env)


@functools.cache
def _mailbox_class() -> type:
    """Return an aggregate whose method triggers a MessageSent-like event.

    Defined on the first call so that the replay child does not import eventsourcing;
    its topic is registered when first used, so it resolves in this process.
    """
    from eventsourcing.domain import Aggregate, event

    class Mailbox(Aggregate):
        def __init__(self, practice: str) -> None:
            self.practice = practice
            self.sent = 0

        @event("MessageSent")
        def message_sent(self, message_id: str, row_id: int, recipients: int) -> None:
            self.sent += 1

    return Mailbox


def _sqlite_settings(app: Any) -> dict[str, Any]:
    with app.factory.datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = cursor.fetchone()[0]
    return {"journal_mode": journal, "synchronous": synchronous}


def bench_baseline_save(app: Any, m: int, rng: random.Random) -> float:
    """Return events/s of ``app.save`` with one new event per call, M calls."""
    mailbox = _mailbox_class()
    boxes = [mailbox(f"Practice {i + 1:03d}") for i in range(STREAMS)]
    app.save(*boxes)
    ids = [_message_id(rng, i) for i in range(m)]
    start = time.perf_counter()
    for i, message_id in enumerate(ids):
        box = boxes[i % STREAMS]
        box.message_sent(message_id=message_id, row_id=i, recipients=1)
        app.save(box)
    return m / (time.perf_counter() - start)


def bench_baseline_batches(app: Any, count: int, rng: random.Random) -> tuple[float, float]:
    """Return (events/s, mean state bytes) of ``recorder.insert_events`` in batches of 100."""
    mailbox = _mailbox_class()
    boxes = [mailbox(f"Batch Practice {i + 1:03d}") for i in range(STREAMS)]
    domain_events: list[Any] = []
    for box in boxes:
        domain_events.extend(box.collect_events())
    for i in range(count - len(domain_events)):
        box = boxes[i % STREAMS]
        box.message_sent(message_id=_message_id(rng, i), row_id=i, recipients=1)
        domain_events.extend(box.collect_events())
    stored = [app.mapper.to_stored_event(e) for e in domain_events]
    batches = [stored[i : i + BATCH_SIZE] for i in range(0, len(stored), BATCH_SIZE)]
    insert = app.recorder.insert_events
    start = time.perf_counter()
    for batch in batches:
        insert(batch)
    rate = len(stored) / (time.perf_counter() - start)
    return rate, sum(len(s.state) for s in stored) / len(stored)


def bench_baseline_read(app: Any, expected: int) -> float:
    """Return events/s of reading the whole log in pages and decoding every event."""
    select = app.recorder.select_notifications
    to_domain_event = app.mapper.to_domain_event
    count = 0
    last = 0
    start = time.perf_counter()
    while page := select(start=last, limit=READ_PAGE, inclusive_of_start=False):
        for notification in page:
            to_domain_event(notification)
        count += len(page)
        last = page[-1].id
    seconds = time.perf_counter() - start
    if count != expected:
        raise RuntimeError(f"eventsourcing's log holds {count} events, expected {expected}")
    return count / seconds


def bench_baseline(folder: Path, m: int, batch_events: int) -> dict[str, Any]:
    """Run every baseline figure on eventsourcing's own files in ``folder``."""
    rng = random.Random(SEED)
    log(f"baseline (a): eventsourcing Application.save, {m:,} events ...")
    app = _baseline_app(folder / "eventsourcing.sqlite")
    try:
        settings = _sqlite_settings(app)
        save = bench_baseline_save(app, m, rng)
        log(f"baseline (b): eventsourcing recorder, batches of {BATCH_SIZE}, {batch_events:,} ...")
        batch, state_bytes = bench_baseline_batches(app, batch_events, rng)
        total = STREAMS + m + batch_events
        log(f"baseline (c): eventsourcing read + decode of its whole log, {total:,} events ...")
        read = bench_baseline_read(app, total)
    finally:
        app.close()
    log(f"baseline (a'): Application.save with synchronous=NORMAL, {m:,} events ...")
    normal_app = _baseline_app(folder / "eventsourcing-normal.sqlite", synchronous_normal=True)
    try:
        normal_settings = _sqlite_settings(normal_app)
        save_normal = bench_baseline_save(normal_app, m, rng)
    finally:
        normal_app.close()
    return {
        "version": metadata.version("eventsourcing"),
        "sqlite_settings": settings,
        "save_events": m,
        "save_per_s": save,
        "save_normal_sqlite_settings": normal_settings,
        "save_normal_per_s": save_normal,
        "batch_events": batch_events,
        "batch_per_s": batch,
        "batch_mean_state_bytes": state_bytes,
        "read_events": total,
        "read_decode_per_s": read,
    }


# --- the report ----------------------------------------------------------------------


@dataclass
class Results:
    """Everything one run measured."""

    config: dict[str, Any]
    machine: dict[str, Any]
    ours: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    targets: dict[str, bool] = field(default_factory=dict)


def machine_info(folder: Path) -> dict[str, Any]:
    """Return what the figures depend on besides the code."""
    return _report.machine_info(folder)


def evaluate(results: Results) -> None:
    """Fill in the ratios and whether each target was met."""
    ours, base = results.ours, results.baseline
    append, replay = ours["append"]["events_per_s"], ours["replay"]["events_per_s"]
    results.ratios = {
        "append_vs_save": append / base["save_per_s"],
        "append_vs_save_normal": append / base["save_normal_per_s"],
        "append_vs_batch100": append / base["batch_per_s"],
        "replay_vs_read_decode": replay / base["read_decode_per_s"],
    }
    results.targets = {
        "append_per_s": append >= TARGET_APPEND_PER_S,
        "append_vs_save": results.ratios["append_vs_save"] >= TARGET_APPEND_VS_SAVE,
        "replay_per_s": replay >= TARGET_REPLAY_PER_S,
        "replay_million_s": 1_000_000 / replay < TARGET_REPLAY_MILLION_S,
        "replay_peak_rss": ours["replay"]["peak_rss_mb"] < TARGET_REPLAY_RSS_MB,
    }


def table_rows(results: Results) -> list[Row]:
    """Return the table: one row per figure."""
    ours, base, ratio, met = results.ours, results.baseline, results.ratios, results.targets
    append = ours["append"]["events_per_s"]
    replay = ours["replay"]
    per_million = 1_000_000 / replay["events_per_s"]
    return [
        Row(
            "durable append, events/s",
            f"{append:,.0f}",
            "",
            "",
            f">= {TARGET_APPEND_PER_S:,}",
            _report.met(met["append_per_s"]),
        ),
        Row(
            "append vs save (1 event/call)",
            f"{append:,.0f}",
            f"{base['save_per_s']:,.0f}",
            f"{ratio['append_vs_save']:.1f}x",
            f">= {TARGET_APPEND_VS_SAVE:.0f}x",
            _report.met(met["append_vs_save"]),
        ),
        Row(
            "append vs save, sync=NORMAL",
            f"{append:,.0f}",
            f"{base['save_normal_per_s']:,.0f}",
            f"{ratio['append_vs_save_normal']:.1f}x",
            "info",
            "",
        ),
        Row(
            f"append vs recorder, {BATCH_SIZE}/batch",
            f"{append:,.0f}",
            f"{base['batch_per_s']:,.0f}",
            f"{ratio['append_vs_batch100']:.2f}x",
            "info",
            "",
        ),
        Row(
            "replay+fold, events/s",
            f"{replay['events_per_s']:,.0f}",
            f"{base['read_decode_per_s']:,.0f}",
            f"{ratio['replay_vs_read_decode']:.1f}x",
            f">= {TARGET_REPLAY_PER_S:,}",
            _report.met(met["replay_per_s"]),
        ),
        Row(
            "replay time per 1M events, s",
            f"{per_million:.2f}",
            "",
            "",
            f"< {TARGET_REPLAY_MILLION_S:.1f}",
            _report.met(met["replay_million_s"]),
        ),
        Row(
            "replay peak RSS, MB",
            f"{replay['peak_rss_mb']:.1f}",
            "",
            "",
            f"< {TARGET_REPLAY_RSS_MB:.0f}",
            _report.met(met["replay_peak_rss"]),
        ),
    ]


def print_report(results: Results) -> None:
    """Print the machine, the config, the table and the side figures."""
    m, c, ours, base = results.machine, results.config, results.ours, results.baseline
    print_machine(m, f", eventsourcing {base['version']}")
    print(
        f"config:  N={c['events']:,} events, {c['streams']} streams, {c['producers']} producers,"
        f" window {c['window']}; baseline M={c['baseline_events']:,} saves,"
        f" {c['batch_events']:,} batch events"
    )
    print(
        f"ours:    mean encoded event {ours['mean_encoded_bytes']:.1f} B,"
        f" {ours['append']['file_bytes_per_event']:.0f} B/event on disk;"
        f" append {ours['append']['seconds']:.2f} s; replay {ours['replay']['seconds']:.2f} s,"
        f" RSS {ours['replay']['rss_before_mb']:.1f} MB before it"
        f" (ru_maxrss says {ours['replay']['ru_maxrss_mb']:.1f} MB, parent's included);"
        f" checksum ok ({ours['replay']['databases']} databases,"
        f" last seq {ours['replay']['last_seq']:,})"
    )
    s, sn = base["sqlite_settings"], base["save_normal_sqlite_settings"]
    print(
        f"baseline: journal_mode={s['journal_mode']} synchronous={s['synchronous']}"
        f" (row sync=NORMAL: synchronous={sn['synchronous']});"
        f" mean stored state {base['batch_mean_state_bytes']:.1f} B;"
        f" read+decode over {base['read_events']:,} events"
    )
    print()
    print_table(table_rows(results))


# --- main ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/events.py",
        description=(
            "Benchmark the SQLite event store (durable append by 4 producers, replay+fold"
            " in a child process and its peak memory) against the eventsourcing library's"
            " SQLite persistence, in the same run on the same disk, and print a table with"
            " the targets. Exits 0 unless something crashed; a missed target is printed"
            " as MISSED."
        ),
    )
    parser.add_argument(
        "--events",
        type=int,
        default=1_000_000,
        metavar="N",
        help="events appended and replayed through our store (default 1,000,000)",
    )
    parser.add_argument(
        "--baseline-events",
        type=int,
        default=20_000,
        metavar="M",
        help="eventsourcing Application.save calls, one event each (default 20,000);"
        " its batch-of-100 recorder figure inserts 5*M events",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to put the temporary SQLite files (default: the system temp folder)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument("--replay-child", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.replay_child is None:
        if args.events < 10 * STREAMS:
            parser.error(f"--events must be at least {10 * STREAMS}")
        if args.baseline_events < 1_000:
            parser.error("--baseline-events must be at least 1000")
    return args


def run(args: argparse.Namespace, folder: Path) -> Results:
    """Run every measurement with its temporary files in ``folder``."""
    n, m = args.events, args.baseline_events
    config = {
        "events": n,
        "streams": STREAMS,
        "producers": PRODUCERS,
        "window": WINDOW,
        "baseline_events": m,
        "batch_events": 5 * m,
        "batch_size": BATCH_SIZE,
    }
    results = Results(config=config, machine=machine_info(folder))
    log(f"generating {n:,} events ...")
    workload = generate_workload(n, STREAMS, PRODUCERS)
    results.ours["mean_encoded_bytes"] = average_encoded_size(workload)
    log(f"mean encoded size {results.ours['mean_encoded_bytes']:.1f} B")
    ours_path = folder / "ours.sqlite"
    log(f"ours: durable append by {PRODUCERS} producers ...")
    results.ours["append"] = bench_append(ours_path, workload, WINDOW)
    del workload
    log("ours: replay+fold in a child process ...")
    results.ours["replay"] = bench_replay(ours_path, n, STREAMS)
    results.baseline = bench_baseline(folder, m, 5 * m)
    evaluate(results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replay_child is not None:
        replay_child(args.replay_child)
        return 0
    folder = Path(tempfile.mkdtemp(prefix="bench-events-", dir=args.dir)).resolve()
    try:
        results = run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(asdict(results), indent=2))
    else:
        print_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
