"""Incarnations fence hung actors out of the event log.

A Python thread cannot be killed, so an abandoned mailbox may wake up later and try
to write. Every mailbox start gets the next incarnation number; the supervisor
records it here before the actor runs, and the mailbox appends its events through
``append``, which refuses any incarnation but the current one. Check and enqueue
happen under one lock, so an event either precedes the supervisor's change of
incarnation in the log or is refused.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from events.recorded import Recorded
from events.store import ANY, EventStore
from events.types import Event, stream_for


class StaleIncarnationError(Exception):
    """Raised when an abandoned incarnation tries to write."""

    def __init__(self, db: str, incarnation: int, current: int | None) -> None:
        now = "none is live" if current is None else f"the live one is {current}"
        super().__init__(f"incarnation {incarnation} of {db!r} was abandoned ({now})")
        self.db = db
        self.incarnation = incarnation
        self.current = current


class IncarnationRegistry:
    """The live incarnation of each database's mailbox; thread-safe."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._live: dict[str, int] = {}
        self._lock = threading.Lock()

    def current(self, db: str) -> int | None:
        """Return the live incarnation of ``db``'s mailbox, or None."""
        with self._lock:
            return self._live.get(db)

    def begin(self, db: str, incarnation: int, events: Sequence[Event]) -> list[Recorded]:
        """Make ``incarnation`` the live one and append ``events`` (its start) atomically."""
        with self._lock:
            self._live[db] = incarnation
            pending = self._store.append_async(stream_for(db), ANY, events)
        return pending.result()

    def abandon(self, db: str, incarnation: int, events: Sequence[Event] = ()) -> None:
        """Fence ``incarnation`` out (if still live) and append ``events`` for the record."""
        with self._lock:
            if self._live.get(db) == incarnation:
                del self._live[db]
            pending = self._store.append_async(stream_for(db), ANY, events) if events else None
        if pending is not None:
            pending.result()

    def append(self, db: str, incarnation: int, events: Sequence[Event]) -> list[Recorded]:
        """Append a mailbox's events; raise ``StaleIncarnationError`` unless it is live."""
        with self._lock:
            live = self._live.get(db)
            if live != incarnation:
                raise StaleIncarnationError(db, incarnation, live)
            pending = self._store.append_async(stream_for(db), ANY, events)
        return pending.result()
