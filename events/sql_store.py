"""The SQLAlchemy event store: SQLite files, PostgreSQL, and other SQL servers.

Writes go through one writer thread (group commit): every ``append`` is queued,
and the writer commits all that are waiting in one transaction, so many small
appends from many actors share one commit. On SQLite the connection runs in WAL
mode with ``synchronous=NORMAL`` (a commit survives a crash or kill of the process;
a power cut may lose the last few).

Every write transaction first takes the log's write lock, which every writer of the
log (any process) takes: SQLite's ``BEGIN IMMEDIATE``; PostgreSQL's ``LOCK TABLE events
IN EXCLUSIVE MODE``; on MariaDB/MySQL a named lock (``GET_LOCK``, one per database, held
until after the commit); on SQL Server the ``max(seq)`` read itself, with ``UPDLOCK,
HOLDLOCK`` (a range lock past the last row, held to the end of the transaction).
Readers are never blocked. Holding it, the writer numbers events ``max(seq) + 1, …``
itself, so ``seq`` is gap-free, unique and in commit order: a follower that reads past
its last ``seq`` never misses an event committed late. Any other kind of database is
refused (``UnsupportedStoreError``): nothing there would keep two writers apart.

Every statement is made through ``actors.statements`` (the dialect contract).

``recorded_at`` is stored as integer microseconds since the Unix epoch (UTC): one
portable, exact type that every backend reads fast.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from actors.statements import (
    ALL_BACKENDS,
    EVENTS,
    SERVER,
    constant,
    driver_form,
    render,
    statement,
)
from events.clock import Clock, SystemClock
from events.codec import DEFAULT_CODEC, Codec
from events.errors import ConcurrencyError, EventLogError, StoreClosedError
from events.latency import LatencyHistogram
from events.recorded import RawRecord, Recorded, to_micros
from events.store import ANY, PendingAppend
from events.types import Event

metadata = MetaData()

events_table = Table(
    "events",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("stream", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(100), nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    UniqueConstraint("stream", "version", name="uq_events_stream_version"),
)

checkpoints_table = Table(
    "event_checkpoints",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("saved_at", BigInteger, nullable=False),
    Column("state", LargeBinary, nullable=False),
)
"""A reader's stored fold of the log up to ``seq`` (start-up reads it, then only what is newer)."""

counts_table = Table(
    "event_counts",
    metadata,
    Column("stream", String(255), primary_key=True),
    Column("type", String(100), primary_key=True),
    Column("events", BigInteger, nullable=False),
)
"""How many events of each type each stream holds: kept with every append and delete."""

_MAX_BATCH_EVENTS = 10_000
_READ_CHUNK = 5_000

ACCEPTED_BACKENDS = ALL_BACKENDS
"""The kinds of database whose write lock keeps ``seq`` gap-free (dialect names)."""

LOCK_WAIT_SECONDS = 30
"""How long a writer waits for another process's write lock (SQLite's busy timeout too)."""


class UnsupportedStoreError(EventLogError):
    """Raised when the log's database is of a kind whose writers it cannot keep apart."""


def check_backend(url: str) -> None:
    """Raise ``UnsupportedStoreError`` (one line, naming it) unless ``url``'s kind of
    database is one the store keeps ``seq`` gap-free on. Pure."""
    backend = make_url(url).get_backend_name()
    kind = "mysql" if backend == "mariadb" else backend
    if kind not in ACCEPTED_BACKENDS:
        raise UnsupportedStoreError(
            f"the event log cannot be kept on {backend}: seq would not stay gap-free with "
            "two writers; use SQLite, PostgreSQL, MariaDB/MySQL or SQL Server"
        )


_ONLY_PG = frozenset({"postgresql"})
_ONLY_MARIADB = frozenset({"mysql"})

_PG_LOCK = constant(
    "events.pg_lock",
    text("LOCK TABLE events IN EXCLUSIVE MODE"),
    target=EVENTS,
    backends=_ONLY_PG,
)
"""PostgreSQL: the log's write lock (readers are not blocked), until the commit."""

