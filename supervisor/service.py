"""The server process: builds the supervision tree from the settings and runs it.

``run_service`` returns only when asked to stop (SIGTERM, SIGINT, Windows' console
control events: ``supervisor.stop_signals``; or ``stop``) or
when the tree has failed; it returns the exit code (``serve_until_stopped`` also says
why). Order at start: take the locks that keep a second service off this log and these
databases, open the event log, start the tree (the supervisor reads the stored start-up
memory and the events after it), wait for it to answer for as long as it takes while
telling systemd it is still starting (``EXTEND_TIMEOUT_USEC``, ``STATUS=``), start the
status page (a port that is taken is a ``ChildCrashed`` of ``http`` and a retry with
backoff, never the end of the mail), tell systemd READY. While running it tells
systemd's watchdog only while the supervisor, every child actor (watchdog, command
reader, check-in projector) and the scheduler's thread answer. Every child is
supervised: its death reaches the supervisor as ``ChildFailed``, which restarts it
through ``Tree.restarters`` (``supervisor.child_policy``). Order at stop: tell
systemd STOPPING, stop the tree (children, then all mailboxes at once), stop the
timers, close the practice databases' shared engines, flush and close the log — within
``STOP_BUDGET_SECONDS``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pykka

from actors.checkin_projector import CheckInProjectorActor, CheckInProjectorDeps
from actors.checkin_writer import PRUNE_EVERY_SECONDS, CheckInWriter
from actors.command_reader import CommandReaderActor, CommandReaderDeps
from actors.database_selftest import DatabaseSelfTest
from actors.engines import DB_TIMEOUT_SECONDS, EngineRegistry
from actors.fence import IncarnationRegistry
from actors.log_keeper import LatestMemory, LogKeeperActor, LogKeeperDeps
from actors.mail.oauth import OAuthEndpoints, TokenSources
from actors.mail.steps import CheckInStep, InboxStep, MailCheck, OutboxStep
from actors.mail.stored_secrets import Secrets
from actors.mail.work import MailDeps, MailWork, ProbeLimiter
from actors.mailbox_work import MakeWork, Work, WorkContext
from actors.messages import ChildFailed, Ping
from actors.scheduler import ThreadScheduler
from actors.selftest import SelfTest
from actors.server_budget import ServerBudgets
from actors.watchdog import WatchdogActor, WatchdogDeps
from config import Settings, mask_url
from events.clock import SystemClock
from events.retention import Retention
from events.sql_store import SqlEventStore, sqlite_file_of
from supervisor import discovery, exit_codes, instance_lock, process_memory, stop_signals
from supervisor.http.app import create_app
from supervisor.http.hosts import allowed_hosts
from supervisor.http.metrics import MetricsView, ProcessGauges
from supervisor.http.server import HttpError, HttpServer
from supervisor.http.source import PracticeStatusSource
from supervisor.local_zone import local_zone
from supervisor.restart_policy import RestartPolicy
from supervisor.sd_notify import Notifier
from supervisor.stop_signals import StopRequest
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


def _say_key_file(secrets: Secrets, path: Path) -> None:
    """Log at start what is wrong with the key file, if anything: encrypted secrets need it
    (a missing one is normal until the wizard first saves; one that is there but cannot be
    used is a warning)."""
    problem = secrets.ring().problem
    if problem:
        exists = path.exists() or path.is_symlink()
        log.log(logging.WARNING if exists else logging.INFO, "secrets at rest: %s", problem)


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


class StartProgress:
    """The start-up's newest step, in words, for systemd's ``STATUS=`` line; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._line = "starting"

    def set(self, line: str) -> None:
        """Note the step start-up is at (the supervisor's thread)."""
        with self._lock:
            self._line = line

    def get(self) -> str:
        """Return the newest step."""
        with self._lock:
            return self._line


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
    latest: LatestMemory = field(default_factory=LatestMemory)  # the log keeper's memory
    progress: StartProgress = field(default_factory=lambda: StartProgress())
    budgets: ServerBudgets | None = None
    restarters: dict[str, Callable[[], pykka.ActorRef[Any] | None]] = field(
        default_factory=dict
    )  # child -> start it again (the supervisor's ``restart_child``)


