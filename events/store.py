"""The event store interface, shared by every backend.

A store is an append-only log of events in streams. ``seq`` is the global order
(1, 2, … in commit order, without gaps); ``version`` is the position within one
stream (1, 2, …); ``(stream, version)`` is unique. Appends of several events are
atomic. An append names the version it expects the stream to be at, or ``ANY``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol

from events.codec import Codec
from events.recorded import RawRecord, Recorded
from events.types import Event

ANY = -1
"""Expected version that accepts the stream at whatever version it is."""


class PendingAppend:
    """An append on its way to the log; ``result()`` waits until it is durable.

    Lighter than ``concurrent.futures.Future`` (no lock of its own): the store
    resolves a whole group commit at once and wakes waiters on one condition.
    """

    __slots__ = (
        "_done",
        "_error",
        "_result",
        "_signal",
        "encoded",
        "events",
        "expected",
        "queued_at",
        "stream",
    )

    def __init__(
        self,
        stream: str,
        expected: int,
        events: Sequence[Event],
        encoded: list[bytes],
        signal: threading.Condition,
    ) -> None:
        self.stream = stream
        self.expected = expected
        self.events = events
        self.encoded = encoded
        self._signal = signal
        self.queued_at = time.monotonic()
        self._done = False
        self._result: list[Recorded] = []
        self._error: BaseException | None = None

    def resolve(self, result: list[Recorded] | None, error: BaseException | None) -> None:
        """Set the outcome; the caller holds ``signal`` and notifies it afterwards."""
        if result is not None:
            self._result = result
        self._error = error
        self._done = True

    def done(self) -> bool:
        """Return whether the append has been committed or has failed."""
        return self._done

    def result(self, timeout: float | None = None) -> list[Recorded]:
        """Wait for the outcome; return the recorded events or raise the append's error.

        Raises ``TimeoutError`` if ``timeout`` seconds pass first.
        """
        if not self._done:
            with self._signal:
                if not self._signal.wait_for(self.done, timeout):
                    raise TimeoutError(f"append to {self.stream!r} not durable after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._result


class EventStore(Protocol):
    """What every backend implements; see tests/store_contract.py for the rules."""

    codec: Codec

    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> list[Recorded]:
        """Append ``events`` atomically after ``expected_version`` (or ``ANY``).

        Returns them as recorded once durable. Raises ``ConcurrencyError`` when the
        stream is at another version, ``StoreClosedError`` after ``close()``.
        """
        ...

    def append_async(
        self, stream: str, expected_version: int, events: Sequence[Event]
    ) -> PendingAppend:
        """Like ``append``, but return at once; ``result()`` waits until durable."""
        ...

    def stream_version(self, stream: str) -> int:
        """Return the version of the newest event in ``stream`` (0 if empty)."""
        ...

    def last_seq(self) -> int:
        """Return the ``seq`` of the newest event in the log (0 if empty)."""
        ...

    def read_chunks(
        self,
        after_seq: int = 0,
        *,
        stream: str | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        after_version: int = 0,
    ) -> Iterator[Sequence[RawRecord]]:
        """Yield stored rows with ``seq > after_seq`` in ``seq`` order, in chunks.

        ``stream`` keeps one stream's rows, and ``after_version`` only those after that
        version of it (read through the stream's index from there); ``until`` stops at
        the first row recorded after it (the log's order is its history: a row after
        that one belongs after ``until`` even if a clock stepped back); ``limit`` stops
        after that many rows.
        Memory does not grow with the size of the log. A chunk's rows may be plain
        tuples of RawRecord's shape.
        """
        ...

    def streams(self) -> list[str]:
        """Return the names of all streams, sorted."""
        ...

    def read_last(
        self, n: int, *, stream: str | None = None, up_to_seq: int | None = None
    ) -> list[RawRecord]:
        """Return the newest ``n`` stored rows (of ``stream``; at or before ``up_to_seq``),
        oldest first, reading backwards through an index: no more than it returns,
        whatever the length of the log."""
        ...

    def wait_for_append(self, after_seq: int, timeout: float) -> bool:
        """Block until the log holds an event past ``after_seq`` or ``timeout`` ends.

        Appends from this process wake the caller at once; other processes' appends
        are seen by polling. Returns whether there is such an event.
        """
        ...

    def close(self) -> None:
        """Flush pending appends and release connections; idempotent."""
        ...

    def delete_events(self, seqs: Sequence[int]) -> int:
        """Delete the rows with these ``seq``s (retention); return how many went.

        Never deletes the newest event of a stream (so ``stream_version`` and the
        numbering of ``seq`` never go back): such a ``seq`` is left in place. Unknown
        ``seq``s are ignored. One short write transaction; the stored counts
        (``event_counts``) go down with the rows.
        """
        ...

    def event_counts(self) -> dict[tuple[str, str], int]:
        """Return how many events the log holds per ``(stream, type)``, without a scan.

        Kept by every append and every delete in the same transaction.
        """
        ...

    def save_checkpoint(self, name: str, seq: int, state: bytes) -> None:
        """Store ``state``, a reader's fold of the log up to ``seq``, under ``name``."""
        ...

    def load_checkpoint(self, name: str) -> tuple[int, bytes] | None:
        """Return ``(seq, state)`` last saved under ``name``, or None."""
        ...


def read_raw(
    store: EventStore, after_seq: int = 0, *, stream: str | None = None
) -> Iterator[RawRecord]:
    """Yield stored rows one by one (see ``EventStore.read_chunks``)."""
    for chunk in store.read_chunks(after_seq, stream=stream):
        for row in chunk:
            yield RawRecord(*row)


def read_stream(store: EventStore, stream: str, after_version: int = 0) -> list[Recorded]:
    """Return the decoded events of one stream past ``after_version``."""
    return [
        r
        for r in store.codec.decode_chunks(store.read_chunks(stream=stream))
        if r.version > after_version
    ]


def read_all(
    store: EventStore, after_seq: int = 0, *, until: datetime | None = None
) -> Iterator[Recorded]:
    """Yield every decoded event past ``after_seq`` in global order."""
    return store.codec.decode_chunks(store.read_chunks(after_seq, until=until))


def read_types(
    store: EventStore, type_names: frozenset[str], after_seq: int = 0
) -> Iterator[Recorded]:
    """Yield the events of the named types only, decoding nothing else."""
    for chunk in store.read_chunks(after_seq):
        wanted = [row for row in chunk if row[3] in type_names]
        if wanted:
            yield from store.codec.decode_chunks([wanted])
