"""An in-memory event store: the fake that passes the same contract as the real ones."""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime

from events.clock import Clock, SystemClock
from events.codec import DEFAULT_CODEC, Codec
from events.errors import ConcurrencyError, StoreClosedError
from events.recorded import RawRecord, Recorded, to_micros
from events.store import ANY, PendingAppend
from events.types import Event


class InMemoryEventStore:
    """Keeps encoded records in a list in ``seq`` order; every method is thread-safe."""

    def __init__(self, clock: Clock | None = None, codec: Codec = DEFAULT_CODEC) -> None:
        self.codec = codec
        self._clock = clock or SystemClock()
        self._rows: list[RawRecord] = []  # in seq order; retention may leave gaps
        self._seqs: list[int] = []  # the rows' seqs, for bisect
        self._last_seq = 0
        self._versions: dict[str, int] = {}
        self._by_stream: dict[str, list[int]] = {}  # seqs, in order
        self._counts: Counter[tuple[str, str]] = Counter()
        self._checkpoints: dict[str, tuple[int, bytes]] = {}
        self._changed = threading.Condition()
        self._closed = False

    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> list[Recorded]:
        encoded = [self.codec.encode(e) for e in events]
        with self._changed:
            if self._closed:
                raise StoreClosedError("the event store is closed")
            current = self._versions.get(stream, 0)
            if expected_version != ANY and expected_version != current:
                raise ConcurrencyError(stream, expected_version, current)
            positions = self._by_stream.setdefault(stream, [])
            now = self._clock.now()
            now_us = to_micros(now)
            out: list[Recorded] = []
            for event, data in zip(events, encoded, strict=True):
                self._last_seq += 1
                seq = self._last_seq
                current += 1
                name = type(event).__name__
                self._rows.append(RawRecord(seq, stream, current, name, now_us, data))
                self._seqs.append(seq)
                positions.append(seq)
                self._counts[(stream, name)] += 1
                out.append(Recorded(seq, stream, current, now, event))
            self._versions[stream] = current
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
            return self._versions.get(stream, 0)

    def last_seq(self) -> int:
        with self._changed:
            return self._last_seq

    def read_chunks(
        self,
        after_seq: int = 0,
        *,
        stream: str | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        after_version: int = 0,
    ) -> Iterator[Sequence[RawRecord]]:
        with self._changed:
            if stream is None:
                rows = self._rows[bisect.bisect_right(self._seqs, after_seq) :]
            else:
                wanted = {s for s in self._by_stream.get(stream, ()) if s > after_seq}
                rows = [r for r in self._rows if r.seq in wanted and r.version > after_version]
        if until is not None:
            cutoff = to_micros(until)
            after = next((i for i, r in enumerate(rows) if r.recorded_at_us > cutoff), len(rows))
            rows = rows[:after]
        if limit is not None:
            rows = rows[:limit]
        return iter([rows] if rows else [])

    def read_last(
        self, n: int, *, stream: str | None = None, up_to_seq: int | None = None
    ) -> list[RawRecord]:
        with self._changed:
            rows = [
                r
                for r in self._rows
                if (stream is None or r.stream == stream)
                and (up_to_seq is None or r.seq <= up_to_seq)
            ]
        return rows[-n:] if n > 0 else []

    def streams(self) -> list[str]:
        with self._changed:
            return sorted(s for s, p in self._by_stream.items() if p)

    def wait_for_append(self, after_seq: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._last_seq > after_seq, timeout)

    def delete_events(self, seqs: Sequence[int]) -> int:
        with self._changed:
            heads = {p[-1] for p in self._by_stream.values() if p}
            doomed = {s for s in seqs if s not in heads}
            kept: list[RawRecord] = []
            gone = 0
            for row in self._rows:
                if row.seq in doomed:
                    gone += 1
                    self._counts[(row.stream, row.type)] -= 1
                    self._by_stream[row.stream].remove(row.seq)
                else:
                    kept.append(row)
            self._rows = kept
            self._seqs = [r.seq for r in kept]
            return gone

    def event_counts(self) -> dict[tuple[str, str], int]:
        with self._changed:
            return {k: n for k, n in self._counts.items() if n > 0}

    def save_checkpoint(self, name: str, seq: int, state: bytes) -> None:
        with self._changed:
            self._checkpoints[name] = (seq, bytes(state))

    def load_checkpoint(self, name: str) -> tuple[int, bytes] | None:
        with self._changed:
            return self._checkpoints.get(name)

    def close(self) -> None:
        with self._changed:
            self._closed = True
