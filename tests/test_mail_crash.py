"""The crash test (issue 4): ``serve`` killed with SIGKILL at random moments loses no mail.

``email-service serve`` runs as a subprocess, as in production, over three SQLite practice
databases. Their ``email_settings`` send through ONE aiosmtpd ``RecordingSmtpServer`` (no
TLS, no AUTH) and import from one Dovecot user each (``imap_after_import`` ``keep`` for
two, ``delete`` for one). Both servers are reached through a latency proxy
(``tests.fault_proxy``), as over a real network: a batch then takes long enough for the
kills to land inside it, between a final ``.`` and its reply too.

500 outbox rows (unique subjects and bodies) and 500 IMAP messages (unique Message-IDs)
are spread over the databases: half before the first start, the rest in 20 slices, one
slice just after each start, as the practice software and the outside world keep adding
mail. The process is killed with SIGKILL 20 times at moments drawn from a seeded
``random.Random`` (some while mail flows, some during start-up and recovery) and started
again each time; then it runs until every row is sent and every message imported, and is
stopped with SIGTERM.

Then: each row reached the SMTP server exactly once, except rows the log marks
``MessageDeliveryUncertain``; every duplicate the server saw is such a row and carries
the row's one Message-ID; no row is left queued, sending or failed; each database's inbox
holds each of its server's messages exactly once; the whole log decodes.

The seed, the kill schedule and the figures are printed (pytest shows them on failure).
"""

from __future__ import annotations

import collections
import email
import email.policy
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from actors import practice_db
from actors.practice_schema import email_messages, init_practice_database
from events.sql_store import SqlEventStore
from events.store import read_all, read_types
from events.types import MessageDeliveryUncertain, MessageReceived, MessageSent
from tests.dovecot import Dovecot, make_message
from tests.fault_proxy import FaultProxy
from tests.mail_helpers import queue_rows, write_email_settings
from tests.smtp_servers import RecordingSmtpServer

SEED = 20261127
"""The seed of every random draw here (kill moments, kill kinds). Printed with the schedule."""

KILLS = 20
ROWS = 500
INCOMING = 500
UP_FRONT = 0.5
"""The share of rows and messages there before the first start; the rest come in slices."""

PRACTICES = (("Alder Dental", "keep"), ("Birch Dental", "delete"), ("Cedar Dental", "keep"))
"""Names (eligible: none of demo/training/test/trial/backup) and ``imap_after_import``."""

SMTP_LATENCY = 0.004
IMAP_LATENCY = 0.002
"""Seconds each proxied chunk is delayed: loopback with a little network in it."""

START_KILL_SHARE = 0.25
"""The share of kills drawn from the moment of the start, not from the first mail moved:
they land in start-up and recovery."""
START_KILL_SECONDS = (0.3, 3.0)
FLOW_KILL_SECONDS = (0.0, 1.2)
PROGRESS_WAIT_SECONDS = 60.0
"""How long a cycle waits for the first mail moved before it kills anyway (a wait)."""
FINISH_TIMEOUT = 300.0
"""The longest the last run may take to send and import everything (a wait: it fails
with what is left, it does not time the service)."""
STOP_TIMEOUT = 30.0

MOVED = frozenset({"MessageSent", "MessageSendFailed", "MessageReceived", "InboxSynced"})
"""Event types that say mail moved."""


@dataclass(frozen=True)
class Practice:
    name: str
    url: str
    user: str
    after_import: str


