"""A supervision tree on fakes: fake clock and scheduler, in-memory log, scripted databases.

Nothing sleeps: tests move the fake clock, and wait on the log for the event that
proves the tree reacted (``Harness.wait_for``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pykka

from actors.command_reader import CommandReaderActor, CommandReaderDeps
from actors.fence import IncarnationRegistry
from actors.mailbox_work import MakeWork, no_work
from actors.messages import ChildFailed, Ping
from actors.scheduler import FakeScheduler
from actors.selftest import SelfTestResult
from actors.watchdog import WatchdogActor, WatchdogDeps
from events.clock import FakeClock
from events.memory_store import InMemoryEventStore
from events.recorded import Recorded
from events.store import read_all
from events.types import Diagnostic, Event
from supervisor.restart_policy import RestartPolicy
from supervisor.supervisor_actor import Served, SupervisorActor, SupervisorDeps

CHECKIN = 15.0
HANG_AFTER = 30.0


class ScriptedSelfTest:
    """A self-test that does what its database's script says: ok, fail, raise or hang."""

    def __init__(self, harness: Harness, db: str, incarnation: int) -> None:
        self._harness = harness
        self._db = db
        self._incarnation = incarnation

    def run(self) -> SelfTestResult:
        modes = self._harness.modes
        mode = modes.get(f"{self._db}#{self._incarnation}") or modes.get(self._db, "ok")
        if mode == "hold":  # blocks until ``Harness.release``, then goes on as told there
            mode = self._harness.hold(self._db, self._incarnation)
        if mode == "raise":
            raise RuntimeError(f"scripted crash of {self._db}")
        if mode == "hang":
            self._harness.hanging.wait(timeout=60)
        if mode == "fail":
            return SelfTestResult(("database",), (Diagnostic("database", "error", "down"),))
        return SelfTestResult(("database",), ())

    def close(self) -> None:
        pass