_MARIADB_LOCK_NAME = "CONCAT('email_service_events:', SHA1(DATABASE()))"  # <= 64 characters
_MARIADB_GET_LOCK = constant(
    "events.get_lock",
    text(f"SELECT GET_LOCK({_MARIADB_LOCK_NAME}, {LOCK_WAIT_SECONDS})"),
    target=SERVER,
    backends=_ONLY_MARIADB,
)
"""MariaDB/MySQL: the log's write lock, one per database, taken before the transaction."""
_MARIADB_RELEASE_LOCK = constant(
    "events.release_lock",
    text(f"SELECT RELEASE_LOCK({_MARIADB_LOCK_NAME})"),
    target=SERVER,
    backends=_ONLY_MARIADB,
)

_LAST_SEQ = constant("events.last_seq", select(func.coalesce(func.max(events_table.c.seq), 0)))
"""The newest ``seq`` (a reader's question)."""

_LAST_SEQ_LOCKED = constant(
    "events.last_seq_locked",
    select(func.coalesce(func.max(events_table.c.seq), 0)).with_hint(
        events_table, "WITH (UPDLOCK, HOLDLOCK)", dialect_name="mssql"
    ),
    target=EVENTS,
)
"""The newest ``seq``, read by the writer holding the write lock. On SQL Server the read
is the lock: an update range lock past the last row, held to the end of the transaction,
which a second writer's same read waits for (and no insert can pass)."""


_INSERT_KEYS = ("seq", "stream", "version", "type", "recorded_at", "data")
_INSERT = constant(
    "events.insert",
    text(
        "INSERT INTO events (seq, stream, version, type, recorded_at, data) "
        "VALUES (:seq, :stream, :version, :type, :recorded_at, :data)"
    ),
    params=[{"seq": 1, "stream": "db:x", "version": 1, "type": "T", "recorded_at": 0, "data": b""}],
    target=EVENTS,
)
"""The events of one commit, one ``executemany`` at the driver's level."""

_COUNTS_KEYS = ("stream", "type", "events")
_COUNTS_SAMPLE = [{"stream": "db:x", "type": "T", "events": 2}]
_COUNTS_UPSERT = {
    "sqlite": constant(
        "events.counts_upsert",
        text(
            "INSERT INTO event_counts (stream, type, events) VALUES (:stream, :type, :events) "
            "ON CONFLICT (stream, type) DO UPDATE SET "
            "events = event_counts.events + excluded.events"
        ),
        params=_COUNTS_SAMPLE,
        target=EVENTS,
        backends=frozenset({"sqlite", "postgresql"}),
    ),
    "mysql": constant(
        "events.counts_upsert.mysql",
        text(
            "INSERT INTO event_counts (stream, type, events) VALUES (:stream, :type, :events) "
            "ON DUPLICATE KEY UPDATE events = events + VALUES(events)"
        ),
        params=_COUNTS_SAMPLE,
        target=EVENTS,
        backends=_ONLY_MARIADB,
    ),
}
"""Adds to ``event_counts`` in one statement, where the database has an upsert."""
_COUNTS_UPSERT["postgresql"] = _COUNTS_UPSERT["sqlite"]

_SQL_SERVER = frozenset({"mssql"})


@statement("events.counts_add", "db:x", "T", 2, target=EVENTS, backends=_SQL_SERVER)
def _counts_add(stream: str, type_: str, n: int) -> Any:
    """Add ``n`` to one stream's count of one type (SQL Server: no upsert; then insert)."""
    c = counts_table.c
    return (
        update(counts_table).where(c.stream == stream, c.type == type_).values(events=c.events + n)
    )


@statement("events.counts_insert", "db:x", "T", 2, target=EVENTS, backends=_SQL_SERVER)
def _counts_insert(stream: str, type_: str, n: int) -> Any:
    """A stream's first count of one type."""
    return insert(counts_table).values(stream=stream, type=type_, events=n)


