"""Incarnations fence hung actors out of the event log and out of the practice database.

A Python thread cannot be killed, so an abandoned mailbox may wake up later and try
to write. Every mailbox start gets the next incarnation number; the supervisor
records it here before the actor runs, and the mailbox appends its events through
``append``, which refuses any incarnation but the current one. Check and enqueue
happen under one lock, and the store commits in enqueue order, so an event either
precedes the supervisor's change of incarnation in the log or is refused.

The practice-database side of the fence is ``actors.practice_db.claim_incarnation``
and ``check_incarnation``; both sides raise the one ``StaleIncarnationError``
(``actors.stale_incarnation``, its own module so that the practice-database side, which
``status`` imports, does not import the event log's).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from actors.stale_incarnation import StaleIncarnationError
from events.store import ANY, EventStore, PendingAppend
from events.types import Event, stream_for

__all__ = ["IncarnationRegistry", "StaleIncarnationError"]


class IncarnationRegistry:
    """The live incarnation of each database's mailbox, and its progress; thread-safe.

    Appends are enqueued on the store's writer and returned as ``PendingAppend``: the
    caller goes on at once, and the log holds the events in enqueue order.

    Progress: the live incarnation ``beat``s as it works (a server's reply, a message
    sent); the watchdog reads the counts (``progress``) to tell a busy mailbox from a
    hung one (``supervisor.hang_rule``). Kept in memory, not in the log: a mailbox
    sending to a slow server beats once a second or more, which would be an event per
    message for nothing. A beat from an abandoned incarnation counts for nobody.
    """

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._live: dict[str, int] = {}
        self._beats: dict[str, int] = {}
        self._lock = threading.Lock()

    def current(self, db: str) -> int | None:
        """Return the live incarnation of ``db``'s mailbox, or None."""
        with self._lock:
            return self._live.get(db)

    def begin(self, db: str, incarnation: int, events: Sequence[Event]) -> PendingAppend:
        """Make ``incarnation`` the live one and enqueue ``events`` (its start) atomically."""
        with self._lock:
            self._live[db] = incarnation
            self._beats[db] = 0
            return self._store.append_async(stream_for(db), ANY, events)

    def abandon(
        self, db: str, incarnation: int, events: Sequence[Event] = ()
    ) -> PendingAppend | None:
        """Fence ``incarnation`` out (if still live) and enqueue ``events`` for the record."""
        with self._lock:
            if self._live.get(db) == incarnation:
                del self._live[db]
                self._beats.pop(db, None)
            return self._store.append_async(stream_for(db), ANY, events) if events else None

    def append(self, db: str, incarnation: int, events: Sequence[Event]) -> PendingAppend:
        """Enqueue a mailbox's events; raise ``StaleIncarnationError`` unless it is live."""
        with self._lock:
            live = self._live.get(db)
            if live != incarnation:
                raise StaleIncarnationError(incarnation, live, db)
            return self._store.append_async(stream_for(db), ANY, events)

    def record(self, db: str, events: Sequence[Event]) -> PendingAppend:
        """Enqueue ``events`` for the record, whatever incarnation is live.

        For facts an incarnation made true in the practice database before it was
        replaced (a message its committed transaction filed as sent): refusing them would
        leave the log silent about mail that went. Never for claims about the present
        (self-test results), which only the live incarnation may make.
        """
        return self._store.append_async(stream_for(db), ANY, events)

    def beat(self, db: str, incarnation: int) -> None:
        """Count one step of progress of ``incarnation``; nothing if it is not live."""
        with self._lock:
            if self._live.get(db) == incarnation:
                self._beats[db] += 1

    def progress(self) -> dict[str, tuple[int, int]]:
        """Return ``db -> (live incarnation, beats)`` for every live incarnation."""
        with self._lock:
            return {db: (n, self._beats[db]) for db, n in self._live.items()}
