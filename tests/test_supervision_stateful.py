"""The supervision tree under random crashes, hangs, restart commands, rescans and time.

A hypothesis state machine drives a real tree (``tests.tree_harness``: fake clock and
scheduler, in-memory log, scripted self-tests) whose command reader, a child of the
supervisor, polls real SQLite practice databases. Its faults: mailboxes crash and hang,
the watchdog and the command reader crash (also between logging a command and marking
its row), restart rows arrive one by one, several at once from parallel threads, and
during crashes, databases come and go, the process restarts. After every step, once the
tree has settled, it checks:

- at most one live (running, not fenced) incarnation per database, and the supervisor,
  the fence and the log's tree projection agree on which one it is;
- every database that should be served has a live mailbox, or a restart or a give-up
  retry that is still due (a decision whose time has passed must have been acted on);
- every start is preceded in the log by the decision that caused it, no earlier than
  that decision said, incarnations count up by one, and one failure gets one decision;
  every stop, crash or abandonment is logged before the next start;
- a stale incarnation never wrote after it was replaced (its self-tests are refused);
- every child that crashed was restarted, or its restart is still due (one live
  watchdog and one live command reader otherwise);
- every command row is handled exactly once: no command id has two ``RestartRequested``,
  and a row marked handled has its one;
- no restart is caused by a pause of the whole process: only a mailbox that was really
  stuck (held in its self-test) is ever called hung, and a pause the watchdog must see
  as one (longer than its period plus a quarter of the limit) calls none hung.

The whole process pausing (SIGSTOP, then SIGCONT: a paused VM) is the
``pause_whole_process`` rule: the fake clock jumps for every actor at once with no timer
firing, then every timer that fell due fires, late, at the new time.

Bugs it found are kept below as small named regression tests. While a bug is open its
test is marked ``xfail(strict)`` and the machine steers around it with a guard that
names the test, so that it can go on looking for others; a fix removes both.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pykka
import pytest
from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pykka.messages import ProxyCall
from sqlalchemy import Engine, delete, select

from actors import commands_table
from actors.command_reader import CommandReaderActor, CommandReaderDeps
from actors.mailbox import MailboxActor
from actors.messages import Ping, Rescan, RestartCommand, RunNow
from actors.practice_db import make_engine
from actors.practice_schema import email_service_commands, init_practice_database
from actors.watchdog import WatchdogActor
from events.projections.service_view import replay
from events.recorded import Recorded
from events.store import read_all
from events.types import (
    CheckInMissed,
    ChildCrashed,
    ChildRestartScheduled,
    DatabaseDiscovered,
    DatabaseIgnored,
    DatabaseLost,
    MailboxCrashed,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    RestartRequested,
    RestartScheduled,
    SelfTestFailed,
    SelfTestPassed,
    ServiceStarted,
    db_of,
)
from supervisor.hang_rule import PAUSE_FRACTION
from supervisor.restart_policy import RestartPolicy
from supervisor.supervisor_actor import Served
from tests.tree_harness import CHECKIN, HANG_AFTER, Harness

NAMES = ("Smile", "Harbour", "Molar", "Canine")
"""The practice databases the machine plays with (renamed ones get a suffix)."""

STEP = 1.0
"""Seconds of fake time per settled step: well below the check-in and hang limits."""

POLL = 5.0
"""Seconds between two polls of the command reader."""

SLACK = STEP + 0.01
"""How late a timer may fire against its decision's ``recorded_at``: the clock moves in
steps while actors run, so a timer is set up to one step after its decision was logged."""

TOLERANCE = timedelta(milliseconds=1)
"""The log keeps microseconds; timers keep floats."""

POLICY = RestartPolicy(3, 60.0, 2.0, 16.0)
"""Backoffs of 1, 2 and 4 s (the harness draws no jitter) and a give-up retry every 16 s."""

FAILURE_CAUSES = frozenset({"crashed", "hung"})

BURST_MESSAGE = "mailboxes failed at once; the process must restart"
CHILD_GAVE_UP = "times within 60 s; the process must restart"

CHILDREN = {"watchdog": WatchdogActor, "commands": CommandReaderActor}
"""The supervisor's children in this tree (the service adds the projector, the log keeper,
the scheduler's thread and the HTTP server; ``tests/test_child_supervision.py`` crashes
those for real)."""

WATCHDOG_PERIOD = 5.0
"""The harness's watchdog tick (``tests.tree_harness``)."""

SEEN_PAUSE = WATCHDOG_PERIOD + HANG_AFTER * PAUSE_FRACTION
"""A pause longer than this is one the watchdog must notice (``hang_rule.was_paused``):
its next tick comes at least this late."""

