"""The supervisor actor: the root of the tree.

It starts the watchdog, the command reader and one mailbox per eligible database;
rescans the database server every ``databases.rescan_seconds``; and decides every
restart from the database's events (``supervisor.restart_policy``), appending each
decision before acting on it: queued for the log's writer, which commits in queue
order, so the log never shows an action before its decision (``docs/events.md``); a
restart without delay starts the next incarnation at once, without a timer. It owns
the ``EngineRegistry``'s entries: a database's engine lives from its first serving to
its loss. Messages arrive by ``tell`` from timers, mailboxes
(``on_failure``), the watchdog and the command reader; ``ask`` is only for ``Ping``
and queries. If the supervisor itself fails, or most mailboxes fail at once for the
first time (``supervisor.escalation``), it calls ``on_fatal`` and the process exits
non-zero for the service manager to restart.

One failure of one incarnation gets one decision: a report about an incarnation that
is no longer the live one, or whose end was already decided (a hung mailbox whose
thread later crashes), is recorded and otherwise ignored. Incarnation numbers of a
database only go up: they continue from the log at start, and across a database
dropped and served again. Stopping a mailbox never waits for it (a hung one would
hold the supervisor up); the fence makes the old incarnation harmless.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, NamedTuple

import pykka

from actors.command_reader import Unwatch, Watch, source_of
from actors.engines import EngineRegistry
from actors.errors import one_line_error
from actors.fence import IncarnationRegistry
from actors.mailbox import MailboxActor, MailboxDeps, describe_error, no_engine
from actors.mailbox_work import MakeWork, no_work
from actors.messages import (
    ChildFailed,
    CommandsLogged,
    Init,
    MailboxFailed,
    Ping,
    Rescan,
    RestartCommand,
    StartChild,
    StartMailbox,
)
from actors.scheduler import Scheduler, Timer, tell_later
from actors.selftest import SelfTest
from events.clock import Clock
from events.projections.memory import ServiceMemory, trim_history
from events.recorded import Recorded
from events.snapshot import read_memory
from events.store import ANY, EventStore, PendingAppend
from events.stream_snapshots import SnapshotTaker
from events.types import (
    SERVICE_STREAM,
    ChildCrashed,
    ChildRestartScheduled,
    DatabaseDiscovered,
    DatabaseIgnored,
    DatabaseLost,
    Event,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    RestartRequested,
    RestartScheduled,
    ServiceStarted,
    ServiceStopping,
    stream_for,
)
from supervisor.child_policy import decide_child
from supervisor.escalation import (
    BURST_MIN_DATABASES,
    counts_toward_burst,
    crash_burst,
    recent_failures,
)
from supervisor.restart_policy import (
    Decision,
    GiveUp,
    RestartPolicy,
    decide,
    decide_requested,
    give_up_again,
    give_up_in_force,
)

log = logging.getLogger(__name__)

APPEND_WAIT_SECONDS = 30.0
"""How long the supervisor waits for its own appends to commit before it fails."""


class _RequestedRestartDue(NamedTuple):
    """To itself: act on the restart people asked for ``db`` (after what was queued then)."""

    db: str


@dataclass(frozen=True)
class Served:
    """A database the discovery found: what the supervisor needs of it."""

    name: str
    practice_name: str
    eligible: bool
    reason: str
    url: str = ""
    error: str | None = None  # it could not be opened this time: leave it as it was


@dataclass(frozen=True)
class SupervisorDeps:
    """What the supervisor is given; tests pass fakes for clock, scheduler and discovery."""

    store: EventStore
    registry: IncarnationRegistry
    clock: Clock
    scheduler: Scheduler
    policy: RestartPolicy
    server_id: str
    service_version: str
    rescan_seconds: float
    checkin_seconds: float
    hang_after_seconds: float
    discover: Callable[[], Sequence[Served] | None]  # None: the server did not answer
    make_selftest: Callable[[str, int], SelfTest]
    jitter: Callable[[], float]
    on_fatal: Callable[[str], None]
    start_children: Callable[[pykka.ActorRef[Any], int], dict[str, pykka.ActorRef[Any]]] = field(
        default=lambda _ref, _seq: {}
    )  # "watchdog", "commands" (the reader), "keeper" (the log keeper) and "checkins" (the
    # check-in projector), given the supervisor and the log position; each reports its
    # death with a ChildFailed and is restarted by ``supervisor.child_policy``
    engines: EngineRegistry | None = None  # the served databases' shared engines
    make_work: MakeWork = no_work  # a mailbox's steps after its self-test
    on_memory: Callable[[ServiceMemory], None] = lambda _m: None  # what start-up read
    progress: Callable[[str], None] = lambda _line: None  # start-up's steps, for STATUS=
    restart_child: Callable[[str], pykka.ActorRef[Any] | None] = lambda _name: None
    # starts a child again after ChildFailed (an actor's new ref, or None for the
    # scheduler's thread and the HTTP server); raises if it cannot


@dataclass
class _Db:
    """The supervisor's own bookkeeping for one served database."""

    practice_name: str = ""
    incarnation: int = 0  # the newest incarnation ever started (from the log)
    mailbox: pykka.ActorRef[Any] | None = None
    started_at: datetime | None = None
    pending: Timer | None = None  # a scheduled (re)start
    gave_up: MailboxGaveUp | None = None  # the give-up in force, if any
    requested: int | None = None  # a requested restart is pending: the incarnation then
    history: list[Recorded] = field(default_factory=list)  # committed lifecycle events
    last_pending: PendingAppend | None = None  # its newest lifecycle append not yet in history