def reporter(supervisor: pykka.ActorRef[Any], child: str) -> Callable[[str], None]:
    """Return what ``child`` calls when it dies: a ``ChildFailed`` to the supervisor."""

    def failed(error: str) -> None:
        try:
            supervisor.tell(ChildFailed(child, error))
        except pykka.ActorDeadError:
            log.error("the supervisor is gone; the %s died: %s", child, error)

    return failed


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
    restarters: dict[str, Callable[[], pykka.ActorRef[Any] | None]] = {}
    fatal: list[str] = []
    fatal_event = threading.Event()
    latest = LatestMemory()
    progress = StartProgress()

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
        tokens=TokenSources(OAuthEndpoints.for_service(settings), clock),
        secrets=Secrets.for_service(Path(settings.service.key_file)),
        checkin_seconds=settings.health.checkin_seconds,
    )
    _say_key_file(mail.secrets, Path(settings.service.key_file))

    # This process's name in the fence row, and its start in check-ins (beside the
    # contract's server_name, the server_id): two processes never share either.
    instance = instance_lock.instance_name(settings.service.server_id)
    started = instance_lock.service_instance()

    def default_selftest(db: str, incarnation: int) -> SelfTest:
        return DatabaseSelfTest(
            db,
            engines.url(db),
            incarnation,
            instance,
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
            service_instance=started,
            interval_seconds=settings.health.checkin_seconds,
            clock=clock,
            url=engines.url(db),
            on_written=lambda: gauges.checkin_written(db),
            keep_days=settings.health.checkin_history_days,
            first_prune_after=rng.uniform(0.0, PRUNE_EVERY_SECONDS),
            grace_seconds=settings.health.grace_seconds,
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
            on_failed=reporter(ref, "watchdog"),
        )  # fmt: skip
        reader = CommandReaderDeps(
            clock,
            scheduler,
            command_poll_seconds(settings),
            ref,
            engines.get,
            command_idle_poll_seconds(settings),
            on_restart=limiter.grant,
            on_failed=reporter(ref, "commands"),
        )
        memory = latest.get()
        scheduler.on_died = reporter(ref, "scheduler")
        restarters["watchdog"] = lambda: WatchdogActor.start(watchdog, position)
        restarters["commands"] = lambda: CommandReaderActor.start(reader)
        restarters["scheduler"] = lambda: scheduler.restart()
        children["watchdog"] = WatchdogActor.start(watchdog, position)
        children["commands"] = CommandReaderActor.start(reader)
        keeper = keeper_deps(
            settings, store, clock, scheduler, latest, rng, on_failed=reporter(ref, "keeper")
        )
        restarters["keeper"] = lambda: LogKeeperActor.start(keeper, latest.get())
        children["keeper"] = LogKeeperActor.start(keeper, memory)
        if real_work:
            projector = CheckInProjectorDeps(
                store,
                clock,
                scheduler,
                settings.health.checkin_seconds,
                engines.get,
                settings.service.server_id,
                SERVICE_VERSION,
                service_instance=started,
                on_written=gauges.checkin_written,
                on_failed=reporter(ref, "checkins"),
            )
            restarters["checkins"] = lambda: CheckInProjectorActor.start(projector, latest.get())
            children["checkins"] = CheckInProjectorActor.start(projector, memory)
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
        on_memory=latest.set,
        progress=progress.set,
        restart_child=lambda name: restarters[name](),
    )
    supervisor = SupervisorActor.start(deps)
    return Tree(
        store,
        scheduler,
        supervisor,
        engines,
        children,
        gauges,
        fatal,
        fatal_event,
        latest,
        progress,
        budgets=engines.budgets,
        restarters=restarters,
    )


def keeper_deps(
    settings: Settings,
    store: SqlEventStore,
    clock: SystemClock,
    scheduler: ThreadScheduler,
    latest: LatestMemory,
    rng: random.Random,
    on_failed: Callable[[str], None] = lambda _error: None,
) -> LogKeeperDeps:
    """The log keeper's settings: retention as configured, its first run within the hour;
    ``on_failed``: what it calls when it dies (the supervisor's ``reporter``)."""
    r = settings.retention
    first = min(60.0, r.prune_every_seconds)  # a minute in, spread over the first hour
    retention = (
        Retention(r.steady_days, r.selftest_failure_days, r.keep_days) if r.enabled else None
    )
    return LogKeeperDeps(
        store,
        clock,
        scheduler,
        r.checkpoint_seconds,
        retention,
        r.prune_every_seconds,
        r.batch_rows,
        first_prune_after=rng.uniform(first, max(first, min(3600.0, r.prune_every_seconds))),
        latest=latest,
        on_failed=on_failed,
    )