PAUSES = (10.0, 20.0, HANG_AFTER + 5.0, 3 * HANG_AFTER)
"""Pauses shorter and longer than ``SEEN_PAUSE``, and longer than the hang limit."""


# --- settling the tree --------------------------------------------------------------


def settle(h: Harness, timeout: float = 30.0) -> None:
    """Wait until every actor that is not held has handled everything it was told.

    Each round fires the timers due now (a real scheduler would), pings every actor and
    waits until the only ones not answering are those held in a self-test. Two rounds
    in a row in which the log did not grow end it (a tell may cause a tell).
    """
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        before = h.store.last_seq()
        h.scheduler.advance(0)
        # An actor that dies between the registry's list and the ask may never answer
        # (pykka drains its inbox once, as it stops): a dead one counts as settled.
        pending: list[tuple[pykka.ActorRef[Any], pykka.Future[Any]]] = []
        for ref in pykka.ActorRegistry.get_all():
            with contextlib.suppress(pykka.ActorDeadError):
                pending.append((ref, ref.ask(Ping(), block=False)))
        while len(pending) > len(h.held):
            if time.monotonic() > deadline:
                busy = sorted(type_name(ref) for ref, _ in pending)
                raise AssertionError(
                    f"the tree did not settle in {timeout} s: {len(pending)} actors busy "
                    f"({busy}), {len(h.held)} held; log: {h.log()[-20:]}"
                )
            still = []
            for ref, future in pending:
                try:
                    future.get(timeout=0)
                except pykka.Timeout:
                    if ref.is_alive():
                        still.append((ref, future))
                except pykka.ActorDeadError:
                    pass
            if len(still) == len(pending):
                time.sleep(0.0005)
            pending = still
        quiet = quiet + 1 if h.store.last_seq() == before else 0


def type_name(ref: pykka.ActorRef[Any]) -> str:
    return ref.actor_class.__name__


def advance(h: Harness, seconds: float) -> None:
    """Move the fake clock in steps of at most ``STEP``, settling after each."""
    settle(h)
    remaining = seconds
    while remaining > 1e-9:
        chunk = min(STEP, remaining)
        h.scheduler.advance(chunk)
        settle(h)
        remaining -= chunk


def running_mailboxes(h: Harness, timeout: float = 30.0) -> list[tuple[str, int]]:
    """Return ``(db, incarnation)`` of every mailbox actor that answers (all but the held)."""
    asked = []
    for ref in pykka.ActorRegistry.get_by_class(MailboxActor):
        try:
            proxy = ref.proxy()
            asked.append((proxy.db, proxy.incarnation))
        except pykka.ActorDeadError:
            pass
    deadline = time.monotonic() + timeout
    answered: list[tuple[str, int]] = []
    while len(asked) > len(h.held):
        assert time.monotonic() < deadline, "mailboxes did not answer"
        still = []
        for db, k in asked:
            try:
                answered.append((db.get(timeout=0), k.get(timeout=1.0)))
            except pykka.Timeout:
                still.append((db, k))
            except pykka.ActorDeadError:
                pass
        if len(still) == len(asked):
            time.sleep(0.0005)
        asked = still
    return answered


# --- what the log must show ---------------------------------------------------------


def _at(r: Recorded) -> str:
    return f"seq {r.seq} at {r.recorded_at.time()} {r.event}"


def check_starts_follow_decisions(records: Sequence[Recorded]) -> None:
    """Every start has a logged cause before it, and is no earlier than that cause said.

    Causes: the service started, the database was discovered, a restart was scheduled
    (not before ``delay``), or the mailbox gave up (not before ``retry_in``). Between two
    starts there is at most one decision about a failure. Incarnations count up by one.
    """
    cause: dict[str, Recorded | None] = {}
    due: dict[str, datetime | None] = {}
    failure_decisions: dict[str, list[Recorded]] = {}
    last_incarnation: dict[str, int] = {}
    for r in records:
        e = r.event
        if isinstance(e, ServiceStarted):
            for known in cause:
                cause[known], due[known] = r, None
            continue
        db = db_of(r.stream)
        if db is None:
            continue
        if isinstance(e, DatabaseDiscovered):
            cause[db], due[db] = r, None
        elif isinstance(e, RestartScheduled):
            cause[db], due[db] = r, r.recorded_at + timedelta(seconds=e.delay)
        elif isinstance(e, MailboxGaveUp):
            cause[db], due[db] = r, r.recorded_at + timedelta(seconds=e.retry_in)
        if isinstance(e, MailboxGaveUp) or (
            isinstance(e, RestartScheduled) and e.cause in FAILURE_CAUSES
        ):
            decisions = failure_decisions.setdefault(db, [])
            decisions.append(r)
            assert len(decisions) == 1, (
                f"{db}: one failure got {len(decisions)} decisions: "
                + "; ".join(_at(d) for d in decisions)
            )
        if isinstance(e, MailboxStarted):
            expected = last_incarnation.get(db, 0) + 1
            assert e.incarnation == expected, f"{db}: {_at(r)}, expected incarnation {expected}"
            last_incarnation[db] = e.incarnation
            why = cause.get(db)
            assert why is not None, f"{db}: {_at(r)} without a logged decision before it"
            not_before = due.get(db)
            assert not_before is None or r.recorded_at + TOLERANCE >= not_before, (
                f"{db}: {_at(r)} earlier than its decision allowed: {_at(why)}"
            )
            cause[db], due[db] = None, None
            failure_decisions[db] = []