class SupervisorActor(pykka.ThreadingActor):
    """The root of the supervision tree."""

    def __init__(self, deps: SupervisorDeps) -> None:
        super().__init__()
        self._deps = deps
        self._dbs: dict[str, _Db] = {}  # served databases
        # What the log last said of each database: (served, reason).
        self._logged: dict[str, tuple[bool, str]] = {}
        self._children: dict[str, pykka.ActorRef[Any]] = {}
        self._rescan: Timer | None = None
        self._first_failures: dict[str, datetime] = {}  # recent ones (supervisor.escalation)
        self._escalated = False
        self._stopping = False
        # Databases not served now (from the log at start, or dropped since): the newest
        # incarnation each ever started and its lifecycle history, for when it is served.
        self._incarnations: dict[str, int] = {}
        self._histories: dict[str, list[Recorded]] = {}
        self._given_up: dict[str, MailboxGaveUp] = {}  # give-ups in force, from the log
        # Appends not yet seen committed, in enqueue order (= commit order), with the
        # database whose history takes them (None: not a lifecycle event).
        self._unconfirmed: deque[tuple[_Db | None, PendingAppend]] = deque()
        self._mailbox_deps: MailboxDeps | None = None
        self._child_restarts: dict[str, list[datetime]] = {}  # this process's, per child
        # Every command id each database's log holds a RestartRequested for, with the
        # append not yet seen committed (None: committed, or from the log at start).
        self._commands: dict[str, dict[int, PendingAppend | None]] = {}
        self._child_pending: dict[str, Timer] = {}

    # --- life ------------------------------------------------------------------------

    def on_start(self) -> None:
        self.actor_ref.tell(Init())

    def on_receive(self, message: Any) -> Any:
        self._confirm()
        if isinstance(message, Ping):
            return True
        if isinstance(message, Init):
            self._init()
        elif isinstance(message, Rescan):
            self._scan()
            self._schedule_rescan()
        elif isinstance(message, MailboxFailed):
            self._failed(message)
        elif isinstance(message, StartMailbox):
            self._scheduled_start(message.db)
        elif isinstance(message, RestartCommand):
            self._restart_command(message)
        elif isinstance(message, _RequestedRestartDue):
            self._requested_restart_due(message.db)
        elif isinstance(message, ChildFailed):
            self._child_failed(message.child, message.error)
        elif isinstance(message, StartChild):
            self._child_pending.pop(message.child, None)
            self._start_child(message.child)
        else:
            return super().on_receive(message)
        return None

    def _init(self) -> None:
        d = self._deps
        d.progress("reading the stored start-up state and the events after it")
        # Stream snapshots as it goes: on a long log without them (an older version's),
        # this first read is the one that makes them (``events.stream_snapshots``).
        memory = read_memory(
            d.store, window_seconds=d.policy.within_seconds, on_chunk=SnapshotTaker(d.store)
        )
        self._learn(memory)
        d.on_memory(memory)
        position = memory.last_seq
        d.store.append(
            "service", ANY, [ServiceStarted(d.server_id, d.service_version, os.getpid())]
        )
        self._children = d.start_children(self.actor_ref, position)
        d.progress("listing the practice databases and starting their mailboxes")
        self._scan()
        self._schedule_rescan()

    def _learn(self, memory: ServiceMemory) -> None:
        """Take from the log what survives a restart of the process.

        ``memory`` is the stored start-up state plus the events after it
        (``events.snapshot.read_memory``): the same fold of the same log as a replay from
        the start, read in time that does not grow with the log's length.
        """
        view = memory.view
        for db, entry in view.tree.items():
            self._logged[db] = (entry.served, entry.reason)
        incarnations = {db: h.incarnation for db, h in view.health.items()}
        histories = {db: list(h) for db, h in memory.histories.items()}
        for name, kept in histories.items():
            # The restart commands already in the log (the newest of each database's
            # history): a row read again after a crash is only marked, never restarted twice.
            for r in kept:
                if isinstance(r.event, RestartRequested) and r.event.command_id is not None:
                    self._commands.setdefault(name, {})[r.event.command_id] = None
        self._incarnations = incarnations
        self._histories = histories
        now = self._deps.clock.now()
        for db, history in histories.items():
            gave_up = give_up_in_force(self._deps.policy, history, now)
            if gave_up is not None:
                self._given_up[db] = gave_up

    def stop_tree(self, reason: str, timeout: float = 5.0) -> None:
        """Stop the children, then every mailbox at once, and log why (asked at shutdown).

        Mailboxes are fenced and told to stop together; the wait for them shares one
        ``timeout``, so a thousand mailboxes (or a hung one) cannot delay the exit.
        """
        self._stopping = True
        self._deps.store.append("service", ANY, [ServiceStopping(reason)])
        if self._rescan is not None:
            self._rescan.cancel()
        for timer in self._child_pending.values():
            timer.cancel()
        for child in self._children.values():
            _stop(child)
        futures = []
        for name, db in self._dbs.items():
            if db.pending is not None:
                db.pending.cancel()
            if db.mailbox is not None:
                ref, db.mailbox = db.mailbox, None
                self._deps.registry.abandon(
                    name, db.incarnation, [MailboxStopped(db.incarnation, reason)]
                )  # not waited for: the store's close() commits it
                with contextlib.suppress(pykka.ActorDeadError):
                    futures.append(ref.stop(block=False))
        deadline = time.monotonic() + timeout
        for future in futures:
            with contextlib.suppress(pykka.Timeout, pykka.ActorDeadError):
                future.get(timeout=max(0.0, deadline - time.monotonic()))

    def on_failure(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._deps.on_fatal(f"the supervisor failed: {describe_error(exc)}")

    # --- discovery -------------------------------------------------------------------

    def _schedule_rescan(self) -> None:
        # One chain of periodic rescans: a Rescan from outside moves the next one on.
        if self._rescan is not None:
            self._rescan.cancel()
        if not self._stopping:
            self._rescan = tell_later(
                self._deps.scheduler, self._deps.rescan_seconds, self.actor_ref, Rescan()
            )

    def _scan(self) -> None:
        listing = self._deps.discover()
        if listing is None:
            return  # the database server did not answer: keep serving what we serve
        found = {s.name: s for s in listing}
        for name, s in sorted(found.items()):
            if s.error is not None:
                if name not in self._dbs:  # a served one stays served while unreadable
                    self._ignore(name, f"cannot be opened: {s.error}")
                continue
            if s.eligible:
                if name not in self._dbs:
                    self._serve(s)
            else:
                if name in self._dbs:
                    self._unserve(name, s.reason)
                self._ignore(name, s.reason)
        for name in [n for n in self._dbs if n not in found]:
            self._unserve(name, "the database is no longer on the server")

    def _ignore(self, name: str, reason: str) -> None:
        """Log that ``name`` is not served, for ``reason``, unless the log says so already."""
        if self._logged.get(name) != (False, reason):
            self._append(name, [DatabaseIgnored(reason)])
            self._logged[name] = (False, reason)
            self._given_up.pop(name, None)  # not served: a give-up ends (as in the log)

    def _serve(self, s: Served) -> None:
        db = _Db(
            practice_name=s.practice_name,
            incarnation=self._incarnations.pop(s.name, 0),
            history=self._histories.pop(s.name, []),
            gave_up=self._given_up.pop(s.name, None),
        )
        self._dbs[s.name] = db
        if self._logged.get(s.name) != (True, s.reason):
            self._append(s.name, [DatabaseDiscovered(s.practice_name, s.reason)])
            self._logged[s.name] = (True, s.reason)
        if self._deps.engines is not None:
            self._deps.engines.serve(s.name, s.url)
        self._tell_child("commands", Watch(s.name))
        self._start_mailbox(s.name, db)

    def _unserve(self, name: str, reason: str) -> None:
        db = self._dbs.pop(name)
        self._tell_child("commands", Unwatch(name))
        if db.pending is not None:
            db.pending.cancel()
        self._stop_mailbox(name, db, reason)
        if self._deps.engines is not None:
            self._deps.engines.forget(name)
        self._append(name, [DatabaseLost(reason)])
        self._logged[name] = (False, reason)
        # Kept for a later serving: its numbers go on, and its restarts still count.
        self._incarnations[name] = db.incarnation
        self._histories[name] = db.history
        self._first_failures.pop(name, None)

    # --- mailboxes -------------------------------------------------------------------

    def _start_mailbox(self, name: str, db: _Db) -> None:
        d = self._deps
        db.pending = None
        db.incarnation += 1
        started = d.registry.begin(name, db.incarnation, [MailboxStarted(db.incarnation)])
        self._track(db, started)
        db.started_at = d.clock.now()
        db.mailbox = MailboxActor.start(name, db.incarnation, self._mailbox_deps_())

    def _mailbox_deps_(self) -> MailboxDeps:
        if self._mailbox_deps is None:
            d = self._deps
            self._mailbox_deps = MailboxDeps(
                d.registry,
                d.scheduler,
                d.checkin_seconds,
                self.actor_ref,
                d.make_selftest,
                engine=d.engines.get if d.engines is not None else no_engine,
                make_work=d.make_work,
                clock=d.clock,
            )
        return self._mailbox_deps

    def _stop_mailbox(self, name: str, db: _Db, reason: str) -> None:
        """Fence the live incarnation out, log its stop and tell it to stop; never wait.

        A hung mailbox would hold the supervisor up for as long as it waited; fenced
        out, it can no longer write, and it stops once it wakes (its sockets time out).
        """
        if db.mailbox is None:
            return
        ref, db.mailbox = db.mailbox, None
        stopped = self._deps.registry.abandon(
            name, db.incarnation, [MailboxStopped(db.incarnation, reason)]
        )
        if stopped is not None:
            self._track(None, stopped)
        ref.stop(block=False)  # a dead one answers the future with an error nobody reads

    def _scheduled_start(self, name: str) -> None:
        db = self._dbs.get(name)
        if db is not None and db.mailbox is None and not self._stopping:
            self._start_mailbox(name, db)

    def _failed(self, msg: MailboxFailed) -> None:
        if msg.record:
            self._append(msg.db, list(msg.record))  # the failure itself, ahead of anything
        db = self._dbs.get(msg.db)
        if db is None or db.mailbox is None or msg.incarnation != db.incarnation:
            # A database no longer served, an incarnation whose end was already decided
            # (reported hung, then its thread crashed), or an abandoned one.
            return
        if self._stopping:
            return
        ref, db.mailbox = db.mailbox, None
        # Fence the old incarnation out before anything else (a hung one may wake).
        self._deps.registry.abandon(msg.db, msg.incarnation)
        if msg.cause == "hung":
            ref.stop(block=False)  # it may never read this; the fence is what counts
        now = self._deps.clock.now()
        decision = self._decide(db, now, msg.cause)
        # Before the start, not after: the new mailbox's thread would wait for the GIL
        # while this one went on. db.history is what the decision saw.
        if counts_toward_burst(decision, db.history, now, self._deps.policy.within_seconds):
            self._first_failure(msg.db, now)
        if isinstance(decision, GiveUp):
            self._give_up(msg.db, db, decision)
        else:
            self._schedule(
                msg.db, db, RestartScheduled(decision.delay, msg.cause, decision.attempt)
            )

    def _decide(self, db: _Db, now: datetime, cause: str) -> Decision:
        policy = self._deps.policy
        if db.gave_up is not None and db.started_at is not None:
            again = give_up_again(policy, db.gave_up, db.started_at, now)
            if again is not None:
                return again
            db.gave_up = None  # the retry ran long enough: judged afresh
        return decide(policy, self._history(db, now), now, self._deps.jitter(), cause)

    def _first_failure(self, name: str, now: datetime) -> None:
        """Note a first failure; escalate once if most databases just had one.

        The decision is still taken and acted on: if the process goes on (it is the
        service manager's to end it), the tree stays consistent.
        """
        self._first_failures[name] = now
        if len(self._first_failures) < BURST_MIN_DATABASES:
            return  # too few to be a burst, and too few to be worth pruning
        failures = recent_failures(self._first_failures, now)
        self._first_failures = failures
        if not self._escalated and crash_burst(failures, len(self._dbs), now):
            self._escalated = True
            self._deps.on_fatal(
                f"{len(failures)} mailboxes failed at once; the process must restart"
            )

    def _schedule(self, name: str, db: _Db, event: RestartScheduled) -> None:
        # Enqueued before it is acted on: the log has the decision before the start.
        self._append(name, [event], db)
        if event.delay == 0:
            self._start_mailbox(name, db)  # a first restart: no timer hop
            return
        db.pending = tell_later(
            self._deps.scheduler, event.delay, self.actor_ref, StartMailbox(name)
        )

    def _give_up(self, name: str, db: _Db, decision: GiveUp) -> None:
        event = MailboxGaveUp(decision.restarts, decision.within_seconds, decision.retry_in)
        db.gave_up = event
        self._append(name, [event], db)
        log.error(
            "%s: gave up after %d restarts; retrying in %.0f s",
            name,
            decision.restarts,
            decision.retry_in,
        )
        db.pending = tell_later(
            self._deps.scheduler, decision.retry_in, self.actor_ref, StartMailbox(name)
        )

    # --- commands --------------------------------------------------------------------

    def _restart_command(self, msg: RestartCommand) -> None:
        """Log the request; restart once, after the messages already queued.

        Each command row gets one ``RestartRequested`` ever: a row whose id the log
        already holds (read again after a crash before it was marked) is not logged
        again and restarts nothing; the reader is told all the same, to mark it. The
        restart is pending until this actor has handled what was in its inbox when the
        request came: further requests for the database meanwhile are logged and
        coalesce into that one restart.
        """
        db = self._dbs.get(msg.db)
        if db is None or self._stopping:
            return
        known = self._commands.setdefault(msg.db, {})
        requested = []
        for i, command_id in enumerate(msg.command_ids or (None,)):
            if command_id is not None and command_id in known:
                continue
            by = msg.requesters[i] if i < len(msg.requesters) else msg.requested_by
            source = source_of(by) if i < len(msg.requesters) else msg.source
            requested.append(RestartRequested(source, by, command_id))
        durable: PendingAppend | None = None
        if requested:
            durable = self._deps.store.append_async(stream_for(msg.db), ANY, requested)
            self._track(db, durable)
            for event in requested:
                if event.command_id is not None:
                    known[event.command_id] = durable
            if db.requested is None:
                db.requested = db.incarnation
                self.actor_ref.tell(_RequestedRestartDue(msg.db))
            else:
                log.info("%s: a restart is already pending; the request joins it", msg.db)
        else:
            earlier = [known[c] for c in msg.command_ids]
            durable = next((p for p in earlier if p is not None and not p.done()), None)
            log.info("%s: commands %s are logged already; marking them", msg.db, msg.command_ids)
        if msg.reply_to is not None and msg.command_ids:
            with contextlib.suppress(pykka.ActorDeadError):
                msg.reply_to.tell(CommandsLogged(msg.db, msg.command_ids, durable))

    def _requested_restart_due(self, name: str) -> None:
        db = self._dbs.get(name)
        if db is None or db.requested is None or self._stopping:
            return  # dropped (and maybe served again) meanwhile, or shutting down
        requested_at, db.requested = db.requested, None
        if db.mailbox is not None and db.incarnation > requested_at:
            return  # a new incarnation started since the request (a failure's restart)
        if db.pending is not None:
            db.pending.cancel()
            db.pending = None
        self._stop_mailbox(name, db, "restart requested")
        now = self._deps.clock.now()
        decision = decide_requested(self._deps.policy, self._history(db, now), now)
        db.gave_up = None
        self._append(name, [RestartScheduled(decision.delay, decision.cause, decision.attempt)], db)
        self._start_mailbox(name, db)

    # --- the other children ------------------------------------------------------------

    def _child_failed(self, name: str, error: str) -> None:
        """Log a child's failure and restart it by the policy; give up: the process exits."""
        if self._stopping or name in self._child_pending:
            return
        log.error("the %s failed: %s", name, error)
        self._deps.store.append_async(SERVICE_STREAM, ANY, [ChildCrashed(name, error)])
        now = self._deps.clock.now()
        since = now - timedelta(seconds=self._deps.policy.within_seconds)
        restarts = [t for t in self._child_restarts.get(name, []) if t > since]
        decision = decide_child(self._deps.policy, name, restarts, now, self._deps.jitter())
        if isinstance(decision, GiveUp):
            self._deps.on_fatal(
                f"the {name} failed {decision.restarts + 1} times within "
                f"{decision.within_seconds:.0f} s; the process must restart ({error})"
            )
            return
        self._child_restarts[name] = [*restarts, now]
        self._deps.store.append_async(
            SERVICE_STREAM, ANY, [ChildRestartScheduled(name, decision.delay, decision.attempt)]
        )
        if decision.delay == 0:
            self._start_child(name)
        else:
            self._child_pending[name] = tell_later(
                self._deps.scheduler, decision.delay, self.actor_ref, StartChild(name)
            )

    def _start_child(self, name: str) -> None:
        """Start ``name`` again; a failure to start is one more failure of it."""
        if self._stopping:
            return
        try:
            ref = self._deps.restart_child(name)
        except Exception as exc:
            self._child_failed(name, one_line_error(exc))
            return
        if ref is None:
            return
        self._children[name] = ref
        if name == "commands":  # the new reader knows nothing yet
            for db in self._dbs:
                self._tell_child("commands", Watch(db))

    # --- queries (ask) ---------------------------------------------------------------

    def mailboxes(self) -> dict[str, int | None]:
        """Return each served database's live incarnation (None: none running now)."""
        return {
            n: (db.incarnation if db.mailbox is not None else None) for n, db in self._dbs.items()
        }

    def ignored(self) -> dict[str, str]:
        """Return the databases not served, and why (as the log last said)."""
        return {name: reason for name, (served, reason) in self._logged.items() if not served}

    # --- helpers ---------------------------------------------------------------------

    def _tell_child(self, name: str, message: Any) -> None:
        child = self._children.get(name)
        if child is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                child.tell(message)

    def _append(self, name: str, events: list[Event], db: _Db | None = None) -> None:
        """Enqueue ``events`` on ``name``'s stream; ``db``: they belong to its history.

        Not waited for: the store's writer commits appends in enqueue order, so what is
        enqueued before an action precedes that action's own events in the log. A failed
        append is seen at the next message (``_confirm``) and fails the supervisor.
        """
        self._track(db, self._deps.store.append_async(stream_for(name), ANY, events))

    def _track(self, db: _Db | None, pending: PendingAppend) -> None:
        self._unconfirmed.append((db, pending))
        if db is not None:
            db.last_pending = pending

    def _confirm(self) -> None:
        """Take the committed appends into their histories; raise a failed one's error."""
        queue = self._unconfirmed
        while queue and queue[0][1].done():
            db, pending = queue.popleft()
            recorded = pending.result()  # a failed append fails the supervisor (on_fatal)
            if db is not None:
                db.history.extend(recorded)
                trim_history(db.history)
                if db.last_pending is pending:
                    db.last_pending = None

    def _history(self, db: _Db, now: datetime) -> list[Recorded]:
        """Return ``db``'s lifecycle events for a decision at ``now``.

        Waits for the database's own appends to commit first. Events recorded before
        the restart window (``now - within_seconds``) are dropped: every decision
        counts only the restarts inside it, and the log keeps them all anyway.
        """
        if db.last_pending is not None:
            db.last_pending.result(timeout=APPEND_WAIT_SECONDS)
        self._confirm()
        since = now - timedelta(seconds=self._deps.policy.within_seconds)
        history = db.history
        old = 0
        while old < len(history) and history[old].recorded_at <= since:
            old += 1
        if old:
            del history[:old]
        return history


def _stop(ref: pykka.ActorRef[Any]) -> None:
    """Stop a child actor at shutdown, waiting briefly; a hung one is left behind."""
    with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
        ref.stop(block=True, timeout=2.0)
