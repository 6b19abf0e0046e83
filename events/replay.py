"""Replaying the log from a store into a ``ServiceView``, fast and in constant memory.

Every record is checked (it unpacks, names a known type and version, and has that
version's field count), but only the event types the projections fold are built
into objects: the mail events that make up most of a busy log are checked and
counted without being decoded into dataclasses. A corrupt record stops the replay
with ``CorruptEventError`` naming its ``seq``, or is skipped and counted when the
caller passes ``skip_corrupt``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

import msgpack

from events.errors import CorruptEventError
from events.projections.service_view import CONSUMED_TYPES, ServiceView, fold
from events.recorded import Recorded, from_micros
from events.store import EventStore
from events.types import Event


@dataclass
class ReplayReport:
    """What a replay read: counts, and the records it skipped as corrupt."""

    events: int = 0
    skipped: list[CorruptEventError] = field(default_factory=list)


def replay_store(
    store: EventStore,
    *,
    view: ServiceView | None = None,
    stream: str | None = None,
    until: datetime | None = None,
    after_version: int = 0,
    skip_corrupt: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[ServiceView, ReplayReport]:
    """Fold the log (past ``view.last_seq``) into a view; return it with a report.

    ``stream`` keeps one stream (past ``after_version`` of it: where a stream snapshot
    left ``view``), ``until`` the events recorded at or before it;
    ``on_progress(n)`` is called after each chunk of ``n`` records.
    """
    view = view or ServiceView()
    report = ReplayReport()
    codec = store.codec
    decoders = codec.decoders
    arity = codec.arity
    wanted = CONSUMED_TYPES
    unpack = msgpack.unpackb
    last_us = -1
    when = from_micros(0)
    for chunk in store.read_chunks(
        view.last_seq, stream=stream, until=until, after_version=after_version
    ):
        records: list[Recorded] = []
        for seq, stream_name, version, _type, at_us, data in chunk:
            event: Event | None = None
            try:
                name, schema, values = unpack(data, timestamp=3)
                if name in wanted:
                    event = decoders[(name, schema)](values)
                elif arity[(name, schema)] != len(values):
                    raise ValueError("wrong field count")
            except Exception:
                # The slow path: upcasts an old version, or says precisely what is wrong.
                try:
                    event = codec.decode(data, seq)
                except CorruptEventError as exc:
                    if not skip_corrupt:
                        raise
                    report.skipped.append(exc)
                    continue
                if type(event).__name__ not in wanted:
                    event = None
            if event is not None:
                if at_us != last_us:  # group commit: neighbours usually share a time
                    last_us = at_us
                    when = from_micros(at_us)
                records.append(Recorded(seq, stream_name, version, when, event))
        view = fold(view, records)
        last = chunk[-1]
        view = replace(view, last_seq=last[0], last_at=from_micros(last[4]))
        report.events += len(chunk)
        if on_progress is not None:
            on_progress(len(chunk))
    return view, report
