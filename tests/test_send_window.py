"""The send window (pure): parsing, is_open and next_open; tables and hypothesis."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.mail.send_window import SendWindowError, is_open, next_open, parse_window

LONDON = ZoneInfo("Europe/London")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A London time in the week of Monday 5 January 2026 (day 0 = Monday)."""
    return datetime(2026, 1, 5 + day, hour, minute, tzinfo=LONDON)


@pytest.mark.parametrize(
    ("window", "when", "expected"),
    [
        ("", at(6, 3), True),
        ("   ", at(6, 3), True),
        ("Mon-Fri 07:00-19:00", at(0, 7), True),
        ("Mon-Fri 07:00-19:00", at(0, 6, 59), False),
        ("Mon-Fri 07:00-19:00", at(4, 18, 59), True),
        ("Mon-Fri 07:00-19:00", at(4, 19), False),
        ("Mon-Fri 07:00-19:00", at(5, 10), False),
        ("Mon-Fri 07:00-19:00, Sat 08:00-12:00", at(5, 10), True),
        ("Mon-Fri 07:00-19:00; Sat 08:00-12:00", at(5, 12), False),
        ("sat", at(5, 23, 59), True),
        ("Saturday", at(6, 0), False),
        ("09:00-10:00", at(6, 9, 30), True),
        ("Fri-Mon 09:00-10:00", at(6, 9, 30), True),
        ("Fri-Mon 09:00-10:00", at(1, 9, 30), False),
        ("Mon 22:00-02:00", at(1, 1, 59), True),
        ("Mon 22:00-02:00", at(1, 2), False),
        ("Sun 22:00-02:00", at(0, 1), True),
        ("Mon 00:00-24:00", at(0, 23, 59), True),
        ("mon - fri 7:00 - 19:00", at(2, 7), True),
    ],
)
def test_is_open(window: str, when: datetime, expected: bool) -> None:
    assert is_open(parse_window(window), when) is expected


@pytest.mark.parametrize(
    ("window", "when", "expected"),
    [
        ("Mon-Fri 07:00-19:00", at(0, 6), at(0, 7)),
        ("Mon-Fri 07:00-19:00", at(0, 8), at(0, 8)),
        ("Mon-Fri 07:00-19:00", at(4, 19), at(7, 7)),
        ("Mon-Fri 07:00-19:00, Sat 08:00-12:00", at(4, 20), at(5, 8)),
        ("Sun 22:00-02:00", at(0, 3), at(6, 22)),
    ],
)
def test_next_open(window: str, when: datetime, expected: datetime) -> None:
    assert next_open(parse_window(window), when) == expected


def test_next_open_keeps_the_wall_clock_across_a_clock_change() -> None:
    # The clocks in London go forward at 01:00 on Sunday 29 March 2026.
    friday_night = datetime(2026, 3, 27, 20, 0, tzinfo=LONDON)
    opens = next_open(parse_window("Mon 07:00-19:00"), friday_night)
    assert (opens.hour, opens.weekday(), opens.utcoffset()) == (7, 0, timedelta(hours=1))


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        ("Mon-Fri 7-19", "'Mon-Fri 7-19' is not 'DAYS HH:MM-HH:MM'"),
        ("Mo-Fr 07:00-19:00", "'Mo' is not a day"),
        ("Mon-Fri 07:00-25:00", "'25:00' is not a time of day"),
        ("Mon 07:60-08:00", "'07:60' is not a time of day"),
        ("Mon 09:00-09:00", "starts and ends at the same time"),
        ("Mon 24:00-02:00", "starts at 24:00"),
        ("always", "'always' is not a day"),
    ],
)
def test_a_bad_window_is_one_line_naming_the_text(window: str, reason: str) -> None:
    with pytest.raises(SendWindowError) as raised:
        parse_window(f"{window}, Sat 08:00-12:00")
    message = str(raised.value)
    assert message.startswith(f"send_window '{window}, Sat 08:00-12:00': ")
    assert reason in message
    assert "\n" not in message


# --- properties -------------------------------------------------------------------------

_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_clock = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 30]))
_entry = st.builds(
    lambda first, last, start, end: f"{first}-{last} {start}-{end}",
    st.sampled_from(_DAYS),
    st.sampled_from(_DAYS),
    _clock,
    _clock,
).filter(lambda e: e.split()[1].split("-")[0] != e.split()[1].split("-")[1])
_window = st.lists(_entry, min_size=1, max_size=3).map(", ".join)
_moment = st.builds(
    lambda minutes: datetime(2026, 1, 5, tzinfo=LONDON) + timedelta(minutes=minutes),
    st.integers(0, 14 * 24 * 60),
)


@given(_window, _moment)
def test_next_open_is_open_and_not_earlier(text: str, moment: datetime) -> None:
    window = parse_window(text)
    opens = next_open(window, moment)
    assert opens >= moment
    assert is_open(window, opens)


@given(_window, _moment)
def test_nothing_is_open_before_next_open(text: str, moment: datetime) -> None:
    window = parse_window(text)
    opens = next_open(window, moment)
    probe = moment
    while probe < opens:  # every edge here is on the half hour: check each stretch once
        assert not is_open(window, probe)
        probe += timedelta(minutes=30 - probe.minute % 30)


@given(_window, _moment)
def test_a_window_is_weekly(text: str, moment: datetime) -> None:
    window = parse_window(text)
    assert is_open(window, moment) == is_open(window, moment + timedelta(days=7))
