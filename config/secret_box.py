"""Secrets at rest: the ``enc:v1:`` form of a secret column's value. Pure (no files).

A secret column (``smtp_password``, ``imap_password``, ``sms_password``,
``oauth_client_secret``, ``oauth_refresh_token``) holds either plain text, as older practice
software writes it, or ``enc:v1:`` followed by base64url (no padding) of::

    key id (4 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext and tag

The associated data binds the value to its column and its key id, so a value copied into
another column, or given another key's id, does not decrypt. It does not bind the database:
a database restored under another name keeps its secrets.

``encrypt`` makes the stored form, ``decrypt`` reads either form back; ``decrypt`` raises
``SecretError`` with one line that says what is wrong (no key, another key, altered), never
the value. The key file's text (``render_key_ring``/``parse_key_ring``) lives here too; the
file itself is ``config.key_file``'s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:v1:"
"""The start of an encrypted value; anything else is plain text."""

KEY_BYTES = 32  # AES-256
KEY_ID_BYTES = 4
NONCE_BYTES = 12
TAG_BYTES = 16
_AAD_HEAD = b"practice-email-service|enc:v1|"

_KEY_LINE = re.compile(r"^(current|previous) ([0-9a-f]{8}) ([A-Za-z0-9_-]{43})$")
KEY_FILE_HEADER = (
    "# Practice Email Service: the key that encrypts the secrets in the practice databases.\n"
    "# Keep it readable only by the service's account. Back it up apart from the databases:\n"
    "# without it the saved passwords and tokens must be entered again (docs/install.md).\n"
)


class SecretError(ValueError):
    """A stored secret cannot be read, or a key cannot be used; one line, never a value."""


@dataclass(frozen=True, slots=True)
class SecretKey:
    """One AES-256 key and its id (the first 4 bytes of a SHA-256 of it, in hex)."""

    key_id: str
    material: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The host's keys: ``current`` encrypts; every key in ``keys`` decrypts.

    More than one key only while a rotation is under way (or was interrupted): the new key
    is current and the old ones stay readable until every database is re-encrypted.
    ``problem`` says why there is no key at all (the key file is missing or unreadable);
    ``decrypt`` gives it as the reason an encrypted value cannot be read.
    """

    current: SecretKey | None = None
    previous: tuple[SecretKey, ...] = ()
    problem: str = "this host has no key"

    def find(self, key_id: str) -> SecretKey | None:
        """The key with ``key_id``, or None."""
        for key in self.all():
            if key.key_id == key_id:
                return key
        return None

    def all(self) -> tuple[SecretKey, ...]:
        """Every key, the current one first."""
        return ((self.current,) if self.current is not None else ()) + self.previous


def key_id_of(material: bytes) -> str:
    """The id of the key ``material``: 8 hex digits, derived, so a damaged file shows."""
    return hashlib.sha256(b"practice-email-service key id|" + material).hexdigest()[:8]


def make_key(material: bytes) -> SecretKey:
    """Return ``material`` (32 bytes) as a key with its id."""
    if len(material) != KEY_BYTES:
        raise SecretError(f"a key must be {KEY_BYTES} bytes, not {len(material)}")
    return SecretKey(key_id_of(material), material)


def new_key() -> SecretKey:
    """A new random key."""
    return make_key(AESGCM.generate_key(bit_length=KEY_BYTES * 8))


def is_encrypted(stored: str | None) -> bool:
    """Whether ``stored`` is in the ``enc:v1:`` form (not plain text)."""
    return stored is not None and stored.startswith(PREFIX)


def _aad(column: str, key_id: bytes) -> bytes:
    return _AAD_HEAD + column.encode() + b"|" + key_id


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.b64decode(padded, altchars=b"-_", validate=True)


def encrypt(key: SecretKey, column: str, plain: str, *, nonce: bytes | None = None) -> str:
    """Return ``plain`` encrypted for ``column`` with ``key``, in the ``enc:v1:`` form.

    A fresh random nonce each time (``nonce`` is for tests only), so saving one password
    twice stores two different values.
    """
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    key_id = bytes.fromhex(key.key_id)
    sealed = AESGCM(key.material).encrypt(nonce, plain.encode("utf-8"), _aad(column, key_id))
    return PREFIX + _b64encode(key_id + nonce + sealed)


