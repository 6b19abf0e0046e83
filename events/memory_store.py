"""An in-memory event store: the fake that passes the same contract as the real ones."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime

from events.clock import Clock, SystemClock
from events.codec import DEFAULT_CODEC, Codec
from events.errors import ConcurrencyError, StoreClosedError
from events.recorded import RawRecord, Recorded, to_micros
from events.store import ANY, PendingAppend
from events.types import Event


class InMemoryEventStore:
    """Keeps encoded records in a list; every method is thread-safe."""

    def __init__(self, clock: Clock | None = None, codec: Codec = DEFAULT_CODEC) -> None:
        self.codec = codec
        self._clock = clock or SystemClock()
        self._rows: list[RawRecord] = []
        self._by_stream: dict[str, list[int]] = {}
        self._changed = threading.Condition()
        self._closed = False

    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> list[Recorded]:
        encoded = [self.codec.encode(e) for e in events]
        with self._changed:
            if self._closed:
                raise StoreClosedError("the event store is closed")
            positions = self._by_stream.setdefault(stream, [])
            current = len(positions)
            if expected_version != ANY and expected_version != current:
                raise ConcurrencyError(stream, expected_version, current)
            now = self._clock.now()
            now_us = to_micros(now)
            out: list[Recorded] = []
            for event, data in zip(events, encoded, strict=True):
                seq = len(self._rows) + 1
                version = len(positions) + 1
                self._rows.append(
                    RawRecord(seq, stream, version, type(event).__name__, now_us, data)
                )
                positions.append(seq - 1)
                out.append(Recorded(seq, stream, version, now, event))
            self._changed.notify_all()
            return out

    def append_async(
        self, stream: str, expected_version: int, events: Sequence[Event]
    ) -> PendingAppend:
        pending = PendingAppend(stream, expected_version, events, [], self._changed)
        try:
            pending.resolve(self.append(stream, expected_version, events), None)
        except Exception as exc:
            pending.resolve(None, exc)
        return pending

    def stream_version(self, stream: str) -> int:
        with self._changed:
            return len(self._by_stream.get(stream, ()))

    def last_seq(self) -> int:
        with self._changed:
            return len(self._rows)

    def read_chunks(
        self,
        after_seq: int = 0,
        *,
        stream: str | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> Iterator[Sequence[RawRecord]]:
        with self._changed:
            if stream is None:
                rows = self._rows[after_seq:]
            else:
                rows = [self._rows[i] for i in self._by_stream.get(stream, ()) if i >= after_seq]
        if until is not None:
            cutoff = to_micros(until)
            rows = [r for r in rows if r.recorded_at_us <= cutoff]
        if limit is not None:
            rows = rows[:limit]
        return iter([rows] if rows else [])

    def streams(self) -> list[str]:
        with self._changed:
            return sorted(s for s, p in self._by_stream.items() if p)

    def wait_for_append(self, after_seq: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self._rows) > after_seq, timeout)

    def close(self) -> None:
        with self._changed:
            self._closed = True
