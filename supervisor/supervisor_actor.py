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
and queries. If the supervisor itself fails, or most mailboxes crash at once, it
calls ``on_fatal`` and the process exits non-zero for the service manager to restart.
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
from typing import Any

import pykka

from actors.command_reader import Unwatch, Watch
from actors.engines import EngineRegistry
from actors.fence import IncarnationRegistry
from actors.mailbox import MailboxActor, MailboxDeps, describe_error, no_engine
from actors.mailbox_work import MakeWork, no_work
from actors.messages import (
    Init,
    MailboxFailed,
    Ping,
    Rescan,
    RestartCommand,
    StartMailbox,
)
from actors.scheduler import Scheduler, Timer, tell_later
from actors.selftest import SelfTest
from events.clock import Clock
from events.projections.service_view import ServiceView
from events.recorded import Recorded
from events.replay import replay_store
from events.store import ANY, EventStore, PendingAppend, read_types
from events.types import (
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
    db_of,
    stream_for,
)
from supervisor.escalation import crash_burst
from supervisor.restart_policy import GiveUp, RestartPolicy, decide, decide_requested

log = logging.getLogger(__name__)

APPEND_WAIT_SECONDS = 30.0
"""How long the supervisor waits for its own appends to commit before it fails."""

HISTORY_KEPT = 200
"""Lifecycle events kept per database for restart decisions (far more than any window needs)."""

_HISTORY_TYPES = frozenset(
    t.__name__
    for t in (
        RestartScheduled,
        MailboxGaveUp,
        MailboxStarted,
        MailboxStopped,
        RestartRequested,
        DatabaseLost,
    )
)


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
    )  # "watchdog" and "commands" (the reader), given the supervisor and the log position
    engines: EngineRegistry | None = None  # the served databases' shared engines
    make_work: MakeWork = no_work  # a mailbox's steps after its self-test


@dataclass
class _Db:
    """The supervisor's own bookkeeping for one served database."""

    practice_name: str = ""
    incarnation: int = 0  # the newest incarnation ever started (from the log)
    mailbox: pykka.ActorRef[Any] | None = None
    started_at: datetime | None = None
    pending: Timer | None = None  # a scheduled (re)start
    gave_up: bool = False
    history: list[Recorded] = field(default_factory=list)  # committed lifecycle events
    last_pending: PendingAppend | None = None  # its newest lifecycle append not yet in history