def check_every_end_is_logged(records: Sequence[Recorded]) -> None:
    """Before a database's next start, or its loss, the log says how its mailbox ended.

    An end is ``MailboxStopped`` (stopped on purpose), ``MailboxCrashed`` or
    ``CheckInMissed`` (abandoned as hung) of that incarnation. A new process starts
    with a clean slate (a killed process logs nothing).
    """
    running: dict[str, int] = {}
    for r in records:
        e = r.event
        if isinstance(e, ServiceStarted):
            running.clear()
            continue
        db = db_of(r.stream)
        if db is None:
            continue
        if isinstance(e, MailboxStopped | MailboxCrashed | CheckInMissed):
            if running.get(db) == e.incarnation:
                del running[db]
        elif isinstance(e, MailboxStarted | DatabaseLost):
            assert db not in running, (
                f"{db}: {_at(r)} while the log never said how incarnation {running[db]} ended"
            )
            if isinstance(e, MailboxStarted):
                running[db] = e.incarnation


def check_stale_incarnations_never_write(records: Sequence[Recorded]) -> None:
    """Self-test results come only from the incarnation the log says is live."""
    live: dict[str, int | None] = {}
    for r in records:
        db = db_of(r.stream)
        if db is None:
            continue
        e = r.event
        if isinstance(e, MailboxStarted):
            live[db] = e.incarnation
        elif isinstance(e, MailboxStopped | MailboxCrashed):
            if live.get(db) == e.incarnation:
                live[db] = None
        elif isinstance(e, RestartScheduled | MailboxGaveUp | DatabaseLost):
            live[db] = None
        elif isinstance(e, SelfTestPassed | SelfTestFailed):
            assert e.incarnation == live.get(db), (
                f"{db}: stale write {_at(r)}; live incarnation then: {live.get(db)}"
            )


# --- the practice databases the command reader polls --------------------------------


class PracticeFiles:
    """One SQLite practice database per name in ``NAMES``, made once per test session."""

    def __init__(self, folder: Path) -> None:
        self.urls = {n: f"sqlite:///{folder / n}.db" for n in NAMES}
        for name, url in self.urls.items():
            init_practice_database(url, practice_name=name)
        self.engines: dict[str, Engine] = {n: make_engine(u) for n, u in self.urls.items()}

    def rows(self) -> dict[str, list[tuple[int, bool]]]:
        """Every command row: ``{db: [(id, handled), ...]}``."""
        t = email_service_commands
        found = {}
        for name, engine in self.engines.items():
            with engine.connect() as conn:
                found[name] = [
                    (int(r.id), r.handled_at is not None)
                    for r in conn.execute(select(t.c.id, t.c.handled_at)).all()
                ]
        return found

    def clear_commands(self) -> None:
        for engine in self.engines.values():
            with engine.begin() as conn:
                conn.execute(delete(email_service_commands))

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()


@pytest.fixture(scope="module")
def practice_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PracticeFiles]:
    files = PracticeFiles(tmp_path_factory.mktemp("practices"))
    yield files
    files.close()


# --- the machine --------------------------------------------------------------------


def expected_served(listing: dict[str, Served], before: set[str]) -> set[str]:
    """The databases a scan of ``listing`` leaves served (the supervisor's rule)."""
    served = set()
    for name, s in listing.items():
        if s.error is not None:
            if name in before:
                served.add(name)
        elif s.eligible:
            served.add(name)
    return served


