"""A practice's ``send_window``: when its outbox may send, in practice-local time. Pure.

The text is a list of entries separated by commas or semicolons, each
``DAYS HH:MM-HH:MM``, ``DAYS`` alone (the whole day) or ``HH:MM-HH:MM`` alone (every
day). ``DAYS`` is one day or a range (``Mon-Fri``, ``Fri-Mon`` wraps over the weekend);
days are English names or their first three letters or more, in any case. A range whose
end is not after its start runs past midnight into the next day (``Mon 22:00-02:00``);
``24:00`` ends a day. Empty text means always open.

Examples: ``Mon-Fri 07:00-19:00``; ``Mon-Fri 07:00-19:00, Sat 08:00-12:00``;
``Mon-Sun 00:00-24:00``.

``parse_window(text)`` raises ``SendWindowError`` with a one-line reason naming the text;
``is_open`` and ``next_open`` take the parsed window and an aware practice-local time (the
server's local zone: the caller converts). Nothing here reads a clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

DAY_SECONDS = 86_400
WEEK_SECONDS = 7 * DAY_SECONDS
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EXAMPLE = "'Mon-Fri 07:00-19:00, Sat 08:00-12:00' (empty: always)"

_ENTRY = re.compile(
    r"^(?:(?P<first>[^\W\d_]+)(?:\s*-\s*(?P<last>[^\W\d_]+))?)?"
    r"\s*(?:(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2}))?$"
)


class SendWindowError(ValueError):
    """Raised when a ``send_window`` cannot be understood; the message names the text."""


@dataclass(frozen=True, slots=True)
class SendWindow:
    """A parsed window: open intervals in seconds from Monday 00:00, sorted and merged.

    ``always`` is True for an empty window (then ``intervals`` is empty).
    """

    text: str
    intervals: tuple[tuple[int, int], ...]
    always: bool


def parse_window(text: str) -> SendWindow:
    """Parse ``text``; raise ``SendWindowError`` with a one-line reason naming it."""
    entries = [entry.strip() for entry in re.split(r"[,;]", text)]
    if not any(entries):
        return SendWindow(text=text, intervals=(), always=True)
    spans: list[tuple[int, int]] = []
    for entry in entries:
        if entry:
            spans.extend(_entry_spans(text, entry))
    return SendWindow(text=text, intervals=_merge(spans), always=False)


def _fail(text: str, reason: str) -> SendWindowError:
    shown = text if len(text) <= 200 else text[:200] + "..."
    return SendWindowError(f"send_window {shown!r}: {reason}; expected e.g. {EXAMPLE}")


def _entry_spans(text: str, entry: str) -> list[tuple[int, int]]:
    found = _ENTRY.match(entry)
    if found is None or not (found["first"] or found["start"]):
        raise _fail(text, f"{entry!r} is not 'DAYS HH:MM-HH:MM'")
    if found["first"]:
        first = _day(text, found["first"])
        last = _day(text, found["last"]) if found["last"] else first
        days = [(first + step) % 7 for step in range((last - first) % 7 + 1)]
    else:
        days = list(range(7))
    if found["start"]:
        start = _seconds(text, found["start"])
        end = _seconds(text, found["end"])
        if start == DAY_SECONDS:
            raise _fail(text, f"{entry!r} starts at 24:00")
        if end == start:
            raise _fail(text, f"{entry!r} starts and ends at the same time")
        if end < start:
            end += DAY_SECONDS  # past midnight into the next day
    else:
        start, end = 0, DAY_SECONDS
    spans: list[tuple[int, int]] = []
    for day in days:
        begin = day * DAY_SECONDS + start
        finish = day * DAY_SECONDS + end
        if finish > WEEK_SECONDS:  # Sunday night into Monday morning
            spans.extend([(begin, WEEK_SECONDS), (0, finish - WEEK_SECONDS)])
        else:
            spans.append((begin, finish))
    return spans


def _day(text: str, word: str) -> int:
    lowered = word.lower()
    for number, name in enumerate(DAY_NAMES):
        if len(lowered) >= 3 and name.startswith(lowered):
            return number
    raise _fail(text, f"{word!r} is not a day")


def _seconds(text: str, clock_time: str) -> int:
    hours_text, minutes_text = clock_time.split(":")
    hours, minutes = int(hours_text), int(minutes_text)
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise _fail(text, f"{clock_time!r} is not a time of day")
    return hours * 3600 + minutes * 60


def _merge(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def _week_offset(local_time: datetime) -> float:
    return (
        local_time.weekday() * DAY_SECONDS
        + local_time.hour * 3600
        + local_time.minute * 60
        + local_time.second
        + local_time.microsecond / 1_000_000
    )


def is_open(window: SendWindow, local_time: datetime) -> bool:
    """Return whether mail may go at ``local_time`` (practice-local wall-clock time)."""
    if window.always:
        return True
    offset = _week_offset(local_time)
    return any(start <= offset < end for start, end in window.intervals)


def next_open(window: SendWindow, local_time: datetime) -> datetime:
    """Return ``local_time`` when the window is open, else the next moment it opens.

    Wall-clock arithmetic in ``local_time``'s zone: "Mon 07:00" is 07:00 on the clock
    even across a daylight-saving change.
    """
    if is_open(window, local_time):
        return local_time
    offset = _week_offset(local_time)
    starts = [start for start, _end in window.intervals]
    later = [start for start in starts if start > offset]
    target = later[0] if later else starts[0] + WEEK_SECONDS
    return local_time + timedelta(seconds=target - offset)