_COUNTS_CLEAR = constant("events.counts_clear", delete(counts_table), target=EVENTS)
_COUNTS_BACKFILL = constant(
    "events.counts_backfill",
    insert(counts_table).from_select(
        ["stream", "type", "events"],
        select(events_table.c.stream, events_table.c.type, func.count()).group_by(
            events_table.c.stream, events_table.c.type
        ),
    ),
    target=EVENTS,
)
_COUNTS_READ = constant(
    "events.counts",
    select(counts_table.c.stream, counts_table.c.type, counts_table.c.events).where(
        counts_table.c.events > 0
    ),
    target=EVENTS,
)
_COUNTS_COUNTED = constant(
    "events.counts_counted",
    select(events_table.c.stream, events_table.c.type, func.count()).group_by(
        events_table.c.stream, events_table.c.type
    ),
    target=EVENTS,
)
_COUNTS_SUBTRACT = constant(
    "events.counts_subtract",
    update(counts_table)
    .where(counts_table.c.stream == bindparam("s"), counts_table.c.type == bindparam("t"))
    .values(events=counts_table.c.events - bindparam("n")),
    params=[{"s": "db:x", "t": "T", "n": 1}],
    target=EVENTS,
)


def _positional(name: str, dialect: Any, keys: tuple[str, ...]) -> tuple[str, bool]:
    """The registered ``name`` at the driver's level, and whether its parameters are
    positional (then given in the order of ``keys``, as its text names them)."""
    sql, params = driver_form(name, dialect, dict.fromkeys(keys, 0))
    return sql, isinstance(params, tuple)


@statement("events.stream_version", "db:x", target=EVENTS)
def _stream_version(stream: str) -> Any:
    """A stream's newest version (0 when it has none)."""
    return select(func.coalesce(func.max(events_table.c.version), 0)).where(
        events_table.c.stream == stream
    )


@statement("events.read", 0, "db:x", 50, 3, target=EVENTS)
def _read(after_seq: int, stream: str | None, limit: int | None, after_version: int = 0) -> Any:
    """Events after ``after_seq`` (of one stream past ``after_version``, in version order;
    else in ``seq`` order)."""
    c = events_table.c
    stmt = select(c.seq, c.stream, c.version, c.type, c.recorded_at, c.data).where(
        c.seq > after_seq
    )
    # One stream: through the (stream, version) index; within a stream, version order is
    # seq order, and the planner must not walk the whole log by seq instead.
    if stream is None:
        stmt = stmt.order_by(c.seq)
    else:
        stmt = stmt.where(c.stream == stream).order_by(c.version)
        if after_version:
            stmt = stmt.where(c.version > after_version)
    return stmt if limit is None else stmt.limit(limit)


@statement("events.read_last", 50, "db:x", 900, target=EVENTS)
def _read_last(n: int, stream: str | None, up_to_seq: int | None) -> Any:
    """The newest ``n`` events (of one stream; at or before ``up_to_seq``), newest first."""
    c = events_table.c
    stmt = select(c.seq, c.stream, c.version, c.type, c.recorded_at, c.data)
    if up_to_seq is not None:
        stmt = stmt.where(c.seq <= up_to_seq)
    if stream is not None:
        stmt = stmt.where(c.stream == stream).order_by(c.version.desc())
    else:
        stmt = stmt.order_by(c.seq.desc())
    return stmt.limit(n)


@statement("events.version_at", 900, "db:x", target=EVENTS)
def _version_at(seq: int, stream: str) -> Any:
    """The version of the event ``seq`` when it is one of ``stream``'s (the primary key)."""
    c = events_table.c
    return select(c.version).where(c.seq == seq, c.stream == stream)


@statement("events.read_last_to_version", 50, "db:x", 40, target=EVENTS)
def _read_last_to_version(n: int, stream: str, version: int) -> Any:
    """The newest ``n`` events of ``stream`` at or before ``version``, newest first: one
    range of the (stream, version) index."""
    c = events_table.c
    return (
        select(c.seq, c.stream, c.version, c.type, c.recorded_at, c.data)
        .where(c.stream == stream, c.version <= version)
        .order_by(c.version.desc())
        .limit(n)
    )


@statement("events.next_stream", "db:x", target=EVENTS)
def _next_stream(after: str | None) -> Any:
    """The first stream name after ``after`` (the first of all: None)."""
    stream = events_table.c.stream
    first = select(func.min(stream))
    return first if after is None else first.where(stream > after)


@statement("events.heads_of", [3, 4], target=EVENTS)
def _rows_of(seqs: list[int]) -> Any:
    c = events_table.c
    return select(c.seq, c.stream, c.version, c.type).where(c.seq.in_(seqs))


@statement("events.delete", [3, 4], target=EVENTS)
def _delete(seqs: list[int]) -> Any:
    return delete(events_table).where(events_table.c.seq.in_(seqs))


