"""Reading one outbox row as the practice software wrote it (``actors.mail.outbox_row``)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.mail.outbox_row import (
    OutboxItem,
    RowProblem,
    looks_like_message,
    parse_time,
    read_attempts,
    read_outbox_row,
    recipients_text,
)
from actors.mail.sender import RecipientResult

MESSAGE = "From: reception@practice.example\r\nTo: a@example.org\r\nSubject: Hi\r\n\r\nBody\r\n"


def row(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 12,
        "folder": "outbox",
        "channel": "email",
        "status": "sending",
        "message_id": None,
        "from_addr": None,
        "to_addrs": "patient@example.org",
        "cc_addrs": None,
        "subject": "Recall",
        "body_text": "See you",
        "body_html": None,
        "raw": None,
        "attempts": 0,
        "next_attempt_at": None,
        "created_at": datetime(2026, 12, 1, 10, 0),
    }
    base.update(values)
    return base


def item(**values: Any) -> OutboxItem:
    read = read_outbox_row(row(**values))
    assert isinstance(read, OutboxItem), read
    return read


def problem(**values: Any) -> RowProblem:
    read = read_outbox_row(row(**values))
    assert isinstance(read, RowProblem), read
    return read


# --- read leniently where the meaning is clear -------------------------------------------


def test_text_raw_that_is_a_message_is_encoded_as_utf8() -> None:
    assert item(raw=MESSAGE + "Grüße").raw == (MESSAGE + "Grüße").encode()


def test_bytes_raw_is_kept_as_it_is() -> None:
    assert item(raw=memoryview(MESSAGE.encode())).raw == MESSAGE.encode()


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("subject", None, ""),
        ("body_text", None, ""),
        ("subject", 12345, "12345"),
        ("subject", Decimal("7"), "7"),
        ("subject", 2.0, "2"),
        ("subject", b"Recall", "Recall"),
    ],
)
def test_text_columns_read_null_numbers_and_utf8_bytes(
    column: str, value: Any, expected: str
) -> None:
    assert getattr(item(**{column: value}), column) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 0),
        (3, 3),
        ("3", 3),
        (" 4 ", 4),
        (2.0, 2),
        (Decimal("5"), 5),
        (-1, 0),
        ("abc", 0),
        (float("nan"), 0),
        (True, 0),
    ],
)
def test_attempts_read_as_a_whole_number_from_zero(value: Any, expected: int) -> None:
    assert read_attempts(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a@x.example; b@y.example", ("a@x.example", "b@y.example")),
        ("a@x.example\nb@y.example", ("a@x.example", "b@y.example")),
        ("a@x.example\r\n b@y.example,", ("a@x.example", "b@y.example")),
        ("a@x.example b@y.example", ("a@x.example", "b@y.example")),
        ("a@x.example\tb@y.example", ("a@x.example", "b@y.example")),
        ('"Smith, Ann" <a@x.example>', ('"Smith, Ann" <a@x.example>',)),
        ("Ann Smith <a@x.example>", ("Ann Smith <a@x.example>",)),
        (447911123456, ("447911123456",)),
    ],
)
def test_address_lists_with_odd_separators(text: Any, expected: tuple[str, ...]) -> None:
    assert item(to_addrs=text).to_addrs == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01 10:00:00", datetime(2026, 12, 1, 10, 0)),
        ("2026-12-01T10:00:00.123456", datetime(2026, 12, 1, 10, 0, 0, 123456)),
        ("2026-12-01T10:00:00Z", datetime(2026, 12, 1, 10, 0)),
        ("2026-12-01T11:00:00+01:00", datetime(2026, 12, 1, 10, 0)),
        ("2026-12-01", datetime(2026, 12, 1)),
        ("01.12.2026 10:00", datetime(2026, 12, 1, 10, 0)),
        ("01/12/2026 10:00:30", datetime(2026, 12, 1, 10, 0, 30)),
        ("12/31/2026", datetime(2026, 12, 31)),
        ("Tue, 01 Dec 2026 10:00:00 +0000", datetime(2026, 12, 1, 10, 0)),
        ("1796119200", datetime(2026, 12, 1, 10, 0)),
        (1796119200, datetime(2026, 12, 1, 10, 0)),
        (datetime(2026, 12, 1, 11, 0, tzinfo=UTC), datetime(2026, 12, 1, 11, 0)),
    ],
)
def test_times_in_common_forms_are_parsed_to_naive_utc(text: Any, expected: datetime) -> None:
    assert item(created_at=text).created_at == expected


@pytest.mark.parametrize("text", ["yesterday", "31/31/2026", "", "2026-13-45"])
def test_a_time_that_is_not_one_reads_as_none_with_a_note_and_never_stops_the_row(
    text: str,
) -> None:
    read = item(created_at=text, next_attempt_at=text)
    assert (read.created_at, read.next_attempt_at) == (None, None)
    assert parse_time(text) is None
    assert all("ignored" in note for note in read.notes)


def test_recipient_status_written_by_the_service_reads_back() -> None:
    results = (
        RecipientResult("a@x.example", "sent"),
        RecipientResult("b@y.example", "deferred", "450 4.2.2 mailbox full"),
    )
    read = item(recipient_status=recipients_text(results))
    assert (read.recipients, read.done) == (results, frozenset({"a@x.example"}))


def test_refused_recipients_are_tried_again_when_a_person_requeues_the_row() -> None:
    results = (RecipientResult("a@x.example", "sent"), RecipientResult("b@y.example", "refused"))
    text = recipients_text(results)
    assert item(recipient_status=text, attempts=3).done == {"a@x.example", "b@y.example"}
    assert item(recipient_status=text, attempts=0).done == {"a@x.example"}


def test_recipient_status_that_is_not_the_services_record_means_nothing_was_delivered() -> None:
    read = item(recipient_status="sent to everybody")
    assert (read.recipients, len(read.notes)) == ((), 1)


# --- refused per row where it is not -----------------------------------------------------


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"raw": "Hello, see you Monday"}, "raw is text that is not an email message"),
        ({"raw": b"Hello, see you Monday"}, "raw is bytes that are not an email message"),
        ({"raw": 42}, "raw is 42, not a message"),
        ({"subject": b"\xff\xfe"}, "subject is binary data that is not UTF-8 text"),
        ({"to_addrs": ["a@x"]}, "to_addrs is ['a@x'], not text"),
        ({"body_text": True}, "body_text is True, not text"),
        ({"to_addrs": None, "cc_addrs": " ; "}, "it has no recipient"),
        ({"id": "twelve"}, "id is 'twelve', not a whole number"),
    ],
)
def test_a_value_whose_meaning_is_not_clear_refuses_the_row_naming_it(
    values: dict[str, Any], reason: str
) -> None:
    assert problem(**values).reason.startswith(reason)


def test_a_problem_names_the_row_its_subject_and_the_cause() -> None:
    found = problem(raw="not a message", subject="Recall\nfor Ann")
    assert found.describe().startswith('outbox row 12 ("Recall for Ann"): raw is text that')


def test_a_problem_with_an_unreadable_subject_still_names_the_row() -> None:
    assert problem(subject=b"\xff").describe().startswith("outbox row 12 (no subject): subject")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MESSAGE, True),
        ("Subject: hi", True),
        ("X-Custom: 1\n\nbody", False),
        ("From x@y Mon Dec  1 10:00:00 2026\nSubject: hi\n\n", False),
        (" Subject: folded before a field\n\n", False),
        ("Hello: there\nSubject: a\n continued\n\nbody", True),
    ],
)
def test_what_looks_like_a_message(text: str, expected: bool) -> None:
    assert looks_like_message(text) is expected


# --- never raises ------------------------------------------------------------------------

_ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(),
    st.datetimes(timezones=st.one_of(st.none(), st.just(UTC))),
    st.lists(st.integers(), max_size=3),
    st.sampled_from([MESSAGE, "2026-12-01", "a@x.example; b@y.example", '[{"address": 1}]']),
)
_COLUMNS = (
    "id",
    "channel",
    "message_id",
    "from_addr",
    "to_addrs",
    "cc_addrs",
    "subject",
    "body_text",
    "body_html",
    "raw",
    "attempts",
    "next_attempt_at",
    "created_at",
    "recipient_status",
)


@given(st.fixed_dictionaries({}, optional=dict.fromkeys(_COLUMNS, _ANY_VALUE)))
def test_reading_any_row_never_raises(values: dict[str, Any]) -> None:
    read = read_outbox_row(values)
    assert isinstance(read, (OutboxItem, RowProblem))
    if isinstance(read, RowProblem):
        assert read.reason
        assert read.describe()
    else:
        assert read.attempts >= 0


@given(st.one_of(st.text(), st.binary(), st.integers(), st.floats(), st.decimals(), st.none()))
def test_parsing_any_time_never_raises(value: Any) -> None:
    parsed = parse_time(value)
    assert parsed is None or parsed.tzinfo is None