class SupervisorActor(pykka.ThreadingActor):
    """The root of the supervision tree."""

    def __init__(self, deps: SupervisorDeps) -> None:
        super().__init__()
        self._deps = deps
        self._dbs: dict[str, _Db] = {}  # served databases
        self._ignored: dict[str, str] = {}  # not served: reason, as last logged
        self._children: dict[str, pykka.ActorRef[Any]] = {}
        self._rescan: Timer | None = None
        self._last_crash: dict[str, datetime] = {}
        self._stopping = False
        self._known_incarnations: dict[str, int] = {}  # from the log at start
        self._known_histories: dict[str, list[Recorded]] = {}
        self._served_reason: dict[str, str] = {}  # served databases' reason, as last logged
        # Appends not yet seen committed, in enqueue order (= commit order), with the
        # database whose history takes them (None: not a lifecycle event).
        self._unconfirmed: deque[tuple[_Db | None, PendingAppend]] = deque()
        self._mailbox_deps: MailboxDeps | None = None

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
        else:
            return super().on_receive(message)
        return None

    def _init(self) -> None:
        d = self._deps
        view, _ = replay_store(d.store)
        self._learn(view)
        position = view.last_seq
        d.store.append(
            "service", ANY, [ServiceStarted(d.server_id, d.service_version, os.getpid())]
        )
        self._children = d.start_children(self.actor_ref, position)
        self._scan()
        self._schedule_rescan()

    def _learn(self, view: ServiceView) -> None:
        """Take from the log what survives a restart of the process."""
        for db, entry in view.tree.items():
            if entry.served:
                self._served_reason[db] = entry.reason
            else:
                self._ignored[db] = entry.reason
        incarnations = {db: h.incarnation for db, h in view.health.items()}
        histories: dict[str, list[Recorded]] = {}
        for r in read_types(self._deps.store, _HISTORY_TYPES):
            name = db_of(r.stream)
            if name is not None:
                kept = histories.setdefault(name, [])
                kept.append(r)
                if len(kept) > 2 * HISTORY_KEPT:
                    del kept[:HISTORY_KEPT]
        self._known_incarnations = incarnations
        self._known_histories = histories

    def stop_tree(self, reason: str, timeout: float = 5.0) -> None:
        """Stop the children, then every mailbox at once, and log why (asked at shutdown).

        Mailboxes are fenced and told to stop together; the wait for them shares one
        ``timeout``, so a thousand mailboxes (or a hung one) cannot delay the exit.
        """
        self._stopping = True
        self._deps.store.append("service", ANY, [ServiceStopping(reason)])
        if self._rescan is not None:
            self._rescan.cancel()
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
                reason = f"cannot be opened: {s.error}"
                if name not in self._dbs and self._ignored.get(name) != reason:
                    self._append(name, [DatabaseIgnored(reason)])
                    self._ignored[name] = reason
                continue
            if s.eligible:
                if name not in self._dbs:
                    self._serve(s)
            else:
                if name in self._dbs:
                    self._unserve(name, s.reason)
                if self._ignored.get(name) != s.reason:
                    self._append(name, [DatabaseIgnored(s.reason)])
                    self._ignored[name] = s.reason
        for name in [n for n in self._dbs if n not in found]:
            self._unserve(name, "the database is no longer on the server")

    def _serve(self, s: Served) -> None:
        db = _Db(
            practice_name=s.practice_name,
            incarnation=self._known_incarnations.get(s.name, 0),
            history=self._known_histories.get(s.name, []),
        )
        self._dbs[s.name] = db
        self._ignored.pop(s.name, None)
        if self._served_reason.get(s.name) != s.reason:
            self._append(s.name, [DatabaseDiscovered(s.practice_name, s.reason)])
            self._served_reason[s.name] = s.reason
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
        self._served_reason.pop(name, None)
        self._ignored[name] = reason

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
        if db.mailbox is None:
            return
        ref, db.mailbox = db.mailbox, None
        stopped = self._deps.registry.abandon(
            name, db.incarnation, [MailboxStopped(db.incarnation, reason)]
        )
        if stopped is not None:
            self._track(None, stopped)
        _stop(ref)

    def _scheduled_start(self, name: str) -> None:
        db = self._dbs.get(name)
        if db is not None and db.mailbox is None and not self._stopping:
            self._start_mailbox(name, db)

    def _failed(self, msg: MailboxFailed) -> None:
        if msg.record:
            self._append(msg.db, list(msg.record))  # the failure itself, ahead of anything
        db = self._dbs.get(msg.db)
        if db is None or msg.incarnation != db.incarnation or self._stopping:
            return  # an abandoned incarnation, a database no longer served, or shutting down
        now = self._deps.clock.now()
        if db.mailbox is not None:
            ref, db.mailbox = db.mailbox, None
            # Fence the old incarnation out before anything else (a hung one may wake).
            self._deps.registry.abandon(msg.db, msg.incarnation)
            if msg.cause == "hung":
                ref.stop(block=False)  # it may never read this; the fence is what counts
        self._last_crash[msg.db] = now
        if crash_burst(self._last_crash, len(self._dbs), now):
            self._deps.on_fatal(
                f"{len(self._last_crash)} mailboxes failed at once; the process must restart"
            )
            return
        if db.gave_up and db.started_at is not None:
            survived = (now - db.started_at).total_seconds()
            if survived < self._deps.policy.within_seconds:
                self._give_up(
                    msg.db,
                    db,
                    GiveUp(
                        0, self._deps.policy.within_seconds, self._deps.policy.backoff_max_seconds
                    ),
                )
                return
            db.gave_up = False
        history = self._history(db, now)
        decision = decide(self._deps.policy, history, now, self._deps.jitter(), msg.cause)
        if isinstance(decision, GiveUp):
            self._give_up(msg.db, db, decision)
            return
        self._schedule(msg.db, db, RestartScheduled(decision.delay, msg.cause, decision.attempt))

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
        db.gave_up = True
        event = MailboxGaveUp(decision.restarts, decision.within_seconds, decision.retry_in)
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
        db = self._dbs.get(msg.db)
        if db is None or self._stopping:
            return
        command_id = msg.command_ids[0] if msg.command_ids else None
        requested = RestartRequested(msg.source, msg.requested_by, command_id)
        self._append(msg.db, [requested], db)
        if db.pending is not None:
            db.pending.cancel()
        self._stop_mailbox(msg.db, db, "restart requested")
        now = self._deps.clock.now()
        decision = decide_requested(self._deps.policy, self._history(db, now), now)
        db.gave_up = False
        self._append(
            msg.db, [RestartScheduled(decision.delay, decision.cause, decision.attempt)], db
        )
        self._start_mailbox(msg.db, db)

    # --- queries (ask) ---------------------------------------------------------------

    def mailboxes(self) -> dict[str, int | None]:
        """Return each served database's live incarnation (None: none running now)."""
        return {
            n: (db.incarnation if db.mailbox is not None else None) for n, db in self._dbs.items()
        }

    def ignored(self) -> dict[str, str]:
        """Return the databases not served, and why."""
        return dict(self._ignored)

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
                if len(db.history) > 2 * HISTORY_KEPT:
                    del db.history[:HISTORY_KEPT]
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
    """Stop an actor, waiting briefly; a hung one is left behind (its fence holds)."""
    with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
        ref.stop(block=True, timeout=2.0)