@statement("events.checkpoint_clear", "memory", target=EVENTS)
def _checkpoint_clear(name: str) -> Any:
    return delete(checkpoints_table).where(checkpoints_table.c.name == name)


@statement("events.checkpoint_save", "memory", 9, 0, b"\x90", target=EVENTS)
def _checkpoint_save(name: str, seq: int, saved_at: int, state: bytes) -> Any:
    return insert(checkpoints_table).values(name=name, seq=seq, saved_at=saved_at, state=state)


@statement("events.checkpoint_load", "memory", target=EVENTS)
def _checkpoint_load(name: str) -> Any:
    k = checkpoints_table.c
    return select(k.seq, k.state).where(k.name == name)


_STOP = object()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level, so SQLAlchemy's "begin" event decides how a
    # transaction starts (the pysqlite recipe in SQLAlchemy's SQLite dialect docs).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


_ONLY_SQLITE = frozenset({"sqlite"})
_SQLITE_BEGIN = constant(
    "events.sqlite_begin", text("BEGIN"), target=SERVER, backends=_ONLY_SQLITE, transaction=False
)
_SQLITE_BEGIN_IMMEDIATE = constant(
    "events.sqlite_begin_immediate",
    text("BEGIN IMMEDIATE"),
    target=SERVER,
    backends=_ONLY_SQLITE,
    transaction=False,
)
"""SQLite: the log's write lock, taken as the writer's transaction begins."""


def _make_engines(url: str) -> tuple[Engine, Engine]:
    """Return (read engine, write engine) for ``url``."""
    read = create_engine(url, pool_pre_ping=True)
    if read.dialect.name != "sqlite":
        return read, read
    write = create_engine(url, pool_size=1, max_overflow=0)
    for engine, begin in ((read, _SQLITE_BEGIN), (write, _SQLITE_BEGIN_IMMEDIATE)):
        event.listen(engine, "connect", _sqlite_pragmas)

        def _begin(conn: Connection, _begin: Any = begin) -> None:
            conn.execute(_begin)

        event.listen(engine, "begin", _begin)
    return read, write