class SupervisionTree(RuleBasedStateMachine):
    """Random crashes, hangs, commands, rescans and clock moves against one tree."""

    files: ClassVar[PracticeFiles]

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(policy=POLICY)
        self.served: set[str] = set()  # what the supervisor should serve
        self.processes = 0
        self.fake_ids = 10**6  # command ids of requests told straight to the supervisor
        self.starting = False  # a process is starting: its first settle is under way
        self.after_burst = False  # this process was started because of a crash burst
        self.ever_held: set[str] = set()  # "db#incarnation" of every self-test ever held
        self.pause_steps: list[tuple[int, int]] = []  # seqs logged during a seen pause
        self.files.clear_commands()

    # --- set-up and teardown ---------------------------------------------------------

    @initialize(
        initial=st.dictionaries(
            st.sampled_from(NAMES),
            st.sampled_from(["eligible", "eligible", "ineligible"]),
            min_size=1,
            max_size=4,
        )
    )
    def start(self, initial: dict[str, str]) -> None:
        for name, kind in initial.items():
            self._list(name, kind)
        self._start_process()

    def teardown(self) -> None:
        self.h.stop()

    def _start_process(self) -> None:
        self.starting = True
        engines = self.files.engines
        self.h.commands = lambda sup: CommandReaderDeps(
            self.h.clock, self.h.scheduler, POLL, sup, engines.__getitem__
        )
        self.h.start()
        self.processes += 1
        self.served = expected_served(self.h.databases, set())
        self._settle()
        self.starting = False
        self.after_burst = False

    def _restart_process(self) -> None:
        self.h.stop()
        self.h.hanging.clear()
        self.h.fatal.clear()
        self._start_process()

    def _settle(self) -> None:
        settle(self.h)
        self.ever_held |= set(self.h.held)
        if self.h.fatal and all(CHILD_GAVE_UP in f for f in self.h.fatal):
            note(f"fatal: {self.h.fatal}; the process restarts")  # a child kept crashing
            self._restart_process()
            return
        if self.h.fatal:
            # What the service manager does when the process exits non-zero.
            assert all(BURST_MESSAGE in f or CHILD_GAVE_UP in f for f in self.h.fatal), self.h.fatal
            note(f"fatal: {self.h.fatal}; the process restarts")
            # The databases of a burst are crash loops of their own in the next process
            # (their restarts are in the log), and with four names no other three are
            # left to make a burst: a new process never escalates again as it starts.
            assert not (self.starting and self.after_burst), (
                f"the process restarted for a crash burst twice in a row: {self.h.fatal}"
            )
            self.after_burst = True
            self._restart_process()

    def _advance(self, seconds: float) -> None:
        remaining = seconds
        while remaining > 1e-9:
            chunk = min(STEP, remaining)
            self.h.scheduler.advance(chunk)
            self._settle()
            remaining -= chunk

    def _list(self, name: str, kind: str) -> None:
        if kind == "eligible":
            self.h.add(name)
        elif kind == "ineligible":
            self.h.add(name, eligible=False, reason="not registered to this server")
        elif kind == "unreadable":
            self.h.databases[name] = Served(name, name, False, "", error="database is locked")
        elif kind == "removed":
            self.h.databases.pop(name, None)
        elif kind == "renamed" and self.h.databases.pop(name, None) is not None:
            self.h.add(f"{name} Training", eligible=False, reason="name contains 'training'")

    def _pick_live(self, pick: int) -> tuple[str, int] | None:
        """The live incarnation ``pick`` chooses (modulo how many are live), or None when
        none is. The choice is drawn from a fixed range, and no rule's precondition reads
        the actors: hypothesis needs its data generation not to depend on the threads'
        timing (a replay that found the live mailboxes otherwise failed in CI with
        FlakyStrategyDefinition)."""
        live: dict[str, int | None] = self.h.ask("mailboxes")
        names = sorted(n for n, k in live.items() if k is not None)
        if not names:
            return None
        name = names[pick % len(names)]
        k = live[name]
        assert k is not None
        return name, k

    # --- rules -------------------------------------------------------------------------

    @rule(pick=st.integers(0, len(NAMES) - 1))
    def crash_live_mailbox(self, pick: int) -> None:
        """The live incarnation's next self-test raises; the clock moves on to it."""
        chosen = self._pick_live(pick)
        if chosen is None:
            return
        name, k = chosen
        self.h.modes[f"{name}#{k}"] = "raise"
        self._advance(CHECKIN)

    @rule(name=st.sampled_from(NAMES), mode=st.sampled_from(["ok", "fail", "raise"]))
    def set_database_mode(self, name: str, mode: str) -> None:
        """Every incarnation's self-test passes, finds a fault, or raises (a crash loop)."""
        self.h.modes[name] = mode

    @precondition(lambda self: len(self.served) >= 3)
    @rule(data=st.data())
    def break_most_databases(self, data: st.DataObject) -> None:
        """Most served databases' set-ups break at once and every mailbox is nudged to run
        its self-test now: each broken one crashes at once and at every start from then
        on (a crash burst for the process, then a crash loop of its own)."""
        served = sorted(self.served)
        at_least = max(3, len(served) // 2 + 1)  # what a burst takes
        names = data.draw(st.sets(st.sampled_from(served), min_size=at_least))
        for name in names:
            self.h.modes[name] = "raise"
        for ref in pykka.ActorRegistry.get_by_class(MailboxActor):
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(RunNow())
        self._settle()

    @rule(pick=st.integers(0, len(NAMES) - 1))
    def hang_live_mailbox(self, pick: int) -> None:
        """The live incarnation's next self-test blocks until released; the clock moves on
        to it (the watchdog notices after ``HANG_AFTER`` more)."""
        chosen = self._pick_live(pick)
        if chosen is None:
            return
        name, k = chosen
        self.h.modes[f"{name}#{k}"] = "hold"
        self._advance(CHECKIN)

    @rule(pick=st.integers(0, 3), then=st.sampled_from(["ok", "fail", "raise"]))
    def release_held_mailbox(self, pick: int, then: str) -> None:
        """A held self-test wakes up late: it returns, finds a fault, or raises."""
        keys = sorted(self.h.held)
        if not keys:
            return
        key = keys[pick % len(keys)]
        db, incarnation = key.rsplit("#", 1)
        self.h.modes.pop(key, None)
        self.h.release(db, int(incarnation), then)
        self._settle()

    @precondition(lambda self: bool(self.served))
    @rule(data=st.data(), rows=st.integers(1, 3))
    def restart_rows(self, data: st.DataObject, rows: int) -> None:
        """Workstations insert restart rows at once: one restart, every row answered."""
        name = data.draw(st.sampled_from(sorted(self.served)))
        engine = self.files.engines[name]
        before = len(self.h.events(name, RestartRequested))
        processes = self.processes
        waiting = len(commands_table.pending(engine))  # left by a crash_child: read with ours
        ids = [commands_table.request_restart(engine, "RECEPTION") for _ in range(rows)]
        for _ in range(3):
            self._advance(POLL)
            if all(commands_table.outcome_of(engine, i)[0] is not None for i in ids):
                break
        if self.processes != processes:
            return  # the process restarted meanwhile (a crash burst): a new reader answers
        outcomes = {commands_table.outcome_of(engine, i)[1] for i in ids}
        assert len(outcomes) == 1, outcomes
        assert None not in outcomes, outcomes
        if rows + waiting > 1:
            assert f"({rows + waiting} requests, one restart)" in str(outcomes)
        requested = self.h.events(name, RestartRequested)[before:]
        ours = [e for e in requested if e.command_id in ids]
        assert ours == [RestartRequested("workstation", "RECEPTION", i) for i in ids]

    @precondition(lambda self: bool(self.served))
    @rule(data=st.data(), count=st.integers(1, 3))
    def restart_commands_at_once(self, data: st.DataObject, count: int) -> None:
        """Restart commands from several polls or sources reach the supervisor together."""
        name = data.draw(st.sampled_from(sorted(self.served)))
        assert self.h.supervisor is not None
        for _ in range(count):
            self.fake_ids += 1
            self.h.supervisor.tell(RestartCommand(name, "cli", "cli:admin", (self.fake_ids,)))
        self._settle()

    @precondition(lambda self: bool(self.served))
    @rule(data=st.data(), threads=st.integers(2, 6))
    def restart_rows_in_parallel(self, data: st.DataObject, threads: int) -> None:
        """Workstations click at the same moment: rows inserted by parallel threads."""
        name = data.draw(st.sampled_from(sorted(self.served)))
        engine = self.files.engines[name]
        inserters = [
            threading.Thread(target=commands_table.request_restart, args=(engine, f"PC-{n}"))
            for n in range(threads)
        ]
        for thread in inserters:
            thread.start()
        for thread in inserters:
            thread.join()
        self._advance(POLL)

    @rule(child=st.sampled_from(sorted(CHILDREN)), with_rows=st.booleans())
    def crash_child(self, child: str, with_rows: bool) -> None:
        """A child actor that is not a mailbox dies of a bug in its own thread; with
        ``with_rows``, the reader is first made to read waiting rows and tell the
        supervisor, and dies before the answer comes (before it marks them)."""
        event(f"crash {child}" + (" with rows in flight" if with_rows else ""))
        if with_rows and self.served:
            name = sorted(self.served)[0]
            commands_table.request_restart(self.files.engines[name], "RECEPTION")
        for ref in pykka.ActorRegistry.get_by_class(CHILDREN[child]):
            with contextlib.suppress(pykka.ActorDeadError):
                if with_rows and child == "commands":
                    ref.tell(RunNow())  # reads, tells the supervisor; then:
                ref.tell(ProxyCall(attr_path=("tick",), args=("boom",), kwargs={}))
        self._settle()

    @rule(seconds=st.sampled_from(PAUSES))
    def pause_whole_process(self, seconds: float) -> None:
        """Every thread stops for ``seconds`` (SIGSTOP, then SIGCONT): the clock jumps
        with nobody running and no timer firing; then everything wakes equally late,
        every timer that fell due meanwhile fires at once, at the new time."""
        event(f"pause {seconds:.0f} s")
        settle(self.h)
        self.ever_held |= set(self.h.held)
        first = self.h.store.last_seq() + 1
        self.h.clock.advance(seconds)
        self._settle()
        if seconds > SEEN_PAUSE:
            self.pause_steps.append((first, self.h.store.last_seq()))

    @rule(
        name=st.sampled_from(NAMES),
        kind=st.sampled_from(["eligible", "ineligible", "unreadable", "removed", "renamed"]),
    )
    def change_database_then_rescan(self, name: str, kind: str) -> None:
        """The database server's listing changes; the supervisor rescans."""
        self._list(name, kind)
        self.served = expected_served(self.h.databases, self.served)
        assert self.h.supervisor is not None
        self.h.supervisor.tell(Rescan())
        self._settle()

    @rule()
    def rescan_without_change(self) -> None:
        """A rescan of an unchanged server appends no discovery events."""
        kinds = (DatabaseDiscovered, DatabaseIgnored, DatabaseLost)
        before = [r for r in read_all(self.h.store) if isinstance(r.event, kinds)]
        assert self.h.supervisor is not None
        self.h.supervisor.tell(Rescan())
        self._settle()
        after = [r for r in read_all(self.h.store) if isinstance(r.event, kinds)]
        assert after == before

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 4.0, 8.0, CHECKIN, HANG_AFTER + 20.0, 61.0]))
    def advance_clock(self, seconds: float) -> None:
        """Time passes: self-tests, backoffs, give-up retries, hang checks, rescans."""
        self._advance(seconds)

    @rule()
    def restart_process(self) -> None:
        """The whole process restarts on the same log (the service manager's job)."""
        self._restart_process()

    # --- invariants ----------------------------------------------------------------

    @invariant()
    def one_live_incarnation_per_database(self) -> None:
        live: dict[str, int | None] = self.h.ask("mailboxes")
        running: dict[str, list[int]] = {}
        for db, n in running_mailboxes(self.h):
            running.setdefault(db, []).append(n)
        for db, ns in running.items():
            assert len(ns) == 1, f"{db}: incarnations {ns} all running"
            assert live.get(db) == ns[0], f"{db}: {ns[0]} runs, the supervisor has {live.get(db)}"
        for db, k in live.items():
            current = self.h.registry.current(db)
            assert current == k, f"{db}: the fence has {current}, the supervisor {k}"

    @invariant()
    def every_served_database_has_a_mailbox_or_a_pending_restart(self) -> None:
        live: dict[str, int | None] = self.h.ask("mailboxes")
        assert set(live) == self.served, f"served {sorted(live)}, expected {sorted(self.served)}"
        records = list(read_all(self.h.store))
        tree = replay(records).tree
        now = self.h.clock.now()
        for db, k in live.items():
            entry = tree.get(db)
            assert entry is not None, f"{db}: not in the log's tree"
            assert entry.served, f"{db}: the log does not serve it: {entry}"
            assert entry.mailbox_incarnation == k, (
                f"{db}: the log says {entry.mailbox_incarnation} ({entry.why_no_mailbox}), "
                f"the supervisor {k}"
            )
            if k is not None:
                continue
            decision = next(
                r
                for r in reversed(records)
                if r.stream == f"db:{db}" and isinstance(r.event, RestartScheduled | MailboxGaveUp)
            )
            assert entry.why_no_mailbox.startswith(("restart", "gave up")), (
                f"{db}: no mailbox and no pending decision: {entry.why_no_mailbox}"
            )
            e = decision.event
            assert isinstance(e, RestartScheduled | MailboxGaveUp)
            wait = e.delay if isinstance(e, RestartScheduled) else e.retry_in
            overdue = now - decision.recorded_at - timedelta(seconds=wait + SLACK)
            assert overdue < timedelta(0), f"{db}: {_at(decision)} not acted on by {now.time()}"
        for db, entry in tree.items():
            if db not in live:
                assert not entry.served, f"{db}: the log still serves it: {entry}"
                assert entry.mailbox_incarnation is None, f"{db}: {entry}"
                assert self.h.registry.current(db) is None, f"{db}: still fenced in"

    @invariant()
    def every_decision_is_logged_before_it_takes_effect(self) -> None:
        records = list(read_all(self.h.store))
        check_starts_follow_decisions(records)
        check_every_end_is_logged(records)

    @invariant()
    def stale_incarnations_never_write(self) -> None:
        check_stale_incarnations_never_write(list(read_all(self.h.store)))

    @invariant()
    def every_child_is_running_or_due_to_restart(self) -> None:
        records = list(read_all(self.h.store))
        process = max(r.seq for r in records if isinstance(r.event, ServiceStarted))
        now = self.h.clock.now()
        for child, kind in CHILDREN.items():
            alive = [ref for ref in pykka.ActorRegistry.get_by_class(kind) if ref.is_alive()]
            crashes = [
                r for r in records if r.seq > process and isinstance(r.event, ChildCrashed)
                and r.event.child == child
            ]  # fmt: skip
            scheduled = [
                r for r in records if r.seq > process
                and isinstance(r.event, ChildRestartScheduled) and r.event.child == child
            ]  # fmt: skip
            assert len(scheduled) == len(crashes), f"{child}: {crashes} vs {scheduled}"
            if len(alive) == 1:
                continue
            assert alive == [], f"{child}: {len(alive)} running"
            last = scheduled[-1]
            assert isinstance(last.event, ChildRestartScheduled)
            due = last.recorded_at + timedelta(seconds=last.event.delay + SLACK)
            assert now < due, f"{child}: its restart {_at(last)} not acted on by {now.time()}"

    @invariant()
    def every_command_row_is_handled_exactly_once(self) -> None:
        logged: dict[tuple[str, int], int] = {}
        for r in read_all(self.h.store):
            db = db_of(r.stream)
            if db is not None and isinstance(r.event, RestartRequested):
                key = (db, r.event.command_id or 0)
                logged[key] = logged.get(key, 0) + 1
        doubled = {k: n for k, n in logged.items() if n > 1 and k[1] != 0}
        assert doubled == {}, f"commands logged twice: {doubled}"
        for db, rows in self.files.rows().items():
            for command_id, handled in rows:
                if handled:
                    assert logged.get((db, command_id)) == 1, (
                        f"{db}: row {command_id} handled without its RestartRequested"
                    )

    @invariant()
    def no_restart_is_caused_by_a_pause(self) -> None:
        for r in read_all(self.h.store):
            e = r.event
            if not isinstance(e, CheckInMissed):
                continue
            assert f"{db_of(r.stream)}#{e.incarnation}" in self.ever_held, (
                f"a mailbox that was never stuck was called hung: {_at(r)}"
            )
            during = [(a, b) for a, b in self.pause_steps if a <= r.seq <= b]
            assert during == [], f"called hung by a pause of the whole process: {_at(r)}"


