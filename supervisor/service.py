"""The server process: builds the supervision tree from the settings and runs it.

``run_service`` returns only when asked to stop (SIGTERM, SIGINT, or ``stop``) or
when the tree has failed; it returns the exit code. Order at start: open the event
log, start the tree, tell systemd READY. While running it tells systemd's watchdog
only while the supervisor and the watchdog actor both answer. Order at stop: tell
systemd STOPPING, stop the tree (children, then all mailboxes at once), stop the
timers, close the practice databases' shared engines, flush and close the log — within
``STOP_BUDGET_SECONDS``.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pykka

from actors.checkin_projector import CheckInProjectorActor, CheckInProjectorDeps
from actors.checkin_writer import PRUNE_EVERY_SECONDS, CheckInWriter
from actors.command_reader import CommandReaderActor, CommandReaderDeps
from actors.database_selftest import DatabaseSelfTest
from actors.engines import DB_TIMEOUT_SECONDS, EngineRegistry
from actors.fence import IncarnationRegistry
from actors.mail.steps import CheckInStep, InboxStep, MailCheck, OutboxStep
from actors.mail.work import MailDeps, MailWork, ProbeLimiter
from actors.mailbox_work import MakeWork, Work, WorkContext
from actors.messages import Ping
from actors.scheduler import ThreadScheduler
from actors.selftest import SelfTest
from actors.server_budget import ServerBudgets
from actors.watchdog import WatchdogActor, WatchdogDeps
from config import Settings
from events.clock import SystemClock
from events.sql_store import SqlEventStore, sqlite_file_of
from supervisor import discovery, exit_codes
from supervisor.http.app import create_app
from supervisor.http.metrics import MetricsView, ProcessGauges
from supervisor.http.server import HttpError, HttpServer
from supervisor.http.source import PracticeStatusSource
from supervisor.local_zone import local_zone
from supervisor.restart_policy import RestartPolicy
from supervisor.sd_notify import Notifier
from supervisor.supervisor_actor import Served, SupervisorActor, SupervisorDeps

log = logging.getLogger(__name__)

SERVICE_VERSION = "0.1.0"
STOP_BUDGET_SECONDS = 8.0
"""Time the tree gets to stop (the contract asks for a clean stop within 10 s)."""
MAILBOX_STOP_SECONDS = 2.0
"""How long a stop waits for mailboxes: one between ticks stops within milliseconds, and
one waiting on a server (up to its timeout) runs on a daemon thread, left behind."""
PING_TIMEOUT_SECONDS = 5.0
COMMIT_DELAY_SECONDS = 0.0005
"""The event log's group-commit delay (see ``SqlEventStore``): a burst shares one commit."""


def command_poll_seconds(settings: Settings) -> float:
    """How often the command tables are read: a third of a check-in, between 1 and 5 s."""
    return max(1.0, min(5.0, settings.health.checkin_seconds / 3))


def command_idle_poll_seconds(settings: Settings) -> float:
    """The longest a quiet database's command table waits between reads: one check-in."""
    return max(command_poll_seconds(settings), settings.health.checkin_seconds)


def hang_after(settings: Settings) -> float:
    """Seconds without progress after which a mailbox is taken to hang: two check-in
    intervals (``supervisor.hang_rule``)."""
    return 2 * settings.health.checkin_seconds


def wait_limit(settings: Settings) -> float:
    """The longest any one wait of a mailbox may take: half the hang limit. The loader
    holds ``mail.io_timeout_seconds`` to it; database waits are the smaller of it and
    ``DB_TIMEOUT_SECONDS``."""
    return hang_after(settings) / 2