class SqlEventStore:
    """An event store in the ``events`` table of any SQLAlchemy database."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        codec: Codec = DEFAULT_CODEC,
        poll_interval: float = 0.2,
        create: bool = True,
        commit_delay: float = 0.0,
    ) -> None:
        """Open the log at ``url``; ``create`` makes the ``events`` table if missing.

        A reader that must not change a database (the command line) passes
        ``create=False``. The writer thread starts with the first append.

        ``commit_delay`` (seconds) is how long the writer waits, once an append has
        woken it, before it commits what has queued up (PostgreSQL's ``commit_delay``,
        in effect). The server process sets it to half a millisecond: appends that come
        in a burst (a crash, its restart decision and the next start) share one commit,
        and the writer does not take the interpreter lock from the threads that are
        acting on them at that moment. Order is unchanged; each append waits longer.
        """
        self.codec = codec
        self._clock = clock or SystemClock()
        self._poll_interval = poll_interval
        self._commit_delay = commit_delay
        self.latency = LatencyHistogram()
        """Time from each append to its commit (``/metrics``)."""
        check_backend(url)
        self._read_engine, self._write_engine = _make_engines(url)
        dialect = self._read_engine.dialect
        self._dialect = "mysql" if dialect.name == "mariadb" else dialect.name
        self._insert_sql, self._insert_positional = _positional(
            "events.insert", dialect, _INSERT_KEYS
        )
        upsert = _COUNTS_UPSERT.get(self._dialect)
        self._counts_sql: tuple[str, bool] | None = None
        if upsert is not None:
            name = "events.counts_upsert" + (".mysql" if self._dialect == "mysql" else "")
            self._counts_sql = _positional(name, dialect, _COUNTS_KEYS)
        self._has_counts: bool | None = None  # whether event_counts exists (older logs lack it)
        if create:
            had_counts = inspect(self._write_engine).has_table(counts_table.name)
            metadata.create_all(self._write_engine)
            if not had_counts:
                self._backfill_counts()
            self._has_counts = True
        self._queue: queue.SimpleQueue[PendingAppend | object] = queue.SimpleQueue()
        self._versions: dict[str, int] = {}  # writer thread only: cache, verified by the unique key
        self._appended = threading.Condition()
        self._known_last_seq = 0
        self._closed = False
        self._close_lock = threading.Lock()
        self._writer: threading.Thread | None = None

    # --- appending -------------------------------------------------------------------

    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> list[Recorded]:
        return self.append_async(stream, expected_version, events).result()

    def append_async(
        self, stream: str, expected_version: int, events: Sequence[Event]
    ) -> PendingAppend:
        encode = self.codec.encode
        request = PendingAppend(
            stream, expected_version, events, [encode(e) for e in events], self._appended
        )
        with self._close_lock:
            if self._closed:
                raise StoreClosedError("the event store is closed")
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="event-store-writer", daemon=True
                )
                self._writer.start()
            self._queue.put(request)
        return request

    def _write_loop(self) -> None:
        """The writer thread: take every waiting append and commit them together."""
        get = self._queue.get
        while True:
            first = get()
            if first is _STOP:
                return
            if self._commit_delay > 0:
                time.sleep(self._commit_delay)
            assert isinstance(first, PendingAppend)
            batch = [first]
            count = len(first.events)
            stop = False
            while count < _MAX_BATCH_EVENTS:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                assert isinstance(nxt, PendingAppend)
                batch.append(nxt)
                count += len(nxt.events)
            self._commit_batch(batch)
            if stop:
                return

    def _commit_batch(self, batch: list[PendingAppend]) -> None:
        try:
            try:
                done = self._commit(batch, trust_cache=True)
            except IntegrityError:
                # Another process wrote since we cached: re-read under the lock.
                self._versions.clear()
                done = self._commit(batch, trust_cache=False)
        except Exception as exc:
            self._versions.clear()
            with self._appended:
                for request in batch:
                    request.resolve(None, exc)
                self._appended.notify_all()
            return
        committed = time.monotonic()
        for request, _ in done:
            self.latency.observe(committed - request.queued_at)
        with self._appended:
            for request, result in done:
                if isinstance(result, Exception):
                    request.resolve(None, result)
                else:
                    request.resolve(result, None)
                    if result:
                        self._known_last_seq = max(self._known_last_seq, result[-1].seq)
            self._appended.notify_all()

    def _commit(
        self, batch: list[PendingAppend], *, trust_cache: bool
    ) -> list[tuple[PendingAppend, list[Recorded] | Exception]]:
        now = self._clock.now()
        micros = to_micros(now)
        outcome: list[tuple[PendingAppend, list[Recorded] | Exception]] = []
        rows: list[tuple[int, str, int, str, int, bytes]] = []
        versions: dict[str, int] = dict(self._versions) if trust_cache else {}
        with self._write() as conn:
            seq = conn.scalar(_LAST_SEQ_LOCKED) or 0
            for request in batch:
                current = versions.get(request.stream)
                if current is None:
                    current = self._read_version(conn, request.stream)
                if request.expected != ANY and request.expected != current:
                    outcome.append(
                        (request, ConcurrencyError(request.stream, request.expected, current))
                    )
                    versions[request.stream] = current
                    continue
                recorded: list[Recorded] = []
                for ev, data in zip(request.events, request.encoded, strict=True):
                    seq += 1
                    current += 1
                    name = type(ev).__name__
                    rows.append((seq, request.stream, current, name, micros, data))
                    recorded.append(Recorded(seq, request.stream, current, now, ev))
                versions[request.stream] = current
                outcome.append((request, recorded))
            if rows:
                params: Any = rows
                if not self._insert_positional:
                    params = [dict(zip(_INSERT_KEYS, r, strict=True)) for r in rows]
                conn.exec_driver_sql(self._insert_sql, params)
                self._add_counts(conn, Counter((r[1], r[3]) for r in rows))
        self._versions = versions
        return outcome

    def _add_counts(self, conn: Connection, added: Counter[tuple[str, str]]) -> None:
        """Add ``added`` to the stored counts, in the caller's write transaction."""
        params = [(stream, type_, n) for (stream, type_), n in added.items()]
        if self._counts_sql is not None:
            sql, positional = self._counts_sql
            rows: Any = params
            if not positional:
                rows = [dict(zip(_COUNTS_KEYS, p, strict=True)) for p in params]
            conn.exec_driver_sql(sql, rows)
            return
        for stream, type_, n in params:  # SQL Server: update, else insert
            if conn.execute(_counts_add(stream, type_, n)).rowcount == 0:
                conn.execute(_counts_insert(stream, type_, n))

    def _backfill_counts(self) -> None:
        """Count a log written before ``event_counts`` existed (once, at its first open)."""
        with self._write() as conn:
            conn.execute(_COUNTS_CLEAR)
            conn.execute(_COUNTS_BACKFILL)

    def _write(self) -> Any:
        """A write transaction that holds the log's write lock (as the writer's do)."""
        return _Locked(self._write_engine, self._dialect)

    @staticmethod
    def _read_version(conn: Connection, stream: str) -> int:
        return conn.scalar(_stream_version(stream)) or 0

    # --- reading ---------------------------------------------------------------------

    def append_latency(self) -> tuple[Mapping[float, int], float, int]:
        """The append-to-commit histogram, as ``LatencyHistogram.snapshot``."""
        return self.latency.snapshot()

    def stream_version(self, stream: str) -> int:
        with self._read_engine.connect() as conn:
            return self._read_version(conn, stream)

    def last_seq(self) -> int:
        with self._read_engine.connect() as conn:
            return conn.scalar(_LAST_SEQ) or 0

    def read_chunks(
        self,
        after_seq: int = 0,
        *,
        stream: str | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        after_version: int = 0,
    ) -> Iterator[Sequence[RawRecord]]:
        # ``until`` is not a filter but where reading stops (below), so the rows after it
        # are never visited.
        chunks = self._row_chunks(_read(after_seq, stream, limit, after_version))
        return chunks if until is None else _stop_after(chunks, to_micros(until))

    def _row_chunks(self, stmt: Any) -> Iterator[Sequence[Any]]:
        # A generator: the connection is held only while the caller iterates, and
        # rows arrive in chunks, so memory does not grow with the log.
        with self._read_engine.connect() as conn:
            if self._dialect == "sqlite":
                # pysqlite's cursor already streams; going around SQLAlchemy's
                # result rows makes a full replay about 1.6 times faster.
                sql, params = render(stmt, self._read_engine.dialect, {})
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.execute(sql, params)
                    while chunk := cursor.fetchmany(_READ_CHUNK):
                        yield chunk
                finally:
                    cursor.close()
                return
            # yield_per makes SQLAlchemy use a server-side cursor where the driver has one.
            result = conn.execution_options(yield_per=_READ_CHUNK).execute(stmt)
            try:
                for part in result.partitions():
                    yield [(s, st, v, t, a, bytes(d)) for s, st, v, t, a, d in part]
            finally:
                result.close()

    def read_last(
        self, n: int, *, stream: str | None = None, up_to_seq: int | None = None
    ) -> list[RawRecord]:
        if n <= 0:
            return []
        with self._read_engine.connect() as conn:
            statement = _read_last(n, stream, up_to_seq)
            if stream is not None and up_to_seq is not None:
                # A replay's end is the stream's own event (``replay --db --until``): its
                # version bounds the index range, where ``seq <= up_to_seq`` would walk
                # back over every later event of the stream first (half a million rows in
                # the middle of a year's log). Within a stream seq and version rise together.
                version = conn.scalar(_version_at(up_to_seq, stream))
                if version is not None:
                    statement = _read_last_to_version(n, stream, version)
            rows = conn.execute(statement).all()
        return [RawRecord(s, st, v, t, a, bytes(d)) for s, st, v, t, a, d in reversed(rows)]

    def streams(self) -> list[str]:
        # One index seek per stream ("skip scan"), not a walk over every row's index entry.
        found: list[str] = []
        with self._read_engine.connect() as conn:
            name = conn.scalar(_next_stream(None))
            while name is not None:
                found.append(name)
                name = conn.scalar(_next_stream(name))
        return found

    # --- retention and stored state --------------------------------------------------

    def delete_events(self, seqs: Sequence[int]) -> int:
        if not seqs:
            return 0
        with self._write() as conn:
            rows = conn.execute(_rows_of(list(seqs))).all()
            newest = {s: self._read_version(conn, s) for s in {stream for _, stream, _, _ in rows}}
            doomed = [r for r in rows if r[2] != newest[r[1]]]
            if not doomed:
                return 0
            conn.execute(_delete([r[0] for r in doomed]))
            gone = Counter((r[1], r[3]) for r in doomed)
            conn.execute(_COUNTS_SUBTRACT, [{"s": s, "t": t, "n": n} for (s, t), n in gone.items()])
            return len(doomed)

    def event_counts(self) -> dict[tuple[str, str], int]:
        with self._read_engine.connect() as conn:
            if self._has_counts is None:
                self._has_counts = inspect(conn).has_table(counts_table.name)
            # A log written before the counts were kept, opened read-only: count it.
            rows = conn.execute(_COUNTS_READ if self._has_counts else _COUNTS_COUNTED)
            return {(stream, type_): int(n) for stream, type_, n in rows}

    def save_checkpoint(self, name: str, seq: int, state: bytes) -> None:
        with self._write_engine.begin() as conn:
            conn.execute(_checkpoint_clear(name))
            conn.execute(_checkpoint_save(name, seq, to_micros(self._clock.now()), state))

    def load_checkpoint(self, name: str) -> tuple[int, bytes] | None:
        with self._read_engine.connect() as conn:
            if not inspect(conn).has_table(checkpoints_table.name):
                return None
            row = conn.execute(_checkpoint_load(name)).first()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def wait_for_append(self, after_seq: int, timeout: float) -> bool:
        # Real time, not the injected clock: this waits on I/O from other processes.
        deadline = time.monotonic() + timeout
        while True:
            with self._appended:
                if self._known_last_seq > after_seq:
                    return True
            if self.last_seq() > after_seq:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._appended:
                self._appended.wait(min(remaining, self._poll_interval))

    # --- life ------------------------------------------------------------------------

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
            writer = self._writer
        if writer is not None:
            writer.join()
        self._read_engine.dispose()
        self._write_engine.dispose()


