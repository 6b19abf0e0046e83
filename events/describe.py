"""Events for people and programs: one text line, or a JSON-ready dict."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from events.recorded import Recorded
from events.types import Event, db_of

_LONG_FIELDS = frozenset({"traceback"})  # kept out of one-line descriptions


def plain(value: Any) -> Any:
    """Return a value with dataclasses as dicts and tuples as lists, ready for JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def event_fields(event: Event) -> dict[str, Any]:
    """Return the event's fields as plain JSON-ready values (tuples become lists)."""
    return {f.name: plain(getattr(event, f.name)) for f in dataclasses.fields(event)}


def describe_event(event: Event) -> str:
    """Return ``Type field=value …`` on one line (long fields and empty lists left out:
    a passed self-test with no warnings is not ``warnings=[]`` on every line)."""
    parts = [type(event).__name__]
    for name, value in event_fields(event).items():
        if name in _LONG_FIELDS or (isinstance(value, list | tuple) and not value):
            continue
        text = repr(value) if isinstance(value, str) else str(value)
        parts.append(f"{name}={text}")
    return " ".join(parts).replace("\n", " ")


def where(stream: str) -> str:
    """Return the database a stream belongs to, or ``(service)``."""
    db = db_of(stream)
    return "(service)" if db is None else db


def describe(recorded: Recorded) -> str:
    """Return one timeline line: time, seq, database, event."""
    at = recorded.recorded_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
    return f"{at}  #{recorded.seq}  {where(recorded.stream)}  {describe_event(recorded.event)}"


def as_json(recorded: Recorded) -> dict[str, Any]:
    """Return a recorded event as a JSON-ready dict."""
    return {
        "seq": recorded.seq,
        "stream": recorded.stream,
        "db": db_of(recorded.stream),
        "version": recorded.version,
        "recorded_at": recorded.recorded_at.isoformat(),
        "type": type(recorded.event).__name__,
        "data": event_fields(recorded.event),
    }


def describe_duration(span: timedelta) -> str:
    """``1 h 12 min``, ``3 min 5 s``, ``40 s``: the two largest non-zero units (also used by
    the recovery diagnostic, "Email was not available for 1 h 12 min, ...")."""
    seconds = max(0, int(span.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min"), (secs, "s"))
    ]
    nonzero = [p for p in parts if not p.startswith("0 ")]
    return " ".join(nonzero[:2]) if nonzero else "0 s"