def db_timeout(settings: Settings) -> float:
    """Connecting to, and each wait on, a practice database (see ``wait_limit``)."""
    return min(DB_TIMEOUT_SECONDS, wait_limit(settings))


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite file URL (the event log's ``var/``) if missing."""
    path = sqlite_file_of(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def discover_served(
    settings: Settings, engines: EngineRegistry | None = None
) -> Sequence[Served] | None:
    """List the server's databases for the supervisor; None if the server does not answer.

    With ``engines``, a database already served is read through its own engine instead of
    a new one: at 1,000 databases that made a rescan cost 2 s of CPU every minute.
    """
    try:
        infos = discovery.discover(
            settings.databases.server_url,
            server_id=settings.service.server_id,
            genuine_server_check=settings.service.genuine_server_check,
            open_engine=None if engines is None else engines.served_engine,
            budgets=None if engines is None else engines.budgets,
        )
    except discovery.DiscoveryError as exc:
        log.error("cannot list the databases: %s", exc)
        return None
    return [
        Served(
            i.name,
            i.practice_name or "",
            i.eligibility.eligible,
            i.eligibility.reason,
            i.url,
            i.error,
        )
        for i in infos
    ]


@dataclass
class Tree:
    """A running tree and what it runs on."""

    store: SqlEventStore
    scheduler: ThreadScheduler
    supervisor: pykka.ActorRef[Any]
    engines: EngineRegistry = field(default_factory=EngineRegistry)
    children: dict[str, pykka.ActorRef[Any]] = field(default_factory=dict)
    gauges: ProcessGauges = field(default_factory=ProcessGauges)
    fatal: list[str] = field(default_factory=list)
    fatal_event: threading.Event = field(default_factory=threading.Event)
    budgets: ServerBudgets | None = None


def start_tree(
    settings: Settings,
    *,
    make_selftest: Callable[[str, int], SelfTest] | None = None,
    engines: EngineRegistry | None = None,
    make_work: MakeWork | None = None,
) -> Tree:
    """Open the event log and start the supervisor (which starts everything else).

    ``make_selftest`` replaces the database self-test (the bench wraps the real one);
    ``engines`` is the registry of shared engines to use (default: a new one);
    ``make_work`` replaces each mailbox's mail steps and check-ins (default: the real
    ones, ``mail_work``).
    """
    ensure_sqlite_folder(settings.service.event_store)
    store = SqlEventStore(settings.service.event_store, commit_delay=COMMIT_DELAY_SECONDS)
    scheduler = ThreadScheduler()
    clock = SystemClock()
    registry = IncarnationRegistry(store)
    engines = engines or EngineRegistry(
        budgets=ServerBudgets(
            settings.databases.max_connections, wait_seconds=db_timeout(settings)
        ),
        timeout=db_timeout(settings),
    )
    sup = settings.supervision
    policy = RestartPolicy(
        sup.max_restarts, sup.within_seconds, sup.backoff_min_seconds, sup.backoff_max_seconds
    )
    children: dict[str, pykka.ActorRef[Any]] = {}
    fatal: list[str] = []
    fatal_event = threading.Event()

    def on_fatal(reason: str) -> None:
        log.critical("%s", reason)
        fatal.append(reason)
        fatal_event.set()

    gauges = ProcessGauges()
    real_work = make_work is None
    limiter = ProbeLimiter()
    mail = MailDeps(
        settings.mail,
        settings.health.probe_seconds,
        limiter,
        local_zone(),
        report_depth=lambda db, depth: gauges.set("outbox_depth", db, depth),
    )

    def default_selftest(db: str, incarnation: int) -> SelfTest:
        return DatabaseSelfTest(
            db,
            engines.url(db),
            incarnation,
            settings.service.server_id,
            clock,
            engine=lambda: engines.get(db),
            write=not real_work,  # with check-ins, the check-in is the write
        )

    # Restart jitter, and each mailbox's first prune spread over the hour.
    rng = random.Random()

    def default_work(context: WorkContext) -> Sequence[Work]:
        db = context.db
        work = MailWork(
            db,
            context.incarnation,
            context.engine,
            context.append,
            clock,
            mail,
            context.flush,
            must_yield=context.must_yield,
            record=context.record,
        )
        writer = CheckInWriter(
            context.engine,
            server_name=settings.service.server_id,
            service_version=SERVICE_VERSION,
            interval_seconds=settings.health.checkin_seconds,
            clock=clock,
            url=engines.url(db),
            on_written=lambda: gauges.checkin_written(db),
            keep_days=settings.health.checkin_history_days,
            first_prune_after=rng.uniform(0.0, PRUNE_EVERY_SECONDS),
        )
        return [
            MailCheck(work),
            CheckInStep(writer, context.incarnation),
            OutboxStep(work),
            InboxStep(work),
        ]

    def start_children(ref: pykka.ActorRef[Any], position: int) -> dict[str, pykka.ActorRef[Any]]:
        watchdog = WatchdogDeps(
            store, clock, scheduler, max(1.0, settings.health.checkin_seconds / 3),
            hang_after(settings), ref, progress=registry.progress,
        )  # fmt: skip
        reader = CommandReaderDeps(
            clock,
            scheduler,
            command_poll_seconds(settings),
            ref,
            engines.get,
            command_idle_poll_seconds(settings),
            on_restart=limiter.grant,
        )
        children["watchdog"] = WatchdogActor.start(watchdog, position)
        children["commands"] = CommandReaderActor.start(reader)
        if real_work:
            projector = CheckInProjectorDeps(
                store,
                clock,
                scheduler,
                settings.health.checkin_seconds,
                engines.get,
                settings.service.server_id,
                SERVICE_VERSION,
                on_written=gauges.checkin_written,
            )
            children["checkins"] = CheckInProjectorActor.start(projector)
        return children

    deps = SupervisorDeps(
        store=store,
        registry=registry,
        clock=clock,
        scheduler=scheduler,
        policy=policy,
        server_id=settings.service.server_id,
        service_version=SERVICE_VERSION,
        rescan_seconds=settings.databases.rescan_seconds,
        checkin_seconds=settings.health.checkin_seconds,
        hang_after_seconds=hang_after(settings),
        discover=lambda: discover_served(settings, engines),
        make_selftest=make_selftest or default_selftest,
        jitter=rng.random,
        on_fatal=on_fatal,
        start_children=start_children,
        engines=engines,
        make_work=make_work or default_work,
    )
    supervisor = SupervisorActor.start(deps)
    return Tree(
        store, scheduler, supervisor, engines, children, gauges, fatal, fatal_event,
        budgets=engines.budgets,
    )  # fmt: skip


def tree_answers(tree: Tree) -> bool:
    """Return whether the supervisor and the watchdog both answer a ping in time."""
    try:
        # The supervisor first: once it answers, it has built its children.
        if tree.supervisor.ask(Ping(), timeout=PING_TIMEOUT_SECONDS) is not True:
            return False
        watchdog = tree.children.get("watchdog")
        return watchdog is not None and watchdog.ask(Ping(), timeout=PING_TIMEOUT_SECONDS) is True
    except (pykka.Timeout, pykka.ActorDeadError):
        return False


def stop_tree(tree: Tree, reason: str) -> None:
    """Stop the tree in order and close the log, within ``STOP_BUDGET_SECONDS``; never raises.

    The supervisor gives its mailboxes ``MAILBOX_STOP_SECONDS`` together. Every actor
    still registered after that is asked to stop; the others are waited for within what
    is left of the budget, but not a mailbox (one still waiting on a server, or a hung
    one abandoned earlier): it runs on a daemon thread and cannot hold the exit.
    """
    deadline = time.monotonic() + STOP_BUDGET_SECONDS
    if tree.budgets is not None:
        tree.budgets.close()  # a mailbox waiting for a database connection stops waiting
    try:
        tree.supervisor.proxy().stop_tree(reason, MAILBOX_STOP_SECONDS).get(
            timeout=STOP_BUDGET_SECONDS / 2
        )
    except (pykka.Timeout, pykka.ActorDeadError) as exc:
        log.error("the supervisor did not stop in order: %r", exc)
    for ref in reversed(pykka.ActorRegistry.get_all()):
        future = ref.stop(block=False)
        if getattr(ref.actor_class, "use_daemon_thread", False):
            continue  # a mailbox the supervisor already gave its time, or an abandoned one
        try:
            future.get(timeout=max(0.0, deadline - time.monotonic()))
        except pykka.ActorDeadError:
            pass
        except pykka.Timeout:  # an actor still in I/O: its thread ends on its timeout
            log.error("%s did not stop in time", ref)
    tree.scheduler.close()
    tree.engines.close()
    tree.store.close()  # flushes every pending append


def run_service(
    settings: Settings,
    *,
    notifier: Notifier | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
    install_signals: bool = True,
) -> int:
    """Run the service until stopped or failed; return the process's exit code."""
    notifier = notifier or Notifier()
    stop = stop or threading.Event()
    reason = ["stop requested"]
    if install_signals:

        def on_signal(signum: int, _frame: Any) -> None:
            reason[0] = signal.Signals(signum).name
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    tree = start_tree(settings)
    if not tree_answers(tree):
        stop_tree(tree, "the tree did not start")
        return exit_codes.TREE_FAILED
    try:
        http = start_http(settings, tree)
    except HttpError as exc:
        log.critical("%s", exc)
        stop_tree(tree, str(exc))
        return exit_codes.CONFIG
    notifier.ready("serving")
    if on_ready is not None:
        on_ready(http.url)
    interval = notifier.watchdog_interval or 5.0
    code = exit_codes.OK
    next_ping = time.monotonic()
    while not stop.is_set():
        # Short waits, so a signal is acted on within a second.
        if tree.fatal_event.wait(timeout=1.0):
            reason[0] = tree.fatal[0] if tree.fatal else "the tree failed"
            code = exit_codes.TREE_FAILED
            break
        if stop.is_set() or time.monotonic() < next_ping:
            continue
        next_ping = time.monotonic() + interval
        if tree_answers(tree):
            notifier.watchdog()
        else:
            log.error("the supervision tree does not answer: no watchdog ping")
    notifier.stopping()
    http.stop()
    stop_tree(tree, reason[0])
    return code


def start_http(settings: Settings, tree: Tree) -> HttpServer:
    """Start the status page and API on ``http.listen``; raise ``HttpError`` if it cannot."""
    metrics = MetricsView(
        tree.store,
        tree.gauges,
        tree_up=lambda: tree_answers(tree),
        append_latency=tree.store.append_latency,
        budgets=None if tree.budgets is None else tree.budgets.views,
    )
    source = PracticeStatusSource(
        settings.databases.server_url,
        server_id=settings.service.server_id,
        genuine_server_check=settings.service.genuine_server_check,
        grace=timedelta(seconds=settings.health.grace_seconds),
        tree_up=lambda: tree_answers(tree),
        metrics_text=metrics.text,
        budgets=tree.budgets,
    )
    server = HttpServer(create_app(source), settings.http.host, settings.http.port)
    server.start()
    log.info("status page at %s", server.url)
    return server