def _stop_after(chunks: Iterator[Sequence[Any]], cutoff_us: int) -> Iterator[Sequence[Any]]:
    """Yield the rows recorded at or before ``cutoff_us``; stop reading at the first after."""
    for chunk in chunks:
        if chunk[-1][4] <= cutoff_us:
            yield chunk
            continue
        kept = [row for row in chunk if row[4] <= cutoff_us]
        if kept:
            yield kept
        chunks.close()  # type: ignore[attr-defined]
        return


class _Locked:
    """``with``: a write transaction holding the log's write lock; yields the connection.

    SQLite takes it as the transaction begins (``BEGIN IMMEDIATE``, the write engine's
    begin event); PostgreSQL with ``LOCK TABLE`` first in the transaction; SQL Server
    with a ``max(seq)`` read first in it (``_LAST_SEQ_LOCKED``); MariaDB/MySQL with a named
    lock on the transaction's connection before the transaction starts, released after
    it ends (commit or rollback), so the next writer's first read sees this one's rows.
    """

    def __init__(self, engine: Engine, dialect: str) -> None:
        self._engine = engine
        self._dialect = dialect
        self._conn: Connection | None = None
        self._tx: Any = None

    def __enter__(self) -> Connection:
        conn = self._engine.connect()
        try:
            if self._dialect == "mysql":
                got = conn.execute(_MARIADB_GET_LOCK).scalar()
                conn.commit()  # the transaction the lock's SELECT began: none is open now
                if got != 1:
                    raise EventLogError(
                        f"another writer held the event log's lock for {LOCK_WAIT_SECONDS} s"
                    )
            self._tx = conn.begin()
            if self._dialect == "postgresql":
                conn.execute(_PG_LOCK)
            elif self._dialect == "mssql":
                conn.execute(_LAST_SEQ_LOCKED)  # its range lock, to the end of the transaction
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def __exit__(self, kind: Any, *exc: Any) -> None:
        conn = self._conn
        assert conn is not None
        try:
            if kind is None:
                self._tx.commit()
            else:
                self._tx.rollback()
        finally:
            try:
                if self._dialect == "mysql":
                    conn.execute(_MARIADB_RELEASE_LOCK)
                    conn.commit()
            except BaseException:
                # Not released: a connection back in the pool would hold it for ever.
                conn.invalidate()
                raise
            finally:
                conn.close()


def sqlite_file_of(url: str) -> Path | None:
    """Return the file of a SQLite URL, or None for another backend or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "")