def tree_answers(tree: Tree) -> bool:
    """Return whether the supervisor, every child actor and the scheduler answer in time.

    A child that died and waits for its restart does not answer. The HTTP server is
    not asked: without it only the status page is missing (it is restarted on its own).
    """
    try:
        # The supervisor first: once it answers, it has built its children.
        if tree.supervisor.ask(Ping(), timeout=PING_TIMEOUT_SECONDS) is not True:
            return False
        children = list(tree.children.values())
        if "watchdog" not in tree.children:
            return False
        futures = [child.ask(Ping(), block=False) for child in children]
        deadline = time.monotonic() + PING_TIMEOUT_SECONDS
        for future in futures:
            if future.get(timeout=max(0.0, deadline - time.monotonic())) is not True:
                return False
        return tree.scheduler.answers(max(0.0, deadline - time.monotonic()))
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


STARTING_EXTEND_SECONDS = 30.0
"""How much more time each ``EXTEND_TIMEOUT_USEC=`` asks systemd for while the tree starts."""
STARTING_POLL_SECONDS = 1.0
"""How often start-up is looked at (and systemd told it goes on) until the tree answers."""


@dataclass(frozen=True)
class Outcome:
    """How the service ended: the exit code and, for a failure, why (one line)."""

    code: int
    reason: str = ""


def wait_until_up(tree: Tree, notifier: Notifier, stop: threading.Event) -> str | None:
    """Wait for the tree to answer, telling systemd start-up goes on; return why it failed.

    No fixed limit: however long the start takes (a long log to read, a slow database
    server), each second systemd gets ``EXTEND_TIMEOUT_USEC=`` (``STARTING_EXTEND_SECONDS``)
    and a ``STATUS=`` line saying which step start-up is at. Returns None once the
    supervisor and the watchdog answer, or when a stop was asked for meanwhile; the reason
    when the tree failed (a fatal report, or the supervisor or watchdog gone).
    """
    while not stop.is_set():
        if tree.fatal_event.is_set():
            return tree.fatal[0] if tree.fatal else "the supervision tree failed while starting"
        notifier.extend_timeout(STARTING_EXTEND_SECONDS)
        notifier.status(f"starting: {tree.progress.get()}")
        try:
            answered = tree.supervisor.ask(Ping(), timeout=STARTING_POLL_SECONDS)
        except pykka.Timeout:
            continue  # still building: its Init is long, not failed
        except pykka.ActorDeadError:
            time.sleep(0.1)  # its on_failure reports why (fatal) just before it is gone
            return tree.fatal[0] if tree.fatal else "the supervisor stopped while starting"
        if answered is not True:
            return "the supervisor gave a wrong answer to a ping"
        watchdog = tree.children.get("watchdog")
        if watchdog is None:
            return "the supervisor started without a watchdog"
        try:
            if watchdog.ask(Ping(), timeout=PING_TIMEOUT_SECONDS) is True:
                return None
        except pykka.Timeout:
            continue
        except pykka.ActorDeadError:
            return "the watchdog stopped while starting"
    return None


def run_service(
    settings: Settings,
    *,
    notifier: Notifier | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
    install_signals: bool = True,
) -> int:
    """Run the service until stopped or failed; return the process's exit code."""
    return serve_until_stopped(
        settings,
        notifier=notifier,
        stop=stop,
        on_ready=on_ready,
        install_signals=install_signals,
    ).code


def serve_until_stopped(
    settings: Settings,
    *,
    notifier: Notifier | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
    install_signals: bool = True,
    request: StopRequest | None = None,
) -> Outcome:
    """Run the service until stopped or failed; return the exit code and why.

    A stop comes from ``stop`` being set, ``request.ask`` (its reason goes into the log),
    or, with ``install_signals``, the operating system (``supervisor.stop_signals``:
    SIGTERM/SIGINT; on Windows Ctrl-C, Ctrl-Break, close and shutdown). ``request.stopped``
    is set once the service has stopped, whatever the outcome.
    """
    notifier = notifier or Notifier()
    request = request or StopRequest(stop)
    if install_signals:
        stop_signals.install(request)
    try:
        return _locked_serve(settings, notifier, request, on_ready)
    finally:
        request.stopped.set()