@dataclass
class Harness:
    """Builds and drives one tree; ``restart_process`` builds a new one on the same log."""

    databases: dict[str, Served] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)
    policy: RestartPolicy = field(default_factory=lambda: RestartPolicy(3, 60.0, 1.0, 8.0))
    clock: FakeClock = field(default_factory=FakeClock)
    store: InMemoryEventStore = field(init=False)
    scheduler: FakeScheduler = field(init=False)
    registry: IncarnationRegistry = field(init=False)
    supervisor: pykka.ActorRef[Any] | None = None
    fatal: list[str] = field(default_factory=list)
    hanging: threading.Event = field(default_factory=threading.Event)
    unresponsive: set[str] = field(default_factory=set)
    seen: int = 0
    make_work: MakeWork = no_work  # the mailboxes' steps after the self-test
    held: dict[str, tuple[threading.Event, list[str]]] = field(default_factory=dict)
    """Self-tests blocked in mode ``hold``, by ``db#incarnation``: their gate and next mode."""
    commands: Callable[[pykka.ActorRef[Any]], CommandReaderDeps] | None = None
    """With it, a command reader (these deps) is the supervisor's child ``commands``."""
    restarters: dict[str, Callable[[], pykka.ActorRef[Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store = InMemoryEventStore(self.clock)
        self.scheduler = FakeScheduler(self.clock)

    def add(self, name: str, eligible: bool = True, reason: str = "eligible") -> None:
        self.databases[name] = Served(name, name, eligible, reason)

    def start(self) -> None:
        self.registry = IncarnationRegistry(self.store)

        def children(sup: pykka.ActorRef[Any], position: int) -> dict[str, pykka.ActorRef[Any]]:
            def report(child: str) -> Callable[[str], None]:
                def failed(error: str) -> None:
                    with contextlib.suppress(pykka.ActorDeadError):
                        sup.tell(ChildFailed(child, error))

                return failed

            deps = WatchdogDeps(
                self.store, self.clock, self.scheduler, 5.0, HANG_AFTER, sup,
                progress=self.registry.progress, on_failed=report("watchdog"),
            )  # fmt: skip
            self.restarters["watchdog"] = lambda: WatchdogActor.start(deps, position)
            if self.commands is not None:
                reader = replace(self.commands(sup), on_failed=report("commands"))
                self.restarters["commands"] = lambda: CommandReaderActor.start(reader)
            return {name: start() for name, start in self.restarters.items()}

        deps = SupervisorDeps(
            store=self.store,
            registry=self.registry,
            clock=self.clock,
            scheduler=self.scheduler,
            policy=self.policy,
            server_id="SRV1",
            service_version="test",
            rescan_seconds=60.0,
            checkin_seconds=CHECKIN,
            hang_after_seconds=HANG_AFTER,
            discover=lambda: list(self.databases.values()),
            make_selftest=lambda db, inc: ScriptedSelfTest(self, db, inc),
            jitter=lambda: 0.0,
            on_fatal=self.fatal.append,
            start_children=children,
            make_work=self.make_work,
            restart_child=lambda name: self.restarters[name](),
        )
        self.supervisor = SupervisorActor.start(deps)
        self.settle()  # Init is its first message: once it answers, the tree is built

    def advance(self, seconds: float, step: float = 1.0) -> None:
        """Move time forward in steps, letting every actor finish what each step caused.

        Actors run in their own threads: jumping the fake clock in one go would let a
        mailbox's tick run long after the clock has moved on (and look hung).
        """
        remaining = seconds
        self.settle()
        while True:
            chunk = min(step, remaining)
            self.scheduler.advance(chunk)
            self.settle()
            remaining -= chunk
            if remaining <= 0:
                return

    def settle(self) -> None:
        """Wait until every responsive actor has handled what it was told so far."""
        for _ in range(3):  # a tell may cause a tell may cause a tell
            for ref in pykka.ActorRegistry.get_all():
                if ref.actor_urn in self.unresponsive:
                    continue
                # Only a mailbox may hang by design; any other actor is waited for, or a
                # loaded machine would mark the watchdog "unresponsive", stop waiting for
                # it, and let its ticks run after the clock moved on (read as a pause).
                mailbox = getattr(ref.actor_class, "use_daemon_thread", False)
                try:
                    ref.ask(Ping(), timeout=0.5 if mailbox else 10.0)
                except pykka.Timeout:
                    if not mailbox:
                        raise
                    self.unresponsive.add(ref.actor_urn)  # a hung mailbox: by design
                except pykka.ActorDeadError:
                    pass

    def hold(self, db: str, incarnation: int) -> str:
        """Block a self-test (in its mailbox's thread) until ``release``; return its next mode.

        ``stop`` (which sets ``hanging``) releases it too, as "ok"; so does a minute.
        """
        key = f"{db}#{incarnation}"
        gate, then = threading.Event(), ["ok"]
        self.held[key] = (gate, then)
        try:
            for _ in range(1200):
                if gate.wait(timeout=0.05) or self.hanging.is_set():
                    break
        finally:
            del self.held[key]
        return then[0]

    def release(self, db: str, incarnation: int, then: str = "ok") -> None:
        """Let a self-test held in mode ``hold`` go on, in mode ``then`` (ok, fail or raise)."""
        gate, next_mode = self.held[f"{db}#{incarnation}"]
        next_mode[0] = then
        gate.set()

    def ask(self, method: str) -> Any:
        assert self.supervisor is not None
        return getattr(self.supervisor.proxy(), method)().get(timeout=10)

    def wait_for(self, match: Callable[[Recorded], bool], timeout: float = 10.0) -> Recorded:
        """Return the first event after those already seen that matches; fail after ``timeout``."""
        while True:
            for r in read_all(self.store, self.seen):
                self.seen = r.seq
                if match(r):
                    return r
            if not self.store.wait_for_append(self.seen, timeout):
                raise AssertionError(f"no matching event within {timeout} s; log: {self.log()}")

    def wait_event(self, db: str, kind: type[Event], **fields: Any) -> Recorded:
        """Wait for an event of ``kind`` in ``db``'s stream with these field values."""
        stream = "service" if db == "service" else f"db:{db}"
        return self.wait_for(
            lambda r: (
                r.stream == stream
                and isinstance(r.event, kind)
                and all(getattr(r.event, k) == v for k, v in fields.items())
            )
        )

    def log(self) -> list[str]:
        return [f"{r.seq} {r.stream} {r.event}" for r in read_all(self.store)]

    def events_of(self, db: str) -> list[Event]:
        """Return every event of ``db``'s stream, in log order."""
        return [r.event for r in read_all(self.store) if r.stream == f"db:{db}"]

    def events(self, db: str, kind: type[Event]) -> list[Any]:
        return [
            r.event
            for r in read_all(self.store)
            if r.stream == f"db:{db}" and isinstance(r.event, kind)
        ]

    def stop(self) -> None:
        self.hanging.set()
        if self.supervisor is not None:
            try:
                self.supervisor.proxy().stop_tree("test over").get(timeout=10)
                self.supervisor.stop(timeout=10)
            except pykka.ActorDeadError:
                pass
            self.supervisor = None
        pykka.ActorRegistry.stop_all(timeout=10)
