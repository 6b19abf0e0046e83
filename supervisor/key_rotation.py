"""``email-service key rotate``: a new key, every practice database's secrets re-encrypted.

The order makes a crash at any point lose nothing:

1. the key file is replaced (atomically) by one whose **current** key is new and which keeps
   every old key as **previous**: from here on, both old and new values decrypt;
2. each practice database's secret columns are re-encrypted with the new key, one database
   per transaction, each value replaced only if it is still the value read (a wizard that
   saved meanwhile is not undone);
3. only when every practice database was done is the key file replaced by one with the new
   key alone. A database that could not be reached keeps the old keys in the file; the next
   ``key rotate`` makes another key and keeps all of them until one pass reaches everyone.

Plain-text values (older practice software) are left as they are and counted: the wizard
encrypts them when they are saved again. A value no key of this host decrypts is left as
it is and reported (the service reports that database as not set up).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Update, bindparam, text, update
from sqlalchemy.exc import SQLAlchemyError

from actors.mail.settings import SECRET_FIELDS
from actors.practice_db import make_engine
from actors.practice_schema import email_settings
from actors.statements import constant, statement
from config.key_file import KeyFileError, read_key_ring, replace_key_ring
from config.secret_box import (
    KeyRing,
    SecretError,
    decrypt,
    encrypt,
    is_encrypted,
    key_id_in,
    new_key,
)
from supervisor.discovery import DatabaseInfo, error_line

DB_TIMEOUT_SECONDS = 10.0


_TAKE_WRITE_LOCK = constant(
    "keys.take_write_lock",
    update(email_settings)
    .where(email_settings.c.id == -1)
    .values(smtp_password=email_settings.c.smtp_password),
)
"""Changes nothing, but takes the database's write lock (SQLite) before the read."""
_READ_ALL = constant("keys.read_settings", text(f"SELECT * FROM {email_settings.name}"))
"""Every row and column there is (an older database may lack the sign-in columns)."""


@statement(
    "keys.replace_secret",
    "smtp_password",
    params={"row_id": 1, "old_value": "enc:v1:old", "new_value": "enc:v1:new"},
)
def _replace(column: str) -> Update:
    """One secret column's value, replaced only if it is still the value read."""
    c = email_settings.c
    return (
        update(email_settings)
        .where(c.id == bindparam("row_id"), c[column] == bindparam("old_value"))
        .values({column: bindparam("new_value")})
    )


@dataclass(frozen=True, slots=True)
class DatabaseOutcome:
    """What re-encrypting one practice database did."""

    name: str
    reencrypted: int = 0
    plain: int = 0  # plain-text secrets left as they are
    unreadable: tuple[str, ...] = ()  # one line per value no key decrypts
    error: str = ""  # the database could not be reached or written ("" = done)


@dataclass(frozen=True, slots=True)
class Rotation:
    """The outcome of one ``key rotate``."""

    new_key_id: str
    kept_key_ids: tuple[str, ...]  # old keys still in the file (a database was not done)
    databases: tuple[DatabaseOutcome, ...]


def reencrypt(url: str, ring: KeyRing, name: str) -> DatabaseOutcome:
    """Re-encrypt every secret column of ``email_settings`` at ``url`` with ``ring``'s
    current key, in one transaction. Never raises for the database: ``error`` says."""
    assert ring.current is not None
    current = ring.current
    reencrypted = plain = 0
    unreadable: list[str] = []
    engine = make_engine(url, timeout=DB_TIMEOUT_SECONDS, pooled=False)
    try:
        with engine.begin() as conn:
            # Take the write lock first: SQLite refuses at once, without waiting, a read
            # transaction that wants to write while another connection writes (the
            # service's check-in, say); a write that starts the transaction waits its turn.
            conn.execute(_TAKE_WRITE_LOCK)
            result = conn.execute(_READ_ALL)
            columns = list(result.keys())
            rows = [dict(row._mapping) for row in result.fetchall()]
            for row in rows:
                for column in sorted(SECRET_FIELDS & set(columns)):
                    stored = row[column]
                    if not isinstance(stored, str) or not stored:
                        continue
                    if not is_encrypted(stored):
                        plain += 1
                        continue
                    if key_id_in(stored) == current.key_id:
                        continue
                    try:
                        value = encrypt(current, column, decrypt(ring, column, stored))
                    except SecretError as exc:
                        unreadable.append(str(exc))
                        continue
                    conn.execute(
                        _replace(column),
                        {"row_id": row["id"], "old_value": stored, "new_value": value},
                    )
                    reencrypted += 1
    except SQLAlchemyError as exc:
        return DatabaseOutcome(name, error=error_line(exc, url))
    finally:
        engine.dispose()
    return DatabaseOutcome(name, reencrypted, plain, tuple(unreadable))