@dataclass
class Crash:
    """What the test set up and what happened to it."""

    root: Path
    config: Path
    store_url: str
    practices: list[Practice]
    smtp: RecordingSmtpServer
    dovecot: Dovecot
    engines: dict[str, Engine] = field(default_factory=dict)
    # practice name -> subjects queued / Message-IDs appended on its server
    subjects: dict[str, list[str]] = field(default_factory=dict)
    incoming: dict[str, list[str]] = field(default_factory=dict)
    schedule: list[str] = field(default_factory=list)
    runs: int = 0

    def engine(self, name: str) -> Engine:
        if name not in self.engines:
            self.engines[name] = practice_db.make_engine(
                next(p.url for p in self.practices if p.name == name)
            )
        return self.engines[name]

    def note(self, line: str) -> None:
        self.schedule.append(line)
        print(line, flush=True)

    def start(self) -> subprocess.Popen[bytes]:
        """Start ``serve``; its output goes to a file of its own (never a full pipe)."""
        self.runs += 1
        log = (self.root / f"serve-{self.runs:02d}.log").open("wb")
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "supervisor.cli", "--config", str(self.config), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()

    def serve_log(self, run: int) -> str:
        path = self.root / f"serve-{run:02d}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _crash_setup(root: Path, smtp_port: int, imap_port: int, dovecot: Dovecot) -> list[Practice]:
    folder = root / "practices"
    folder.mkdir()
    practices = []
    for n, (name, after_import) in enumerate(PRACTICES, start=1):
        url = f"sqlite:///{folder / name}.sqlite3"
        user = f"crash{n}"
        dovecot.add_user(user, f"pw-{user}")
        init_practice_database(url, practice_name=name)
        engine = practice_db.make_engine(url)
        try:
            write_email_settings(
                engine,
                sending_enabled=True,
                send_window="",
                max_per_minute=0,
                from_address=f"reception@{user}.example",
                from_name=name,
                smtp_host="127.0.0.1",
                smtp_port=smtp_port,
                smtp_security="none",
                smtp_username="",
                smtp_password="",
                imap_enabled=True,
                imap_host="127.0.0.1",
                imap_port=imap_port,
                imap_security="none",
                imap_username=user,
                imap_password=f"pw-{user}",
                imap_folder="INBOX",
                imap_after_import=after_import,
            )
        finally:
            engine.dispose()
        practices.append(Practice(name, url, user, after_import))
    return practices


def _config_text(root: Path, store_url: str) -> str:
    # Short intervals so the cycles are short; a small batch so kills land mid-batch.
    # poison_limit above the number of kills: a SIGKILL during an import looks exactly
    # like a message that kills the importer, and parking is not what this test is about.
    # max_restarts high: a check-in missed on this loaded machine must not give a
    # mailbox up for minutes (the give-up has tests of its own).
    return (
        f'[service]\nserver_id = "CRASH"\nevent_store = "{store_url}"\n'
        f'[databases]\nserver_url = "sqlite:///{root / "practices"}"\n'
        "[health]\ncheckin_seconds = 2.0\n"
        "[supervision]\nmax_restarts = 1000\nbackoff_min_seconds = 0.1\n"
        "backoff_max_seconds = 1.0\n"
        "[mail]\noutbox_poll_seconds = 1.0\noutbox_batch = 7\ninbox_poll_seconds = 1.0\n"
        f"io_timeout_seconds = 2.0\npoison_limit = {KILLS + 5}\n"
        '[http]\nlisten = "127.0.0.1:0"\n'
    )


@pytest.fixture
def crash(tmp_path: Path) -> Iterator[Crash]:
    # Outside pytest's folder: another pytest run on this machine makes /tmp/pytest-of-root
    # 0700 again when it starts, and Dovecot's users (nobody, dovecot) then lose their path.
    dovecot_root = Path(tempfile.mkdtemp(prefix="pes-crash-dovecot-"))
    dovecot = Dovecot(dovecot_root / "server", idle_notify_seconds=1)
    dovecot.start()
    smtp = RecordingSmtpServer().start()
    smtp_proxy = FaultProxy(smtp.host, smtp.port).start()
    imap_proxy = FaultProxy(dovecot.host, dovecot.port).start()
    smtp_proxy.set_latency(SMTP_LATENCY)
    imap_proxy.set_latency(IMAP_LATENCY)
    store_url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    config = tmp_path / "service.toml"
    config.write_text(_config_text(tmp_path, store_url))
    state = Crash(
        tmp_path,
        config,
        store_url,
        _crash_setup(tmp_path, smtp_proxy.port, imap_proxy.port, dovecot),
        smtp,
        dovecot,
    )
    try:
        yield state
    finally:
        for engine in state.engines.values():
            engine.dispose()
        imap_proxy.stop()
        smtp_proxy.stop()
        smtp.stop()
        dovecot.stop()
        log = dovecot.root / "dovecot.log"
        if log.exists():  # kept beside the serve logs, for a failure's story
            shutil.copy(log, tmp_path / "dovecot.log")
        dovecot.remove()
        shutil.rmtree(dovecot_root, ignore_errors=True)


# --- the work, in slices -----------------------------------------------------------------