def _locked_serve(
    settings: Settings,
    notifier: Notifier,
    request: StopRequest,
    on_ready: Callable[[str], None] | None,
) -> Outcome:
    try:
        locks = instance_lock.acquire(settings.service.event_store, settings.databases.server_url)
    except instance_lock.AlreadyRunningError as exc:
        return Outcome(exit_codes.ALREADY_RUNNING, str(exc))
    except OSError as exc:  # the log's folder (where its lock lives) cannot be made
        where = mask_url(settings.service.event_store)
        return Outcome(exit_codes.CONFIG, f"cannot open the event log {where}: {exc}")
    try:
        return _serve(settings, notifier, request, on_ready)
    finally:
        locks.release()


def _serve(
    settings: Settings,
    notifier: Notifier,
    request: StopRequest,
    on_ready: Callable[[str], None] | None,
) -> Outcome:
    """``serve_until_stopped`` once this process holds the locks."""
    stop = request.event
    notifier.status("starting: opening the event log")
    try:
        tree = start_tree(settings)
    except OSError as exc:  # its folder cannot be made or written (a database error is raised)
        where = mask_url(settings.service.event_store)
        return Outcome(exit_codes.CONFIG, f"cannot open the event log {where}: {exc}")
    failed = wait_until_up(tree, notifier, stop)
    if failed is not None:
        notifier.stopping()
        stop_tree(tree, failed)
        return Outcome(exit_codes.TREE_FAILED, f"the service did not start: {failed}")
    if stop.is_set():
        notifier.stopping()
        stop_tree(tree, request.reason)
        return Outcome(exit_codes.OK)
    http = HttpChild(settings, tree)
    tree.restarters["http"] = http.restart
    try:
        http.restart()
    except HttpError as exc:  # mail goes on; the supervisor retries with backoff
        reporter(tree.supervisor, "http")(str(exc))
    notifier.ready("serving")
    if on_ready is not None:
        on_ready(http.url)
    interval = notifier.watchdog_interval or 5.0
    outcome = Outcome(exit_codes.OK)
    reason = ""
    next_ping = time.monotonic()
    next_trim = time.monotonic() + process_memory.TRIM_SECONDS
    while not stop.is_set():
        # Short waits, so a signal is acted on within a second.
        if tree.fatal_event.wait(timeout=1.0):
            reason = tree.fatal[0] if tree.fatal else "the tree failed"
            outcome = Outcome(exit_codes.TREE_FAILED, reason)
            break
        if time.monotonic() >= next_trim:
            next_trim = time.monotonic() + process_memory.TRIM_SECONDS
            process_memory.release_free_memory()
        if stop.is_set() or time.monotonic() < next_ping:
            continue
        next_ping = time.monotonic() + interval
        if tree_answers(tree):
            notifier.watchdog()
        else:
            log.error("the supervision tree does not answer: no watchdog ping")
    notifier.stopping()
    http.stop()
    stop_tree(tree, reason or request.reason)
    return outcome


class HttpChild:
    """The status page as a child of the supervisor: started, restarted, stopped.

    ``restart`` (the supervisor's thread, or the main thread at start) stops the old
    server, if any, and starts a new one, raising ``HttpError`` when it cannot listen;
    after ``stop`` it does nothing.
    """

    def __init__(self, settings: Settings, tree: Tree) -> None:
        self._settings = settings
        self._tree = tree
        self._lock = threading.Lock()
        self._server: HttpServer | None = None
        self._closed = False

    @property
    def url(self) -> str:
        """The page's address: the bound one, or the configured one while not listening."""
        with self._lock:
            if self._server is not None:
                return self._server.url
        http = self._settings.http
        host = f"[{http.host}]" if ":" in http.host else http.host
        return f"http://{host}:{http.port}/"

    def restart(self) -> None:
        with self._lock:
            if self._closed:
                return
            old, self._server = self._server, None
            if old is not None:
                old.stop()
            self._server = start_http(
                self._settings, self._tree, reporter(self._tree.supervisor, "http")
            )

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            if self._server is not None:
                self._server.stop()


def start_http(
    settings: Settings, tree: Tree, on_died: Callable[[str], None] = lambda _error: None
) -> HttpServer:
    """Start the status page and API on ``http.listen``; raise ``HttpError`` if it cannot."""
    metrics = MetricsView(
        tree.store,
        tree.gauges,
        tree_up=lambda: tree_answers(tree),
        append_latency=tree.store.append_latency,
        budgets=None if tree.budgets is None else tree.budgets.views,
        memory=tree.latest.get,
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
    app = create_app(source, allowed_hosts(settings.http.host, settings.http.allowed_hosts))
    server = HttpServer(app, settings.http.host, settings.http.port, on_died)
    server.start()
    log.info("status page at %s", server.url)
    return server