@dataclass(frozen=True, slots=True)
class DatabaseSecrets:
    """What the secrets of one practice database are, as ``key status`` reports them."""

    name: str
    current: int = 0  # encrypted with the current key
    older: int = 0  # encrypted with a previous key still in the file
    plain: int = 0  # plain text (older practice software)
    unreadable: tuple[str, ...] = ()  # one line per value no key decrypts
    error: str = ""  # the database could not be read


def survey(url: str, ring: KeyRing, name: str) -> DatabaseSecrets:
    """Count the secret values of ``email_settings`` at ``url`` by how they are stored.
    Reads only; never raises for the database (``error`` says)."""
    current_id = ring.current.key_id if ring.current is not None else None
    counts = {"current": 0, "older": 0, "plain": 0}
    unreadable: list[str] = []
    engine = make_engine(url, timeout=DB_TIMEOUT_SECONDS, pooled=False)
    try:
        with engine.connect() as conn:
            result = conn.execute(_READ_ALL)
            columns = set(result.keys())
            rows = [dict(row._mapping) for row in result.fetchall()]
    except SQLAlchemyError as exc:
        return DatabaseSecrets(name, error=error_line(exc, url))
    finally:
        engine.dispose()
    for row in rows:
        for column in sorted(SECRET_FIELDS & columns):
            stored = row[column]
            if not isinstance(stored, str) or not stored:
                continue
            if not is_encrypted(stored):
                counts["plain"] += 1
                continue
            try:
                decrypt(ring, column, stored)
            except SecretError as exc:
                unreadable.append(str(exc))
                continue
            counts["current" if key_id_in(stored) == current_id else "older"] += 1
    return DatabaseSecrets(
        name, counts["current"], counts["older"], counts["plain"], tuple(unreadable)
    )


@contextlib.contextmanager
def rotation_lock(path: Path) -> Iterator[None]:
    """Hold ``<key file>.lock`` (POSIX ``flock``) so two rotations never interleave; it
    dies with the process. Raises ``KeyFileError`` when another rotation holds it."""
    if os.name != "posix":
        yield
        return
    import fcntl

    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise KeyFileError(f"cannot lock the key file {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise KeyFileError(
                f"another key rotate is running on {path}; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)


def rotate(
    path: Path,
    databases: Sequence[DatabaseInfo],
    done: Callable[[DatabaseOutcome], None] = lambda _outcome: None,
) -> Rotation:
    """Rotate the key in ``path`` over ``databases`` (the practice ones are re-encrypted;
    one that could not be read counts as not done). ``done`` is told of each database as
    it is finished. Raises ``KeyFileError`` when the key file cannot be read or written."""
    with rotation_lock(path):
        old = read_key_ring(path)
        key = new_key()
        rotating = KeyRing(key, old.all(), "")
        replace_key_ring(path, rotating)
        outcomes: list[DatabaseOutcome] = []
        for info in databases:
            if info.error is not None:
                outcome = DatabaseOutcome(info.name, error=info.error)
            elif not info.is_practice:
                continue
            else:
                outcome = reencrypt(info.url, rotating, info.name)
            outcomes.append(outcome)
            done(outcome)
        if any(o.error for o in outcomes):
            return Rotation(key.key_id, tuple(k.key_id for k in old.all()), tuple(outcomes))
        replace_key_ring(path, KeyRing(key, (), ""))
        return Rotation(key.key_id, (), tuple(outcomes))
