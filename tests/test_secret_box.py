"""The ``enc:v1:`` form of a secret (``config.secret_box``): round trip, tampering, keys.

Pure: no files. Hypothesis for the codec (any text, any column, any key) and for
tampering (any single bit flipped anywhere in the stored value is refused).
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.mail.stored_secrets import Secrets
from config.secret_box import (
    PREFIX,
    KeyRing,
    SecretError,
    decrypt,
    encrypt,
    is_encrypted,
    key_id_in,
    make_key,
    new_key,
    parse_key_ring,
    render_key_ring,
)

COLUMNS = ("smtp_password", "imap_password", "sms_password", "oauth_client_secret")
keys = st.binary(min_size=32, max_size=32).map(make_key)
columns = st.sampled_from(COLUMNS)
secrets = st.text()


def ring_of(*members: object) -> KeyRing:
    first, *rest = members
    return KeyRing(first, tuple(rest), "")  # type: ignore[arg-type]


def _raw(stored: str) -> bytes:
    body = stored[len(PREFIX) :]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _stored(raw: bytes) -> str:
    return PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@given(keys, columns, secrets)
def test_what_is_encrypted_decrypts_to_itself(key: object, column: str, plain: str) -> None:
    stored = encrypt(key, column, plain)  # type: ignore[arg-type]
    assert stored.startswith(PREFIX)
    assert decrypt(ring_of(key), column, stored) == plain


@given(keys, columns, st.text(min_size=4))
def test_the_stored_form_does_not_contain_the_secret(key: object, column: str, plain: str) -> None:
    stored = encrypt(key, column, plain)  # type: ignore[arg-type]
    assert plain not in stored
    assert plain.encode() not in _raw(stored)


@given(keys, columns, secrets, st.data())
def test_any_flipped_bit_is_refused_without_showing_the_secret(
    key: object, column: str, plain: str, data: st.DataObject
) -> None:
    raw = bytearray(_raw(encrypt(key, column, plain)))  # type: ignore[arg-type]
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SecretError) as caught:
        decrypt(ring_of(key), column, _stored(bytes(raw)))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"email_settings.{column} ")
    if len(plain) >= 4:
        assert plain not in message


def test_an_altered_value_is_said_to_be_altered() -> None:
    key = new_key()
    raw = bytearray(_raw(encrypt(key, "smtp_password", "Tr0ub4dor&3")))
    raw[-1] ^= 1
    with pytest.raises(SecretError, match="it was altered, damaged or copied from another"):
        decrypt(ring_of(key), "smtp_password", _stored(bytes(raw)))


def test_a_value_moved_to_another_column_does_not_decrypt() -> None:
    key = new_key()
    stored = encrypt(key, "imap_password", "Tr0ub4dor&3")
    with pytest.raises(SecretError, match=r"email_settings\.smtp_password does not decrypt"):
        decrypt(ring_of(key), "smtp_password", stored)


def test_another_keys_value_names_both_key_ids() -> None:
    mine, theirs = new_key(), new_key()
    stored = encrypt(theirs, "smtp_password", "Tr0ub4dor&3")
    with pytest.raises(SecretError) as caught:
        decrypt(ring_of(mine), "smtp_password", stored)
    assert str(caught.value) == (
        f"email_settings.smtp_password was encrypted with another key (id {theirs.key_id}); "
        f"this host's key file has id {mine.key_id}"
    )


def test_without_a_key_the_reason_is_the_rings_problem() -> None:
    stored = encrypt(new_key(), "smtp_password", "Tr0ub4dor&3")
    with pytest.raises(SecretError) as caught:
        decrypt(KeyRing(problem="the key file /k is missing"), "smtp_password", stored)
    assert str(caught.value) == (
        "email_settings.smtp_password is encrypted and cannot be decrypted: "
        "the key file /k is missing"
    )


def test_a_previous_key_still_decrypts() -> None:
    old, new = new_key(), new_key()
    stored = encrypt(old, "smtp_password", "Tr0ub4dor&3")
    assert decrypt(ring_of(new, old), "smtp_password", stored) == "Tr0ub4dor&3"
    assert key_id_in(stored) == old.key_id


@given(st.text().filter(lambda t: not t.startswith(PREFIX)), columns)
def test_plain_text_is_read_as_it_is(plain: str, column: str) -> None:
    assert decrypt(KeyRing(), column, plain) == plain


@pytest.mark.parametrize("body", ["", "!!!", "AAAA", "a" * 10])
def test_a_damaged_value_is_one_line_naming_the_column(body: str) -> None:
    with pytest.raises(SecretError, match=r"^email_settings\.sms_password is not a valid enc:v1:"):
        decrypt(ring_of(new_key()), "sms_password", PREFIX + body)


def test_the_same_secret_is_stored_differently_each_time() -> None:
    key = new_key()
    assert encrypt(key, "smtp_password", "x") != encrypt(key, "smtp_password", "x")


@given(st.lists(keys, min_size=1, max_size=4, unique_by=lambda k: k.key_id))
def test_the_key_file_text_reads_back_as_the_same_ring(members: list[object]) -> None:
    ring = ring_of(*members)
    assert parse_key_ring(render_key_ring(ring)) == ring


def test_a_damaged_key_line_says_which_line_without_the_key() -> None:
    text = render_key_ring(ring_of(new_key()))
    head, line = text.rstrip("\n").rsplit("\n", 1)
    kind, key_id, encoded = line.split(" ")
    damaged = encoded[:-2] + ("AA" if encoded[-2:] != "AA" else "BA")
    with pytest.raises(SecretError) as caught:
        parse_key_ring(f"{head}\n{kind} {key_id} {damaged}\n")
    number = text.count("\n")
    assert str(caught.value) == (f"line {number}: the key does not match its id {key_id} (damaged)")
    assert damaged not in str(caught.value)


def test_a_key_file_without_a_current_key_is_refused() -> None:
    with pytest.raises(SecretError, match="it holds no current key"):
        parse_key_ring("# nothing here\n")


def _plain(most: int) -> st.SearchStrategy[str]:
    return st.text(max_size=most).filter(lambda t: not t.startswith(PREFIX))


@given(
    st.fixed_dictionaries(
        {c: _plain(60) for c in ("smtp_password", "imap_password", "sms_password")}
        | {"oauth_refresh_token": _plain(2000), "smtp_host": st.text(max_size=20)}
    )
)
def test_a_sealed_row_opens_to_itself_and_holds_only_encrypted_secrets(
    row: dict[str, str],
) -> None:
    key = new_key()
    secrets = Secrets(lambda: ring_of(key))
    sealed = secrets.seal_row(row)
    assert sealed["smtp_host"] == row["smtp_host"]  # not a secret: as it was
    assert all(
        is_encrypted(v) if row[c] else v == "" for c, v in sealed.items() if c != "smtp_host"
    )
    assert secrets.open_row(sealed) == (row, ())
