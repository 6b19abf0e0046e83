"""The SQLAlchemy event store: SQLite files, PostgreSQL, and other SQL servers.

Writes go through one writer thread (group commit): every ``append`` is queued,
and the writer commits all that are waiting in one transaction, so many small
appends from many actors share one commit. On SQLite the connection runs in WAL
mode with ``synchronous=NORMAL`` (a commit survives a crash or kill of the process;
a power cut may lose the last few) and write transactions start with
``BEGIN IMMEDIATE``; on PostgreSQL they take ``LOCK TABLE events IN EXCLUSIVE MODE``
(readers are not blocked). Holding the write lock, the writer numbers events
``max(seq) + 1, …`` itself, so ``seq`` is gap-free and in commit order: a follower
that reads past its last ``seq`` never misses an event committed late.

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
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from events.clock import Clock, SystemClock
from events.codec import DEFAULT_CODEC, Codec
from events.errors import ConcurrencyError, StoreClosedError
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


_STOP = object()


def _placeholders(paramstyle: str, n: int) -> list[str]:
    """Return ``n`` positional parameter markers in the driver's own style."""
    if paramstyle == "qmark":
        return ["?"] * n
    if paramstyle in ("format", "pyformat"):
        return ["%s"] * n
    if paramstyle == "numeric":
        return [f":{i + 1}" for i in range(n)]
    raise ValueError(f"the database driver's parameter style {paramstyle!r} is not supported")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level, so SQLAlchemy's "begin" event decides how a
    # transaction starts (the pysqlite recipe in SQLAlchemy's SQLite dialect docs).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _make_engines(url: str) -> tuple[Engine, Engine]:
    """Return (read engine, write engine) for ``url``."""
    read = create_engine(url, pool_pre_ping=True)
    if read.dialect.name != "sqlite":
        return read, read
    write = create_engine(url, pool_size=1, max_overflow=0)
    for engine, begin_sql in ((read, "BEGIN"), (write, "BEGIN IMMEDIATE")):
        event.listen(engine, "connect", _sqlite_pragmas)

        def _begin(conn: Connection, _sql: str = begin_sql) -> None:
            conn.exec_driver_sql(_sql)

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
        self._read_engine, self._write_engine = _make_engines(url)
        self._dialect = self._read_engine.dialect.name
        marks = ", ".join(_placeholders(self._read_engine.dialect.paramstyle, 6))
        self._insert_sql = (
            f"INSERT INTO events (seq, stream, version, type, recorded_at, data) VALUES ({marks})"
        )
        self._counts_sql = _counts_upsert(self._read_engine.dialect.name, self._read_engine)
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
        with self._write_engine.begin() as conn:
            if self._dialect == "postgresql":
                conn.exec_driver_sql("LOCK TABLE events IN EXCLUSIVE MODE")
            seq = conn.scalar(select(func.coalesce(func.max(events_table.c.seq), 0))) or 0
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
                conn.exec_driver_sql(self._insert_sql, rows)
                self._add_counts(conn, Counter((r[1], r[3]) for r in rows))
        self._versions = versions
        return outcome

    def _add_counts(self, conn: Connection, added: Counter[tuple[str, str]]) -> None:
        """Add ``added`` to the stored counts, in the caller's write transaction."""
        params = [(stream, type_, n) for (stream, type_), n in added.items()]
        if self._counts_sql is not None:
            conn.exec_driver_sql(self._counts_sql, params)
            return
        c = counts_table.c
        for stream, type_, n in params:  # any other database: update, else insert
            changed = conn.execute(
                update(counts_table)
                .where(c.stream == stream, c.type == type_)
                .values(events=c.events + n)
            ).rowcount
            if changed == 0:
                conn.execute(insert(counts_table).values(stream=stream, type=type_, events=n))

    def _backfill_counts(self) -> None:
        """Count a log written before ``event_counts`` existed (once, at its first open)."""
        c = events_table.c
        with self._write_engine.begin() as conn:
            if self._dialect == "postgresql":
                conn.exec_driver_sql("LOCK TABLE events IN EXCLUSIVE MODE")
            grouped = select(c.stream, c.type, func.count()).group_by(c.stream, c.type)
            conn.execute(delete(counts_table))
            conn.execute(insert(counts_table).from_select(["stream", "type", "events"], grouped))

    def _write(self) -> Any:
        """A write transaction that holds the log's write lock (as the writer's do)."""
        return _Locked(self._write_engine, self._dialect)

    @staticmethod
    def _read_version(conn: Connection, stream: str) -> int:
        return (
            conn.scalar(
                select(func.coalesce(func.max(events_table.c.version), 0)).where(
                    events_table.c.stream == stream
                )
            )
            or 0
        )

    # --- reading ---------------------------------------------------------------------

    def append_latency(self) -> tuple[Mapping[float, int], float, int]:
        """The append-to-commit histogram, as ``LatencyHistogram.snapshot``."""
        return self.latency.snapshot()

    def stream_version(self, stream: str) -> int:
        with self._read_engine.connect() as conn:
            return self._read_version(conn, stream)

    def last_seq(self) -> int:
        with self._read_engine.connect() as conn:
            return conn.scalar(select(func.coalesce(func.max(events_table.c.seq), 0))) or 0

    def read_chunks(
        self,
        after_seq: int = 0,
        *,
        stream: str | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        after_version: int = 0,
    ) -> Iterator[Sequence[RawRecord]]:
        c = events_table.c
        stmt = select(c.seq, c.stream, c.version, c.type, c.recorded_at, c.data).where(
            c.seq > after_seq
        )
        if stream is not None:
            # Through the (stream, version) index: within a stream, version order is
            # seq order, and the planner must not walk the whole log by seq instead.
            # ``until`` is not a filter but where reading stops (below), so the rows after
            # it are never visited.
            stmt = stmt.where(c.stream == stream).order_by(c.version)
            if after_version:
                stmt = stmt.where(c.version > after_version)
            if limit is not None:
                stmt = stmt.limit(limit)
            chunks = self._row_chunks(stmt)
            return chunks if until is None else _stop_after(chunks, to_micros(until))
        stmt = stmt.order_by(c.seq)
        if limit is not None:
            stmt = stmt.limit(limit)
        chunks = self._row_chunks(stmt)
        return chunks if until is None else _stop_after(chunks, to_micros(until))

    def _row_chunks(self, stmt: Any) -> Iterator[Sequence[Any]]:
        # A generator: the connection is held only while the caller iterates, and
        # rows arrive in chunks, so memory does not grow with the log.
        with self._read_engine.connect() as conn:
            if self._dialect == "sqlite":
                # pysqlite's cursor already streams; going around SQLAlchemy's
                # result rows makes a full replay about 1.6 times faster.
                compiled = stmt.compile(dialect=self._read_engine.dialect)
                params = [compiled.params[name] for name in compiled.positiontup or ()]
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.execute(str(compiled), params)
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
        c = events_table.c
        stmt = select(c.seq, c.stream, c.version, c.type, c.recorded_at, c.data)
        if up_to_seq is not None:
            stmt = stmt.where(c.seq <= up_to_seq)
        if stream is not None:
            stmt = stmt.where(c.stream == stream).order_by(c.version.desc())
        else:
            stmt = stmt.order_by(c.seq.desc())
        with self._read_engine.connect() as conn:
            rows = conn.execute(stmt.limit(n)).all()
        return [RawRecord(s, st, v, t, a, bytes(d)) for s, st, v, t, a, d in reversed(rows)]

    def streams(self) -> list[str]:
        # One index seek per stream ("skip scan"), not a walk over every row's index entry.
        stream = events_table.c.stream
        found: list[str] = []
        with self._read_engine.connect() as conn:
            following = select(func.min(stream))
            name = conn.scalar(following)
            while name is not None:
                found.append(name)
                name = conn.scalar(following.where(stream > name))
        return found

    # --- retention and stored state --------------------------------------------------

    def delete_events(self, seqs: Sequence[int]) -> int:
        if not seqs:
            return 0
        c = events_table.c
        with self._write() as conn:
            rows = conn.execute(
                select(c.seq, c.stream, c.version, c.type).where(c.seq.in_(list(seqs)))
            ).all()
            newest = {s: self._read_version(conn, s) for s in {stream for _, stream, _, _ in rows}}
            doomed = [r for r in rows if r[2] != newest[r[1]]]
            if not doomed:
                return 0
            conn.execute(delete(events_table).where(c.seq.in_([r[0] for r in doomed])))
            gone = Counter((r[1], r[3]) for r in doomed)
            k = counts_table.c
            conn.execute(
                update(counts_table)
                .where(k.stream == bindparam("s"), k.type == bindparam("t"))
                .values(events=k.events - bindparam("n")),
                [{"s": s, "t": t, "n": n} for (s, t), n in gone.items()],
            )
            return len(doomed)

    def event_counts(self) -> dict[tuple[str, str], int]:
        with self._read_engine.connect() as conn:
            if self._has_counts is None:
                self._has_counts = inspect(conn).has_table(counts_table.name)
            if self._has_counts:
                k = counts_table.c
                rows = conn.execute(select(k.stream, k.type, k.events).where(k.events > 0))
            else:  # a log written before the counts were kept, opened read-only: count it
                c = events_table.c
                rows = conn.execute(
                    select(c.stream, c.type, func.count()).group_by(c.stream, c.type)
                )
            return {(stream, type_): int(n) for stream, type_, n in rows}

    def save_checkpoint(self, name: str, seq: int, state: bytes) -> None:
        k = checkpoints_table.c
        with self._write_engine.begin() as conn:
            conn.execute(delete(checkpoints_table).where(k.name == name))
            conn.execute(
                insert(checkpoints_table).values(
                    name=name, seq=seq, saved_at=to_micros(self._clock.now()), state=state
                )
            )

    def load_checkpoint(self, name: str) -> tuple[int, bytes] | None:
        k = checkpoints_table.c
        with self._read_engine.connect() as conn:
            if not inspect(conn).has_table(checkpoints_table.name):
                return None
            row = conn.execute(select(k.seq, k.state).where(k.name == name)).first()
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
    """``with``: a write transaction holding the log's write lock; yields the connection."""

    def __init__(self, engine: Engine, dialect: str) -> None:
        self._engine = engine
        self._dialect = dialect
        self._cm: Any = None

    def __enter__(self) -> Connection:
        self._cm = self._engine.begin()
        conn: Connection = self._cm.__enter__()
        if self._dialect == "postgresql":
            conn.exec_driver_sql("LOCK TABLE events IN EXCLUSIVE MODE")
        return conn

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


def _counts_upsert(dialect: str, engine: Engine) -> str | None:
    """The statement that adds to ``event_counts`` in one call, or None (update, insert)."""
    marks = ", ".join(_placeholders(engine.dialect.paramstyle, 3))
    head = f"INSERT INTO event_counts (stream, type, events) VALUES ({marks}) "
    if dialect in ("sqlite", "postgresql"):
        return head + (
            "ON CONFLICT (stream, type) DO UPDATE SET events = event_counts.events + "
            "excluded.events"
        )
    if dialect in ("mysql", "mariadb"):
        return head + "ON DUPLICATE KEY UPDATE events = events + VALUES(events)"
    return None


def sqlite_file_of(url: str) -> Path | None:
    """Return the file of a SQLite URL, or None for another backend or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "")
