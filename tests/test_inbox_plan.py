"""actors.mail.inbox.plan_rows: de-duplication by content, never by the Message-ID."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.mail.imap_session import FetchedMessage
from actors.mail.inbox import plan_rows
from actors.mail.parse import ParsedMessage, raw_digest


def _parsed(message_id: str) -> ParsedMessage:
    return ParsedMessage(message_id, "a@b.example", "", "", "s", "", "", None)


_batches = st.lists(
    st.tuples(st.sampled_from([b"one", b"two", b"three"]), st.sampled_from(["<x@y>", "<z@y>"])),
    max_size=8,
)


@given(_batches, st.sets(st.sampled_from([b"one", b"two"])))
def test_each_content_is_stored_once_under_a_unique_message_id(
    batch: list[tuple[bytes, str]], stored: set[bytes]
) -> None:
    items = [
        (FetchedMessage(uid, raw, None), _parsed(mid), raw_digest(raw))
        for uid, (raw, mid) in enumerate(batch, start=1)
    ]
    stored_digests = {raw_digest(raw): n for n, raw in enumerate(sorted(stored), start=1)}
    keep, skipped = plan_rows(items, stored_digests, {})
    assert len({k.parsed.message_id for k in keep}) == len(keep)
    assert len({k.digest for k in keep}) == len(keep)
    assert not {k.digest for k in keep} & set(stored_digests)
    assert {s.uid for s in skipped} | {k.fetched.uid for k in keep} == set(range(1, len(batch) + 1))


def test_a_reused_message_id_keeps_the_first_and_derives_the_second() -> None:
    first = (FetchedMessage(1, b"one", None), _parsed("<x@y>"), raw_digest(b"one"))
    second = (FetchedMessage(2, b"two", None), _parsed("<x@y>"), raw_digest(b"two"))
    keep, skipped = plan_rows([first, second], {}, {})
    assert skipped == []
    assert keep[0].parsed.message_id == "<x@y>"
    assert keep[1].parsed.message_id.endswith("@derived.message-id.invalid>")
    assert "<x@y> is already used" in keep[1].parsed.problem
