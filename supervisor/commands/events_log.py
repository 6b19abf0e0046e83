"""``email-service events tail | replay | stats | archive | prune``: the event log, for support.

Every read goes through an index or the stored counts (``tail`` and the timeline read
backwards from the newest event; ``replay --db`` reads one stream through ``(stream,
version)``; ``stats`` reads ``event_counts``), so none walks the whole log.

Each subcommand imports what only it uses (the progress bar, the projections and their
snapshots, the archive, retention, compaction) in its own function, not here: ``stats``
and ``tail`` then start without them (issue 11: each read command within 1 s;
``bench/cli_imports.py`` measures it, ``tests/test_cli_imports.py`` keeps it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from events.describe import as_json, describe, plain, where
from events.recorded import Recorded, from_micros
from events.types import db_of, stream_for
from supervisor import exit_codes
from supervisor.commands.common import (
    CliError,
    masked,
    open_event_log,
    parse_time,
    print_json,
    print_table,
    printable,
)

if TYPE_CHECKING:
    from config import Settings
    from events.projections.health import DbHealth
    from events.projections.service_view import ServiceView
    from events.projections.tree import TreeEntry
    from events.sql_store import SqlEventStore

PROGRESS_FROM = 50_000
"""Logs at least this long show a progress bar (on a terminal) while replaying."""


def register(subparsers: Any) -> None:
    """Add the ``events`` command and its three subcommands."""
    parser = subparsers.add_parser(
        "events",
        help="the event log: follow it, replay it into past state, count it",
        description="Read the service's event log (service.event_store). Nothing is written.",
    )
    sub = parser.add_subparsers(dest="events_command", required=True, metavar="SUBCOMMAND")

    tail = sub.add_parser(
        "tail",
        help="print the newest events and follow new ones",
        description="Print the last N events, then every new one as it is appended "
        "(Ctrl-C to stop).",
    )
    tail.add_argument("-n", "--lines", type=_count, default=10, help="events to show first (10)")
    tail.add_argument("--db", metavar="NAME", help="only this practice database's events")
    tail.add_argument("--no-follow", action="store_true", help="print and exit, do not follow")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.set_defaults(handler=run_tail)

    rp = sub.add_parser(
        "replay",
        help="rebuild the state the service held (optionally at a past time)",
        description="Fold the log into the state the service held after its last event, or "
        "at --until; print each database's health, why databases have no mailbox, and the "
        "timeline that led there.",
    )
    rp.add_argument("--db", metavar="NAME", help="only this practice database")
    rp.add_argument(
        "--until", metavar="TIME", type=parse_time, help="stop at this time (ISO 8601, UTC)"
    )
    rp.add_argument(
        "--timeline", metavar="N", type=_count, default=30, help="timeline events to show (30)"
    )
    rp.add_argument(
        "--skip-corrupt",
        action="store_true",
        help="skip records that do not decode, and count them, instead of stopping",
    )
    rp.add_argument(
        "--window",
        metavar="SECONDS",
        type=float,
        help="restart window (supervision.within_seconds)",
    )
    rp.add_argument(
        "--full",
        action="store_true",
        help="fold the log from its first event, not from the stored start-up state "
        "(checks every record)",
    )
    rp.add_argument(
        "--from-archive",
        metavar="FILE",
        type=Path,
        help="replay an archive written by 'events archive' instead of the log",
    )
    rp.add_argument("--json", action="store_true", help="print JSON for programs")
    rp.set_defaults(handler=run_replay)

    stats = sub.add_parser(
        "stats",
        help="count events by type and by database",
        description="Count the log's events by type and by stream.",
    )
    stats.add_argument("--json", action="store_true", help="print JSON for programs")
    stats.set_defaults(handler=run_stats)

    archive = sub.add_parser(
        "archive",
        help="write the events recorded before a time to a file support can keep",
        description="Write every event recorded before --before to FILE (msgpack records in "
        "the log's own format): all that 'events prune --before' may delete, and the few "
        "it keeps. Read it back with 'events replay --from-archive FILE'. Nothing in the "
        "log changes.",
    )
    archive.add_argument(
        "--before", metavar="TIME", type=parse_time, required=True, help="ISO 8601, UTC"
    )
    archive.add_argument("--to", metavar="FILE", type=Path, required=True, help="file to write")
    archive.set_defaults(handler=run_archive)

    prune = sub.add_parser(
        "prune",
        help="delete old events now, as retention does",
        description="Run retention now: bring the stored start-up state up to date, then "
        "delete the events the [retention] settings let go (or, with --before, every event "
        "recorded before TIME), except each stream's newest event and the lifecycle events "
        "restart decisions still read. Records LogPruned. Safe while the service runs.",
    )
    prune.add_argument(
        "--before",
        metavar="TIME",
        type=parse_time,
        help="delete every kind of event recorded before TIME (ISO 8601, UTC)",
    )
    prune.add_argument(
        "--compact",
        action="store_true",
        help="then give the freed space back to the file system (SQLite logs; stop the "
        "service first: it needs the log to itself, and free disk up to the log's size)",
    )
    prune.add_argument("--json", action="store_true", help="print JSON for programs")
    prune.set_defaults(handler=run_prune)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


# --- replay --------------------------------------------------------------------------


@contextmanager
def _progress(total: int | None, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    if not enabled:
        yield None
        return
    # rich only for a bar on a terminal: a piped or short replay never loads it.
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, transient=True) as progress:  # rich draws on stderr's console
        task = progress.add_task("replay", total=total)
        yield lambda n: progress.advance(task, n)


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    # The projections and their snapshots: only replay folds events (see the docstring).
    from events.replay import replay_store
    from events.sql_store import SqlEventStore
    from events.stream_snapshots import start_before

    store: Any
    if args.from_archive is not None:
        from events.archive import ArchiveLog  # only replay --from-archive reads one

        if not args.from_archive.is_file():
            raise CliError(f"no archive at {args.from_archive}", exit_codes.NO_INPUT)
        store = ArchiveLog(args.from_archive)
        source = str(args.from_archive)
    else:
        store = open_event_log(settings)
        source = masked(settings.service.event_store)
    try:
        stream = stream_for(args.db) if args.db else None
        total = store.last_seq()
        start = None
        after_version = 0
        if args.until is None and not args.full and isinstance(store, SqlEventStore):
            start = _stored_start(store, stream)
        elif stream is not None and not args.full and isinstance(store, SqlEventStore):
            # A past time: from the newest snapshot of the stream at or before it.
            snapshot = start_before(store, stream, args.until)
            if snapshot is not None:
                start = (snapshot.view, snapshot.version)
                after_version = snapshot.version
        show_bar = sys.stderr.isatty() and not args.json and total >= PROGRESS_FROM
        with _progress(None if stream else total, show_bar) as on_progress:
            view, report = replay_store(
                store,
                view=start[0] if start else None,
                stream=stream,
                until=args.until,
                after_version=after_version,
                skip_corrupt=args.skip_corrupt,
                on_progress=on_progress,
            )
        if start is not None:
            report.events += start[1]
        timeline = _timeline(store, view, stream, args.until, args.timeline)
    finally:
        store.close()
    window = args.window or settings.supervision.within_seconds
    at = args.until or view.last_at
    if args.db and report.events == 0:
        raise CliError(f"no events for database {args.db!r} in the log", exit_codes.NO_INPUT)
    if args.json:
        print_json(
            {
                "event_log": source,
                "events": report.events,
                "last_seq": view.last_seq,
                "at": at.isoformat() if at else None,
                "skipped": [{"seq": e.seq, "reason": e.reason} for e in report.skipped],
                "service": view.service._asdict(),
                "databases": [
                    _db_json(name, view.health.get(name), view.tree.get(name), window, at)
                    for name in _names(view)
                ],
                "timeline": [as_json(r) for r in timeline],
            }
        )
        return exit_codes.OK
    _print_replay(source, view, report.events, report.skipped, timeline, window, at, args)
    return exit_codes.OK


def _stored_start(store: SqlEventStore, stream: str | None) -> tuple[ServiceView, int] | None:
    """The replay's start from the stored start-up state: its view (of ``stream``'s
    database only, with ``stream``) and how many events of that scope it covers."""
    from events.projections.service_view import ServiceInfo  # replay only (the docstring)
    from events.snapshot import load_checkpoint

    memory = load_checkpoint(store)
    if memory is None:
        return None
    view = memory.view
    db = None if stream is None else db_of(stream)
    if db is not None:
        view = replace(
            view,
            health={db: view.health[db]} if db in view.health else {},
            tree={db: view.tree[db]} if db in view.tree else {},
            service=ServiceInfo(),
        )
    counts = store.event_counts()
    covered = sum(n for (s, _t), n in counts.items() if stream is None or s == stream)
    # The counts are of the whole log now; what came after the state is replayed again.
    after = sum(len(chunk) for chunk in store.read_chunks(view.last_seq, stream=stream))
    return view, covered - after


def _names(view: ServiceView) -> list[str]:
    return sorted(set(view.health) | set(view.tree), key=str.casefold)


def _timeline(
    store: Any, view: ServiceView, stream: str | None, _until: datetime | None, n: int
) -> list[Recorded]:
    """Return the last ``n`` events up to the view's position (reading and decoding only
    those, backwards through an index)."""
    if n == 0 or view.last_seq == 0:
        return []
    rows = store.read_last(n, stream=stream, up_to_seq=view.last_seq)
    return list(store.codec.decode_chunks([rows], on_corrupt=lambda _e: None))


def _db_json(
    name: str, h: DbHealth | None, t: TreeEntry | None, window: float, at: datetime | None
) -> dict[str, Any]:
    return {
        "name": name,
        "status": h.status.value if h else None,
        "incarnation": h.incarnation if h else None,
        "status_since": h.since.isoformat() if h and h.since else None,
        "last_selftest_at": h.last_selftest_at.isoformat() if h and h.last_selftest_at else None,
        "last_selftest_ok": h.last_selftest_ok if h else None,
        "last_failure": [plain(d) for d in h.last_failure] if h else [],
        "last_failure_at": h.last_failure_at.isoformat() if h and h.last_failure_at else None,
        "restarts_in_window": h.restarts_within(window, at) if h and at else 0,
        "restarts_total": h.restarts_total if h else 0,
        "crashes_total": h.crashes_total if h else 0,
        "served": t.served if t else None,
        "reason": t.reason if t else None,
        "mailbox_incarnation": t.mailbox_incarnation if t else None,
        "why_no_mailbox": t.why_no_mailbox if t else None,
    }


def _when(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%d %H:%M:%SZ")


def _print_replay(
    source: str,
    view: ServiceView,
    events: int,
    skipped: list[Any],
    timeline: list[Recorded],
    window: float,
    at: datetime | None,
    args: argparse.Namespace,
) -> None:
    scope = f" of database {args.db!r}" if args.db else ""
    until = f" up to {_when(args.until)}" if args.until else ""
    say(f"Replayed {events:,} events{scope}{until} from {source}")
    say(f"State after seq {view.last_seq} ({_when(view.last_at)})")
    if skipped:
        seqs = ", ".join(str(e.seq) for e in skipped)
        say(f"Skipped {len(skipped)} corrupt record(s): seq {seqs}")
    s = view.service
    if s.starts:
        state = "running" if s.running else f"stopping/stopped ({s.stop_reason})"
        say(
            f"Service: {state}; server {s.server_id!r}, version {s.service_version}, "
            f"pid {s.pid}, started {_when(s.started_at)}; {s.starts} start(s) in the log"
        )
    print()
    rows = []
    for name in _names(view):
        h, t = view.health.get(name), view.tree.get(name)
        mailbox = "-"
        if t is not None:
            mailbox = (
                f"incarnation {t.mailbox_incarnation}"
                if t.mailbox_incarnation
                else t.why_no_mailbox
            )
        selftest = "-"
        if h is not None and h.last_selftest_at is not None:
            selftest = f"{_when(h.last_selftest_at)} {'ok' if h.last_selftest_ok else 'FAILED'}"
        rows.append(
            [
                name,
                h.status.value if h else "-",
                h.incarnation if h else "-",
                selftest,
                h.restarts_within(window, at) if h and at else 0,
                mailbox,
            ]
        )
    if rows:
        print_table(
            [
                "Database",
                "Status",
                "Incarnation",
                "Last self-test",
                f"Restarts ({window:g} s)",
                "Mailbox",
            ],
            rows,
        )
    else:
        say("No databases in the log.")
    for name in _names(view):
        h = view.health.get(name)
        if h is not None and h.last_failure:
            print()
            say(f"Last failure of {name} at {_when(h.last_failure_at)}:")
            for d in h.last_failure:
                say(f"  [{d.component}] {d.level}: {d.message}")
    if timeline:
        print()
        say(f"Timeline (last {len(timeline)} events{scope}):")
        for r in timeline:
            say("  " + describe(r))


# --- tail ----------------------------------------------------------------------------


def run_tail(args: argparse.Namespace, settings: Settings) -> int:
    store = open_event_log(settings)
    stream = stream_for(args.db) if args.db else None
    show: Callable[[Recorded], None] = (
        (lambda r: print_json_line(as_json(r))) if args.json else (lambda r: say(describe(r)))
    )
    try:
        last = store.last_seq()
        # Backwards through an index: the newest N, whatever the log's length.
        newest = store.read_last(args.lines, stream=stream, up_to_seq=last)
        first = list(store.codec.decode_chunks([newest]))
        for r in first:
            show(r)
        sys.stdout.flush()
        if args.no_follow:
            return exit_codes.OK
        try:
            while True:
                if not store.wait_for_append(last, timeout=1.0):
                    continue
                for chunk in store.read_chunks(last):
                    for r in store.codec.decode_chunks([chunk]):
                        if stream is None or r.stream == stream:
                            show(r)
                    last = chunk[-1][0]
                sys.stdout.flush()
        except KeyboardInterrupt:
            return exit_codes.OK
    finally:
        store.close()


def say(line: str) -> None:
    """Print one line for people, control characters (line breaks too) escaped
    (``printable``): an event's text (a subject, a server's reply, a database's name) never
    reaches the terminal raw, nor starts a line of its own."""
    print(printable(line))


def print_json_line(value: dict[str, Any]) -> None:
    print(json.dumps(value, default=str, ensure_ascii=False))


# --- stats ---------------------------------------------------------------------------


def run_stats(args: argparse.Namespace, settings: Settings) -> int:
    store = open_event_log(settings)
    by_type: Counter[str] = Counter()
    by_stream: Counter[str] = Counter()
    try:
        # Stored counts, kept with every append and delete: no scan of the log.
        for (stream, type_), n in store.event_counts().items():
            by_type[type_] += n
            by_stream[stream] += n
        oldest = next(iter(store.read_chunks(0, limit=1)), [])
        newest = store.read_last(1)
        last_seq = store.last_seq()
    finally:
        store.close()
    total = sum(by_type.values())
    first = from_micros(oldest[0][4]) if oldest else None
    last = from_micros(newest[0][4]) if newest else None
    if args.json:
        print_json(
            {
                "event_log": masked(settings.service.event_store),
                "events": total,
                "last_seq": last_seq,
                "first_at": first.isoformat() if first else None,
                "last_at": last.isoformat() if last else None,
                "by_type": dict(by_type.most_common()),
                "by_database": {where(s): n for s, n in by_stream.most_common()},
            }
        )
        return exit_codes.OK
    print(f"Event log {masked(settings.service.event_store)}")
    print(f"{total:,} events, last seq {last_seq}, from {_when(first)} to {_when(last)}\n")
    print_table(["Event type", "Count"], [[t, f"{n:,}"] for t, n in by_type.most_common()])
    print()
    print_table(["Database", "Events"], [[where(s), f"{n:,}"] for s, n in by_stream.most_common()])
    return exit_codes.OK


# --- archive and prune ---------------------------------------------------------------


def run_archive(args: argparse.Namespace, settings: Settings) -> int:
    from events.archive import write_archive_file  # only archive writes one (the docstring)

    store = open_event_log(settings)
    if not args.to.parent.is_dir():
        raise CliError(
            f"no folder {args.to.parent} to write {args.to.name} in", exit_codes.NO_INPUT
        )
    try:
        count = write_archive_file(store, args.before, args.to, written_at=datetime.now(UTC))
    finally:
        store.close()
    print(f"Wrote {count:,} events recorded before {_when(args.before)} to {args.to}")
    return exit_codes.OK


def run_prune(args: argparse.Namespace, settings: Settings) -> int:
    open_event_log(settings).close()  # says so when there is no log, creating nothing
    log_file = _sqlite_file(settings.service.event_store) if args.compact else None
    if args.compact and log_file is None:
        raise CliError(
            "--compact is for a SQLite event log; a database server gives space back itself "
            "(PostgreSQL: VACUUM FULL events; MariaDB: OPTIMIZE TABLE events)",
            exit_codes.USAGE,
        )
    # Retention and compaction: only prune (the docstring).
    from events.compact import compact_sqlite
    from events.retention import Retention, run_retention
    from events.sql_store import SqlEventStore
    from supervisor.instance_lock import AlreadyRunningError, acquire_log

    try:
        held = acquire_log(settings.service.event_store) if args.compact else None
    except AlreadyRunningError as exc:
        raise CliError(f"{exc}; stop it before --compact", exit_codes.ALREADY_RUNNING) from None
    store = SqlEventStore(settings.service.event_store)  # adds the tables an older log lacks
    r = settings.retention
    try:
        if args.before is not None:
            cutoffs = Retention.all_before(args.before)
        else:
            retention = Retention(r.steady_days, r.selftest_failure_days, r.keep_days)
            cutoffs = retention.cutoffs(datetime.now(UTC))
        run = run_retention(store, cutoffs, batch_rows=r.batch_rows)
        store.close()
        compacted = compact_sqlite(log_file) if log_file is not None else None
    finally:
        store.close()
        if held is not None:
            held.release()
    if args.json:
        print_json(
            {
                "deleted": run.deleted,
                "up_to_seq": run.covered_seq,
                "before": {kind: t.isoformat() for kind, t in run.cutoffs.items()},
                "file_bytes_before": compacted.before_bytes if compacted else None,
                "file_bytes_after": compacted.after_bytes if compacted else None,
            }
        )
    else:
        print(f"Deleted {run.deleted:,} events (none past seq {run.covered_seq})")
        if compacted is not None:
            print(
                f"Compacted the log file from {compacted.before_bytes / 1e6:,.1f} MB "
                f"to {compacted.after_bytes / 1e6:,.1f} MB"
            )
    return exit_codes.OK


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite log URL, or None for any other log."""
    from sqlalchemy.engine import make_url  # prune only, after opening the log loaded it

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "")