def test_the_supervision_tree_keeps_its_invariants(practice_files: PracticeFiles) -> None:
    SupervisionTree.files = practice_files
    run_state_machine_as_test(
        SupervisionTree,
        settings=settings(
            max_examples=30,
            stateful_step_count=40,
            deadline=None,
            print_blob=True,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# --- regression tests for what the machine found -------------------------------------


@pytest.fixture
def tree() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.stop()


def _rescan(h: Harness) -> None:
    assert h.supervisor is not None
    h.supervisor.tell(Rescan())
    settle(h)


def test_a_database_served_again_continues_its_incarnation_numbers(tree: Harness) -> None:
    tree.add("Smile")
    tree.start()
    tree.add("Smile", eligible=False, reason="not registered to this server")
    _rescan(tree)
    tree.add("Smile")
    _rescan(tree)
    assert [e.incarnation for e in tree.events("Smile", MailboxStarted)] == [1, 2]


def test_a_stale_incarnation_of_a_database_served_again_cannot_write(tree: Harness) -> None:
    tree.add("Smile")
    tree.start()
    tree.modes["Smile#1"] = "hold"
    advance(tree, CHECKIN)  # incarnation 1 is held in its second self-test
    tree.modes.pop("Smile#1")
    tree.add("Smile", eligible=False, reason="not registered to this server")
    _rescan(tree)  # incarnation 1 is abandoned, and left behind: it cannot be stopped
    tree.add("Smile")
    _rescan(tree)  # served again: a new mailbox starts and runs its first self-test
    tree.release("Smile", 1)  # the abandoned thread wakes up and writes
    settle(tree)
    log = list(read_all(tree.store))
    restarted = max(r.seq for r in log if isinstance(r.event, MailboxStarted))
    after = [r.event for r in log if r.seq > restarted and isinstance(r.event, SelfTestPassed)]
    assert len(after) == 1, f"only the new mailbox may write: {after}"


def test_a_database_unreadable_at_start_then_served_is_served_in_the_log(tree: Harness) -> None:
    tree.add("Smile")
    tree.start()
    tree.stop()
    tree.hanging.clear()
    tree.databases["Smile"] = Served("Smile", "Smile", False, "", error="database is locked")
    tree.start()  # a new process: the log says ignored, "cannot be opened"
    tree.add("Smile")
    _rescan(tree)
    assert tree.ask("mailboxes") == {"Smile": 2}
    assert replay(read_all(tree.store)).tree["Smile"].served


def _advance_until(h: Harness, db: str, kind: type[Any], limit: float = 120.0) -> None:
    """Advance the clock in settled steps until ``db``'s stream has a ``kind`` event."""
    waited = 0.0
    while not h.events(db, kind):
        assert waited < limit, f"no {kind.__name__} for {db} within {limit} s"
        advance(h, STEP)
        waited += STEP


def test_a_hung_mailbox_that_crashes_later_gets_one_decision() -> None:
    # Backoffs long enough that the replacement is still pending when the thread wakes.
    tree = Harness(policy=RestartPolicy(3, 60.0, 10.0, 80.0))
    try:
        tree.add("Smile")
        tree.modes["Smile#1"] = "raise"
        tree.start()  # incarnation 1 crashes at once; 2 replaces it without delay
        tree.modes["Smile#2"] = "hold"
        _advance_until(tree, "Smile", CheckInMissed)  # 2 hangs; its restart is 5 s away
        tree.release("Smile", 2, "raise")  # the hung thread's socket times out: it crashes
        settle(tree)
        missed = tree.events("Smile", CheckInMissed)[0].incarnation
        assert missed == 2
        decided = [e for e in tree.events("Smile", RestartScheduled) if e.cause == "hung"]
        assert len(decided) == 1
        assert [e.cause for e in tree.events("Smile", RestartScheduled)] == ["crashed", "hung"]
    finally:
        tree.stop()


def test_databases_that_crash_at_every_start_do_not_restart_the_process_forever() -> None:
    tree = Harness()
    try:
        for name in ("Smile", "Harbour", "Molar"):
            tree.add(name)
            tree.modes[name] = "raise"  # a broken set-up: crashes at every start
        tree.add("Canine")  # healthy, and taken down with the process each time
        tree.start()
        settle(tree)
        for _ in range(5):  # the service manager restarts the process
            if not tree.fatal:
                break
            tree.stop()
            tree.hanging.clear()
            tree.fatal.clear()
            tree.start()
            settle(tree)
        assert tree.fatal == []
    finally:
        tree.stop()


def test_a_repeated_give_up_says_how_many_restarts_it_counted(tree: Harness) -> None:
    tree.add("Smile")
    tree.modes["Smile"] = "raise"  # crashes at every start
    tree.start()
    advance(tree, 12.0)  # restarts after 0, 1 and 2 s, a give-up, its retry 8 s on, again
    gave_up = tree.events("Smile", MailboxGaveUp)
    assert len(gave_up) == 2
    assert [e.restarts for e in gave_up] == [3, 3]  # not "gave up after 0 restarts"


def test_a_restart_command_replaces_a_hung_mailbox_and_refuses_its_late_writes(
    tree: Harness,
) -> None:
    tree.add("Smile")
    tree.start()
    tree.modes["Smile#1"] = "hold"
    advance(tree, CHECKIN)  # incarnation 1 is held in its second self-test
    assert tree.supervisor is not None
    tree.supervisor.tell(RestartCommand("Smile", "workstation", "RECEPTION", (7,)))
    settle(tree)  # the supervisor fences the held mailbox out and moves on at once
    assert tree.ask("mailboxes") == {"Smile": 2}
    passed = len(tree.events("Smile", SelfTestPassed))
    tree.release("Smile", 1)  # wakes up late and tries to write
    settle(tree)
    assert len(tree.events("Smile", SelfTestPassed)) == passed
    assert running_mailboxes(tree) == [("Smile", 2)]
    check_stale_incarnations_never_write(list(read_all(tree.store)))