def key_id_in(stored: str) -> str | None:
    """The key id an ``enc:v1:`` value was encrypted with, or None (plain or unreadable)."""
    if not is_encrypted(stored):
        return None
    try:
        data = _b64decode(stored[len(PREFIX) :])
    except (binascii.Error, ValueError):
        return None
    return data[:KEY_ID_BYTES].hex() if len(data) >= KEY_ID_BYTES else None


def decrypt(keys: KeyRing, column: str, stored: str) -> str:
    """Return the plain text of ``stored`` (``column``'s value): plain text as it is, an
    ``enc:v1:`` value decrypted with the key of its id.

    Raises ``SecretError`` (one line, naming the column, never the value) when there is no
    key, the value was encrypted with a key this host does not have, or it is damaged or
    was altered (or belongs to another column).
    """
    if not is_encrypted(stored):
        return stored
    where = f"email_settings.{column}"
    try:
        data = _b64decode(stored[len(PREFIX) :])
    except (binascii.Error, ValueError):
        raise SecretError(f"{where} is not a valid {PREFIX} value (damaged)") from None
    if len(data) < KEY_ID_BYTES + NONCE_BYTES + TAG_BYTES:
        raise SecretError(f"{where} is not a valid {PREFIX} value (too short)")
    key_id = data[:KEY_ID_BYTES]
    nonce = data[KEY_ID_BYTES : KEY_ID_BYTES + NONCE_BYTES]
    sealed = data[KEY_ID_BYTES + NONCE_BYTES :]
    if keys.current is None:
        raise SecretError(f"{where} is encrypted and cannot be decrypted: {keys.problem}")
    key = keys.find(key_id.hex())
    if key is None:
        have = ", ".join(k.key_id for k in keys.all())
        raise SecretError(
            f"{where} was encrypted with another key (id {key_id.hex()}); "
            f"this host's key file has id {have}"
        )
    try:
        plain = AESGCM(key.material).decrypt(nonce, sealed, _aad(column, key_id))
    except InvalidTag:
        raise SecretError(
            f"{where} does not decrypt with key {key.key_id}: it was altered, damaged or "
            "copied from another column"
        ) from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"{where} decrypts to text that is not UTF-8") from None


# --- the key file's text -----------------------------------------------------------------


def render_key_ring(ring: KeyRing) -> str:
    """The key file's text for ``ring``: a comment, then one line per key."""
    if ring.current is None:
        raise SecretError("a key file needs a current key")
    lines = [f"current {ring.current.key_id} {_b64encode(ring.current.material)}"]
    lines += [f"previous {k.key_id} {_b64encode(k.material)}" for k in ring.previous]
    return KEY_FILE_HEADER + "\n".join(lines) + "\n"


def parse_key_ring(text: str) -> KeyRing:
    """Read the key file's text. Raises ``SecretError`` saying which line is wrong (its
    number, never its content)."""
    current: SecretKey | None = None
    previous: list[SecretKey] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _KEY_LINE.match(line)
        if match is None:
            raise SecretError(f"line {number} is not 'current|previous ID KEY'")
        kind, key_id, encoded = match.groups()
        try:
            material = _b64decode(encoded)
        except (binascii.Error, ValueError):
            raise SecretError(f"line {number}: the key is not base64url") from None
        if len(material) != KEY_BYTES:
            raise SecretError(f"line {number}: the key is not {KEY_BYTES} bytes")
        key = make_key(material)
        if key.key_id != key_id:
            raise SecretError(f"line {number}: the key does not match its id {key_id} (damaged)")
        if kind == "current":
            if current is not None:
                raise SecretError(f"line {number}: a second current key")
            current = key
        elif all(k.key_id != key.key_id for k in previous):
            previous.append(key)
    if current is None:
        raise SecretError("it holds no current key")
    return KeyRing(current, tuple(k for k in previous if k.key_id != current.key_id), "")
