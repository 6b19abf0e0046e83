"""The host's key file (``service.key_file``): created, read, replaced, watched.

The file holds the keys of ``config.secret_box`` (its text is ``render_key_ring``'s). It
lives on the service host only, never in a practice database, and is readable only by the
service's account: created with mode 0600 (on POSIX), refused when other accounts may
read it. Every write is atomic: a new file is written and synced beside it, then linked
into place (``create_key_file``: never over an existing key) or renamed over it
(``replace_key_ring``), so a crash leaves the old file or the new one, never half of one.

``read_key_ring`` raises ``KeyFileError`` (one line: missing, unreadable, wrong
permissions, damaged); ``KeyFile`` is the service's reader: it never raises, re-reads the
file when it changes (a restored key is taken up without a restart), and gives a ring
whose ``problem`` says what is wrong.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from pathlib import Path

from config.secret_box import KeyRing, SecretError, new_key, parse_key_ring, render_key_ring

POSIX = os.name == "posix"


class KeyFileError(SecretError):
    """The key file cannot be used; one line naming the file and what to do."""


def _mode_problem(path: Path, mode: int) -> str | None:
    if POSIX and mode & 0o077:
        return (
            f"the key file {path} may be read by other accounts (mode {stat.S_IMODE(mode):04o}); "
            f"make it readable only by the service's account: chmod 600 {path}"
        )
    return None


def read_key_ring(path: Path) -> KeyRing:
    """Read the key file at ``path``. Raises ``KeyFileError``: missing, unreadable, readable
    by other accounts, or damaged."""
    try:
        with open(path, "rb") as f:
            problem = _mode_problem(path, os.fstat(f.fileno()).st_mode)
            if problem:
                raise KeyFileError(problem)
            data = f.read(64 * 1024)
    except FileNotFoundError:
        raise KeyFileError(
            f"the key file {path} is missing (email-service key init makes a new one; "
            "restore it from its backup if secrets were saved with it)"
        ) from None
    except PermissionError:
        raise KeyFileError(
            f"the key file {path} cannot be read by this account; run as the service's "
            "account (it owns the file)"
        ) from None
    except IsADirectoryError:
        raise KeyFileError(f"the key file {path} is a folder, not a file") from None
    except OSError as exc:
        raise KeyFileError(f"the key file {path} cannot be read: {exc.strerror}") from None
    try:
        return parse_key_ring(data.decode("ascii"))
    except UnicodeDecodeError:
        raise KeyFileError(f"the key file {path} is damaged: it is not text") from None
    except KeyFileError:
        raise
    except SecretError as exc:
        raise KeyFileError(f"the key file {path} is damaged: {exc}") from None


def _owner_for(path: Path) -> tuple[int, int] | None:
    """Who should own a key file written at ``path`` by root: the owner of the file it
    replaces, else of its folder (the service's account); None when not root."""
    if not POSIX or os.geteuid() != 0:
        return None
    for candidate in (path, path.parent):
        with contextlib.suppress(OSError):
            st = candidate.stat()
            return st.st_uid, st.st_gid
    return None


def _write_new(path: Path, ring: KeyRing) -> Path:
    """Write ``ring`` to a new file (mode 0600, synced) beside ``path``; return its path."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyFileError(f"cannot create the folder of {path}: {exc.strerror}") from None
    owner = _owner_for(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # left by a crash of this very process id
    try:
        fd = os.open(temporary, flags, 0o600)
    except OSError as exc:
        raise KeyFileError(f"cannot write the key file {path}: {exc.strerror}") from None
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.write(fd, render_key_ring(ring).encode("ascii"))
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise KeyFileError(f"cannot write the key file {path}: {exc.strerror}") from None
    os.close(fd)
    return temporary


def _sync_folder(path: Path) -> None:
    if not POSIX:
        return
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def create_key_file(path: Path) -> KeyRing:
    """Make a new key and write it to ``path``, which must not exist (an existing key is
    never replaced: secrets may be encrypted with it). Returns the new ring."""
    ring = KeyRing(new_key(), (), "")
    temporary = _write_new(path, ring)
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise KeyFileError(
            f"the key file {path} already exists; email-service key rotate replaces its key"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot write the key file {path}: {exc.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)
    _sync_folder(path)
    return ring


def ensure_key_file(path: Path) -> tuple[KeyRing, bool]:
    """Read the key file, or create it when it is missing; return the ring and whether
    it was created. Other faults (unreadable, permissions, damaged) raise ``KeyFileError``."""
    if not path.exists() and not path.is_symlink():
        try:
            return create_key_file(path), True
        except KeyFileError:
            if not path.exists():
                raise  # else another process made it meanwhile: read that one
    return read_key_ring(path), False


def replace_key_ring(path: Path, ring: KeyRing) -> None:
    """Replace the key file at ``path`` with ``ring``, atomically."""
    temporary = _write_new(path, ring)
    try:
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise KeyFileError(f"cannot replace the key file {path}: {exc.strerror}") from None
    _sync_folder(path)


class KeyFile:
    """The service's view of its key file: ``ring()`` never raises and is cheap (one
    ``stat``); the file is read again whenever it changes, so a restored or rotated key is
    used at the next settings read, without a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int, int] | None = None
        self._ring = KeyRing(problem=f"the key file {path} was not read")

    def ring(self) -> KeyRing:
        """The keys now, or an empty ring whose ``problem`` says why there are none."""
        try:
            st = self.path.stat()
            seen: tuple[int, int, int, int] | None = (
                st.st_mtime_ns,
                st.st_size,
                st.st_ino,
                st.st_mode,
            )
        except OSError:
            seen = None
        with self._lock:
            if seen is not None and seen == self._seen:
                return self._ring
            try:
                self._ring = read_key_ring(self.path)
            except KeyFileError as exc:
                self._ring = KeyRing(problem=str(exc))
            self._seen = seen
            return self._ring
