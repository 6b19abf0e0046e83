"""The msgpack codec: round trips, upcasting, and errors that name the record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.codec import DEFAULT_CODEC, Codec
from events.errors import CorruptEventError, UnknownEventTypeError
from events.types import (
    Diagnostic,
    Event,
    MailboxStarted,
    MessageReceived,
    MessageSendFailed,
    MessageSent,
    SelfTestPassed,
)
from tests.event_samples import SAMPLES, any_event, events_of


@given(any_event)
def test_decode_of_encode_is_identity_for_every_type(event: Event) -> None:
    assert DEFAULT_CODEC.decode(DEFAULT_CODEC.encode(event)) == event


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_record_carries_type_name_and_version(event: Event) -> None:
    name, version, _ = msgpack.unpackb(DEFAULT_CODEC.encode(event))
    assert (name, version) == (type(event).__name__, type(event).VERSION)


def test_unknown_type_names_the_seq() -> None:
    data = msgpack.packb(["NoSuchEvent", 1, []])
    with pytest.raises(UnknownEventTypeError, match=r"^event seq 42: unknown event type"):
        DEFAULT_CODEC.decode(data, seq=42)


def test_garbage_names_the_seq() -> None:
    with pytest.raises(CorruptEventError, match=r"^event seq 7: not a valid record"):
        DEFAULT_CODEC.decode(b"\xc1\xff\x00", seq=7)


def test_wrong_shape_names_the_seq() -> None:
    with pytest.raises(CorruptEventError, match=r"^event seq 8: not a \[type, version, fields\]"):
        DEFAULT_CODEC.decode(msgpack.packb([["x"], 1, []]), seq=8)


def test_wrong_field_count_names_the_seq() -> None:
    data = msgpack.packb(["MailboxStarted", 1, [1, 2, 3]])
    with pytest.raises(CorruptEventError, match=r"^event seq 9: MailboxStarted v1 does not fit"):
        DEFAULT_CODEC.decode(data, seq=9)


def test_newer_version_than_the_code_knows_is_refused() -> None:
    data = msgpack.packb(["MailboxStarted", 2, [1]])
    with pytest.raises(UnknownEventTypeError, match="MailboxStarted has no version 2"):
        DEFAULT_CODEC.decode(data, seq=3)


@dataclass(frozen=True, slots=True)
class Renamed(Event):
    """Version 3 of an event whose v1 was (name) and v2 (name, reason)."""

    VERSION: ClassVar[int] = 3
    name: str
    reason: str
    attempt: int


def _v1_to_v2(values: list[Any]) -> list[Any]:
    return [values[0], "unknown"]


def _v2_to_v3(values: list[Any]) -> list[Any]:
    return [*values, 0]


def test_old_versions_are_upcast_in_a_chain() -> None:
    codec = Codec([Renamed], {("Renamed", 1): _v1_to_v2, ("Renamed", 2): _v2_to_v3})
    old = msgpack.packb(["Renamed", 1, ["Smile"]])
    assert codec.decode(old) == Renamed("Smile", "unknown", 0)


def test_missing_upcaster_names_the_seq() -> None:
    codec = Codec([Renamed], {("Renamed", 2): _v2_to_v3})
    with pytest.raises(UnknownEventTypeError, match="event seq 5: no upcaster for Renamed v1"):
        codec.decode(msgpack.packb(["Renamed", 1, ["Smile"]]), seq=5)


def test_encoding_an_unregistered_type_is_refused() -> None:
    codec = Codec([MailboxStarted])
    with pytest.raises(TypeError, match="Renamed is not a registered event type"):
        codec.encode(Renamed("a", "b", 1))


@pytest.mark.parametrize(
    ("name", "fields", "expected"),
    [
        ("MessageSent", [3, 101, "<a@b>", 2], MessageSent(3, 101, "<a@b>", 2, False)),
        (
            "MessageSendFailed",
            [3, 102, "<a@b>", "451 later", False],
            MessageSendFailed(3, 102, "<a@b>", "451 later", False, False),
        ),
        (
            "MessageReceived",
            [3, 55, "<a@b>", 17, 12],
            MessageReceived(3, 55, "<a@b>", 17, 12, False),
        ),
    ],
)
def test_a_v1_mail_outcome_reads_as_not_recovered(
    name: str, fields: list[object], expected: Event
) -> None:
    assert DEFAULT_CODEC.decode(msgpack.packb([name, 1, fields])) == expected


@given(st.integers(min_value=0, max_value=2**31), st.lists(st.text(max_size=12), max_size=4))
def test_a_v1_self_test_reads_as_passed_without_warnings(
    incarnation: int, components: list[str]
) -> None:
    data = msgpack.packb(["SelfTestPassed", 1, [incarnation, components]])
    assert DEFAULT_CODEC.decode(data) == SelfTestPassed(incarnation, tuple(components), ())


@given(events_of(SelfTestPassed))
def test_the_hot_loops_read_a_v1_self_test_as_decode_does(event: SelfTestPassed) -> None:
    v1 = msgpack.packb(["SelfTestPassed", 1, [event.incarnation, list(event.components)]])
    [recorded] = DEFAULT_CODEC.decode_chunks([[(1, "db:a", 1, "SelfTestPassed", 0, v1)]])
    assert (
        recorded.event
        == DEFAULT_CODEC.decode(v1)
        == SelfTestPassed(event.incarnation, event.components)
    )


def test_a_self_test_with_warnings_round_trips_through_the_hot_loop() -> None:
    event = SelfTestPassed(
        4, ("database", "smtp"), (Diagnostic("smtp", "warning", 'outbox row 7 ("x"): no'),)
    )
    data = DEFAULT_CODEC.encode(event)
    [recorded] = DEFAULT_CODEC.decode_chunks([[(1, "db:a", 1, "SelfTestPassed", 0, data)]])
    assert recorded.event == event
