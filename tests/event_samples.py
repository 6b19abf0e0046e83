"""One sample of every event type, and hypothesis strategies for them."""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from events.recorded import Recorded
from events.types import (
    EVENT_TYPES,
    CheckInMissed,
    CheckInWritten,
    ChildCrashed,
    ChildRestartScheduled,
    DatabaseDiscovered,
    DatabaseIgnored,
    DatabaseLost,
    Diagnostic,
    Event,
    InboxConnectionLost,
    InboxSynced,
    LogPruned,
    MailboxCrashed,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    MessageDeliveryUncertain,
    MessageParked,
    MessageReceived,
    MessageSendFailed,
    MessageSent,
    MessageSkipped,
    OutboxBackoffCleared,
    RestartRequested,
    RestartScheduled,
    SelfTestFailed,
    SelfTestPassed,
    ServiceStarted,
    ServiceStopping,
)

SAMPLES: list[Event] = [
    ServiceStarted("SRV1", "0.1.0", 4242),
    ServiceStopping("SIGTERM"),
    DatabaseDiscovered("Smile Dental", "name contains none of the excluded words"),
    DatabaseIgnored("no practice table"),
    DatabaseLost("database vanished from the server"),
    MailboxStarted(1),
    MailboxStopped(1, "restart requested"),
    MailboxCrashed(2, "ConnectionResetError: peer reset", "Traceback (most recent call last): …"),
    RestartScheduled(1.5, "crashed", 2),
    MailboxGaveUp(5, 60.0, 300.0),
    SelfTestPassed(3, ("database", "smtp", "imap")),
    SelfTestFailed(3, (Diagnostic("smtp", "error", "535 5.7.8 authentication failed"),)),
    CheckInMissed(3, 45.0),
    CheckInWritten(17, True, 1234),
    RestartRequested("workstation", "RECEPTION-PC", 9),
    MessageSent(3, 101, "<20260105.abc@smile.example>", 2),
    MessageSendFailed(3, 102, "<20260105.abd@smile.example>", "451 try later", False),
    MessageDeliveryUncertain(3, 103, "<20260105.abe@smile.example>"),
    MessageReceived(3, 55, "<x@gmail.example>", 1700000000, 12),
    InboxSynced(3, 1700000000, 12),
    MessageParked(3, 1700000000, 13, 56, "parked: importing UID 13 stopped the importer 3 times"),
    LogPruned(120, datetime(2026, 1, 5, 3, 0, tzinfo=UTC), 5000),
    ChildCrashed("http", "cannot listen on 127.0.0.1:8025: Address already in use"),
    ChildRestartScheduled("http", 2.0, 2),
    MessageSkipped(3, 1700000001, 4, "<x@gmail.example>", 55, "the same bytes are row 55"),
    InboxConnectionLost(3, "imap.example:993: connection closed by the server"),
    OutboxBackoffCleared(4, 12),
]
assert {type(e) for e in SAMPLES} == set(EVENT_TYPES), "every event type needs a sample"

_INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
_BASE: dict[Any, st.SearchStrategy[Any]] = {
    str: st.text(max_size=40),
    int: _INTS,
    float: st.floats(allow_nan=False),
    bool: st.booleans(),
    type(None): st.none(),
    datetime: st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
}


def _strategy(tp: Any) -> st.SearchStrategy[Any]:
    if tp in _BASE:
        return _BASE[tp]
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple:
        return st.lists(_strategy(args[0]), max_size=4).map(tuple)
    if args:  # a union such as int | None
        return st.one_of(*[_strategy(a) for a in args])
    if dataclasses.is_dataclass(tp):
        return events_of(tp)
    raise TypeError(tp)


def events_of(cls: Any) -> st.SearchStrategy[Any]:
    """A strategy for instances of one event (or value) dataclass."""
    hints = typing.get_type_hints(cls)
    return st.builds(cls, *[_strategy(hints[f.name]) for f in dataclasses.fields(cls)])


any_event: st.SearchStrategy[Event] = st.one_of(*[events_of(cls) for cls in EVENT_TYPES])

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

STREAMS = ("service", "db:Smile Dental", "db:Zahnarztpraxis Müller", "db:O'Brien")


@st.composite
def logs(draw: st.DrawFn, max_size: int = 40) -> list[Recorded]:
    """A well-formed log: gap-free seq, per-stream versions, times not going back."""
    items = draw(st.lists(st.tuples(st.sampled_from(STREAMS), any_event), max_size=max_size))
    versions: dict[str, int] = {}
    out: list[Recorded] = []
    at = T0
    for seq, (stream, event) in enumerate(items, start=1):
        at += timedelta(seconds=draw(st.integers(0, 120)))
        versions[stream] = versions.get(stream, 0) + 1
        out.append(Recorded(seq, stream, versions[stream], at, event))
    return out