def _slices(total: int, count: int) -> list[range]:
    """``total`` items: ``UP_FRONT`` of them first, the rest in ``count`` near-equal slices."""
    first = int(total * UP_FRONT)
    bounds = [first + (total - first) * i // count for i in range(count + 1)]
    return [range(0, first)] + [range(bounds[i], bounds[i + 1]) for i in range(count)]


def _add_work(crash: Crash, rows: range, incoming: range) -> None:
    """Queue outbox rows and append server messages; item ``n`` goes to practice ``n % 3``."""
    practices = crash.practices
    per_db: dict[str, list[dict[str, object]]] = collections.defaultdict(list)
    for n in rows:
        practice = practices[n % len(practices)]
        subject = f"Crash outbox {n:03d}"
        crash.subjects.setdefault(practice.name, []).append(subject)
        per_db[practice.name].append(
            {
                "to_addrs": f"patient{n:03d}@example.org",
                "subject": subject,
                "body_text": f"Outbox body {n:03d}: your appointment is confirmed.\n",
            }
        )
    for name, batch in per_db.items():
        queue_rows(crash.engine(name), batch)
    per_user: dict[Practice, list[int]] = collections.defaultdict(list)
    for n in incoming:
        per_user[practices[n % len(practices)]].append(n)
    for practice, numbers in per_user.items():
        with crash.dovecot.client(practice.user) as imap:
            for n in numbers:
                message_id = f"<crash-incoming-{n:03d}@outside.example>"
                raw = make_message(
                    f"Incoming {n:03d}", text=f"Incoming body {n:03d}.\n", message_id=message_id
                )
                imap.append("INBOX", raw)
                crash.incoming.setdefault(practice.name, []).append(message_id)


# --- waiting ------------------------------------------------------------------------------


def _wait_for_mail_moving(store: SqlEventStore, after_seq: int, timeout: float) -> bool:
    """Wait until the log has an event saying mail moved past ``after_seq``."""
    deadline = time.monotonic() + timeout
    seen = after_seq
    while True:
        if next(read_types(store, MOVED, seen), None) is not None:
            return True
        seen = max(seen, store.last_seq())
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        store.wait_for_append(seen, min(remaining, 0.5))


def _left_to_do(crash: Crash) -> list[str]:
    """What is not finished yet, per practice (empty: everything sent and imported)."""
    left = []
    m = email_messages
    for practice in crash.practices:
        with crash.engine(practice.name).connect() as conn:
            unsettled = conn.execute(
                select(m.c.status, m.c.id).where(
                    m.c.subject.like("Crash outbox %"), m.c.status.not_in(("sent", "failed"))
                )
            ).all()
            imported = set(
                conn.execute(
                    select(m.c.message_id).where(
                        m.c.folder == "inbox", m.c.message_id.like("<crash-incoming-%")
                    )
                ).scalars()
            )
        missing = set(crash.incoming.get(practice.name, [])) - imported
        if unsettled or missing:
            statuses = collections.Counter(s for s, _ in unsettled)
            left.append(
                f"{practice.name}: outbox rows not settled {dict(statuses)} "
                f"(ids {sorted(i for _, i in unsettled)[:10]}), {len(missing)} server "
                f"message(s) not imported ({sorted(missing)[:5]})"
            )
    return left


def _wait_until_done(crash: Crash, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + FINISH_TIMEOUT
    while True:
        left = _left_to_do(crash)
        if not left:
            return
        if process.poll() is not None:
            raise AssertionError(
                f"serve exited ({process.returncode}) before finishing; seed {SEED}; left: "
                f"{left}\n{crash.serve_log(crash.runs)[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not finished within {FINISH_TIMEOUT:g} s after {KILLS} kills (seed {SEED}):"
                f" {left}\nschedule:\n" + "\n".join(crash.schedule)
            )
        time.sleep(0.25)


def _wait_for_self_tests(store: SqlEventStore, after_seq: int, count: int) -> None:
    """Wait until ``count`` self-tests passed past ``after_seq``: the last run has started
    every mailbox, so it is stopped with SIGTERM while serving, not while starting."""
    deadline = time.monotonic() + FINISH_TIMEOUT
    while sum(1 for _ in read_types(store, frozenset({"SelfTestPassed"}), after_seq)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"the last run passed no {count} self-tests (seed {SEED})")
        store.wait_for_append(store.last_seq(), 0.5)


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill(process)


# --- what the servers and the databases hold ------------------------------------------------


def _received(smtp: RecordingSmtpServer) -> dict[str, list[str | None]]:
    """Subject -> the Message-ID of each copy the SMTP server accepted, in order."""
    by_subject: dict[str, list[str | None]] = collections.defaultdict(list)
    with smtp.lock:
        messages = list(smtp.messages)
    for message in messages:
        parsed = email.message_from_bytes(message.content, policy=email.policy.default)
        by_subject[str(parsed["Subject"])].append(message.message_id)
    return by_subject


def _outbox_rows(engine: Engine) -> list[tuple[int, str, str, str | None]]:
    """``(id, subject, status, message_id)`` of every row the test queued."""
    m = email_messages
    with engine.connect() as conn:
        rows = conn.execute(
            select(m.c.id, m.c.subject, m.c.status, m.c.message_id).where(
                m.c.subject.like("Crash outbox %")
            )
        ).all()
    return [(int(r.id), str(r.subject), str(r.status), r.message_id) for r in rows]


def _inbox_message_ids(engine: Engine) -> list[str]:
    m = email_messages
    with engine.connect() as conn:
        return [
            str(i)
            for i in conn.execute(select(m.c.message_id).where(m.c.folder == "inbox")).scalars()
        ]


def _logged_outcomes(store: SqlEventStore) -> dict[str, set[tuple[str, int]]]:
    """``{type: {(practice, row id)}}`` of the ``MessageSent`` and ``MessageReceived``
    events in the log, and of those appended at a start (``recovered``)."""
    found: dict[str, set[tuple[str, int]]] = collections.defaultdict(set)
    for record in read_types(store, frozenset({"MessageSent", "MessageReceived"})):
        event = record.event
        assert isinstance(event, MessageSent | MessageReceived)
        key = (record.stream.removeprefix("db:"), event.row_id)
        found[type(event).__name__].add(key)
        if event.recovered:
            found["recovered"].add(key)
    return found


def _inbox_row_ids(engine: Engine) -> list[int]:
    m = email_messages
    with engine.connect() as conn:
        return [int(i) for i in conn.execute(select(m.c.id).where(m.c.folder == "inbox")).scalars()]


def _uncertain(store: SqlEventStore) -> set[tuple[str, int]]:
    """``(practice, row id)`` of every ``MessageDeliveryUncertain`` in the log."""
    found = set()
    for record in read_types(store, frozenset({"MessageDeliveryUncertain"})):
        event = record.event
        assert isinstance(event, MessageDeliveryUncertain)
        found.add((record.stream.removeprefix("db:"), event.row_id))
    return found


# --- the test ------------------------------------------------------------------------------


def test_twenty_sigkills_lose_no_mail_and_duplicate_only_rows_marked_uncertain(
    crash: Crash,
) -> None:
    rng = random.Random(SEED)
    row_slices = _slices(ROWS, KILLS)
    incoming_slices = _slices(INCOMING, KILLS)
    _add_work(crash, row_slices[0], incoming_slices[0])
    crash.note(f"seed {SEED}: {KILLS} kills; {ROWS} outbox rows, {INCOMING} server messages")
    began = time.monotonic()
    store = SqlEventStore(crash.store_url)
    process: subprocess.Popen[bytes] | None = None
    try:
        for cycle in range(1, KILLS + 1):
            mark = store.last_seq()
            process = crash.start()
            launched = time.monotonic()
            _add_work(crash, row_slices[cycle], incoming_slices[cycle])
            if rng.random() < START_KILL_SHARE:
                kind, delay = "from start", rng.uniform(*START_KILL_SECONDS)
                time.sleep(max(0.0, delay - (time.monotonic() - launched)))
            else:
                kind, delay = "while mail moves", rng.uniform(*FLOW_KILL_SECONDS)
                if not _wait_for_mail_moving(store, mark, PROGRESS_WAIT_SECONDS):
                    kind = "no mail moved"
                time.sleep(delay)
            alive = process.poll() is None
            _kill(process)
            crash.note(
                f"kill {cycle:2d}: {kind} +{delay:.3f} s, after {time.monotonic() - launched:.2f}"
                f" s of run{'' if alive else ' (it had already exited!)'}; log at seq "
                f"{store.last_seq()}, smtp copies {len(crash.smtp.messages)}"
            )
        mark = store.last_seq()
        process = crash.start()
        _wait_until_done(crash, process)
        _wait_for_self_tests(store, mark, len(crash.practices))
        _stop(process)
        crash.note(
            f"done after {time.monotonic() - began:.1f} s, {crash.runs} runs; the last one "
            f"exited {process.returncode} on SIGTERM"
        )
        uncertain = _uncertain(store)
        outcomes = _logged_outcomes(store)
        log_events = sum(1 for _ in read_all(store))
        last_seq = store.last_seq()
    finally:
        if process is not None and process.poll() is None:
            _kill(process)
        store.close()

    received = _received(crash.smtp)
    copies = {subject: len(ids) for subject, ids in received.items()}
    duplicated: set[tuple[str, int]] = set()
    problems: list[str] = []
    queued = {s for subjects in crash.subjects.values() for s in subjects}
    strangers = sorted(set(received) - queued)
    if strangers:
        problems.append(f"the SMTP server got messages no row asked for: {strangers[:5]}")
    statuses: collections.Counter[str] = collections.Counter()
    for practice in crash.practices:
        rows = _outbox_rows(crash.engine(practice.name))
        assert len(rows) == len(crash.subjects[practice.name])
        for row_id, subject, status, message_id in rows:
            statuses[status] += 1
            ids = received.get(subject, [])
            key = (practice.name, row_id)
            if not ids:
                problems.append(f"{key} {subject!r} ({status}) never reached the SMTP server")
            elif any(i != message_id for i in ids):
                problems.append(f"{key} {subject!r} went out as {ids}, the row says {message_id}")
            if len(ids) > 1:
                duplicated.add(key)
                if key not in uncertain:
                    problems.append(
                        f"{key} {subject!r} reached the SMTP server {len(ids)} times and the "
                        "log does not mark it uncertain"
                    )
    unlogged: list[tuple[str, int]] = []
    for practice in crash.practices:
        engine = crash.engine(practice.name)
        unlogged += [
            (practice.name, row_id)
            for row_id, _subject, status, _mid in _outbox_rows(engine)
            if status == "sent" and (practice.name, row_id) not in outcomes["MessageSent"]
        ]
        unlogged += [
            (practice.name, row_id)
            for row_id in _inbox_row_ids(engine)
            if (practice.name, row_id) not in outcomes["MessageReceived"]
        ]
    inbox_problems: list[str] = []
    for practice in crash.practices:
        held = collections.Counter(_inbox_message_ids(crash.engine(practice.name)))
        expected = collections.Counter(crash.incoming[practice.name])
        if held != expected:
            inbox_problems.append(
                f"{practice.name}: missing {sorted((expected - held).elements())[:5]}, "
                f"extra {sorted((held - expected).elements())[:5]}"
            )
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "supervisor.cli",
            "--config",
            str(crash.config),
            "events",
            "replay",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    left_on_server = {
        p.name: len(crash.dovecot.uids(p.user)) for p in crash.practices if p.after_import != "keep"
    }
    crash.note(
        f"figures: {len(uncertain)} rows marked uncertain, {len(duplicated)} duplicated at the "
        f"SMTP server ({sum(copies.values())} copies of {ROWS} rows), statuses "
        f"{dict(statuses)}, {log_events} events; still on the server where imported mail is "
        f"deleted: {left_on_server}; {len(outcomes['recovered'])} outcome events appended at "
        "a start after a kill"
    )
    schedule = "\n".join(crash.schedule)
    assert not problems, f"seed {SEED}:\n" + "\n".join(problems[:30]) + "\n" + schedule
    assert statuses == {"sent": ROWS}, f"seed {SEED}: {dict(statuses)}\n{schedule}"
    assert not inbox_problems, f"seed {SEED}: {inbox_problems}\n{schedule}"
    assert not unlogged, f"seed {SEED}: rows without their outcome event: {unlogged[:20]}"
    assert log_events == last_seq, f"seed {SEED}: the log read back {log_events} of {last_seq}"
    assert replay.returncode == 0, replay.stderr
    report = json.loads(replay.stdout)
    assert (report["events"], report["skipped"]) == (last_seq, [])
