"""One service per event log and per database server on a host: operating-system locks.

``serve`` takes two locks before it opens the log or any practice database:

- the **event log's**: for a SQLite log an exclusive ``flock`` on ``<log file>.lock``
  beside it; for a log on PostgreSQL a session advisory lock held on its own connection
  for the life of the process (MySQL/MariaDB: a ``GET_LOCK`` named lock);
- the **databases'**: for a folder of SQLite practice files an exclusive ``flock`` on
  ``<folder>/.email-service.lock``; for a PostgreSQL or MariaDB server the same kind of
  lock as above, taken on the server's own connection (so two services with different
  logs cannot serve one server's databases either).

The holder writes who it is into the lock (the lock file's text; the lock connection's
``application_name`` on PostgreSQL), so a second ``serve`` refuses with one line naming
the other process and how it was found, and exits ``exit_codes.ALREADY_RUNNING``.
A lock dies with its process (a ``kill -9`` included): nothing stale to clean up.

Services on different hosts (with SQLite on a shared folder, or one database server)
are not stopped here; their check-ins carry each process's start (``service_instance``,
beside the contract's ``server_name``, which stays the ``server_id``) and workstations see
two services (``supervisor.status_rule``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from actors.statements import SERVER, constant
from config import mask_url
from supervisor.discovery import error_line

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # Windows: no flock; the service wrapper runs one instance anyway
    fcntl = None  # type: ignore[assignment]

SERVER_NAME_LENGTH = 200
"""The ``server_name`` columns' length (``actors.practice_schema``)."""


class AlreadyRunningError(Exception):
    """Raised when another service holds a lock this one needs; the message names it."""


INSTANCE_LENGTH = 100
"""The ``service_instance`` column's length (``actors.practice_schema``)."""

_started: tuple[int, str] | None = None  # (pid, this start's random word)


def service_instance() -> str:
    """Return this start of the service, as check-ins record it: ``host pid N start W``.

    ``W`` is a random word drawn once per process, so two starts never share one, even
    where the pid repeats (a container's pid 1); the host and pid are for people. A
    restart is a new instance with the same ``server_id``; the status rule tells that
    from two services by whether the instances take turns (``supervisor.status_rule``).
    """
    global _started
    pid = os.getpid()
    if _started is None or _started[0] != pid:  # a forked child is a start of its own
        _started = (pid, secrets.token_hex(4))
    tail = f" pid {pid} start {_started[1]}"
    return socket.gethostname()[: INSTANCE_LENGTH - len(tail)] + tail


def instance_name(server_id: str) -> str:
    """Return this process's name in the fence row: ``server_id (host pid N start W)``.

    The fence (``email_service_mailbox``, service-owned) has one name column; a claim
    of the number it holds succeeds only for the same ``server_id`` on the same host
    (``actors.practice_db.same_service``). The ``server_id`` stays its start.
    """
    suffix = f" ({service_instance()})"
    return server_id[: SERVER_NAME_LENGTH - len(suffix)] + suffix


def whoami() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


@dataclass
class HeldLocks:
    """The locks this process holds; ``release`` lets them go (at exit they go anyway)."""

    files: list[IO[str]] = field(default_factory=list)
    connections: list[tuple[Connection, Callable[[Connection], None]]] = field(default_factory=list)

    def release(self) -> None:
        for handle in self.files:
            with contextlib.suppress(OSError):
                handle.close()
        for conn, unlock in self.connections:
            with contextlib.suppress(Exception):
                unlock(conn)
                conn.close()
        self.files.clear()
        self.connections.clear()


def acquire(event_store: str, server_url: str) -> HeldLocks:
    """Take the event log's lock, then the database server's; raise ``AlreadyRunningError``.

    Touches no practice database: only the lock files, or one connection to each server.
    """
    held = HeldLocks()
    try:
        _lock(held, event_store, "this event log", _log_lock_file)
        try:
            _lock(held, server_url, "these practice databases", _folder_lock_file)
        except SQLAlchemyError as exc:
            # A database server down at boot must not stop the service (it serves what
            # answers, and rescans); the log's lock still keeps a second service out.
            log.warning(
                "no lock on the practice databases' server (it does not answer: %s); "
                "going on without it",
                error_line(exc, server_url),
            )
    except BaseException:
        held.release()
        raise
    return held


def acquire_log(event_store: str) -> HeldLocks:
    """Take only the event log's lock (a command that needs the log to itself, such as
    ``events prune --compact``); raise ``AlreadyRunningError`` naming the holder."""
    held = HeldLocks()
    try:
        _lock(held, event_store, "this event log", _log_lock_file)
    except BaseException:
        held.release()
        raise
    return held


def _log_lock_file(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _folder_lock_file(path: Path) -> Path:
    return path / ".email-service.lock"


def _lock(held: HeldLocks, url: str, what: str, lock_file: Callable[[Path], Path]) -> None:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            return  # nothing shared
        _flock(held, lock_file(Path(parsed.database or "")), what)
    elif backend == "postgresql":
        _pg_lock(held, url, what)
    elif backend in ("mysql", "mariadb"):
        _mysql_lock(held, url, what)
    else:
        log.info("no lock for the %s on %s: only one service may run", what, backend)


def _flock(held: HeldLocks, path: Path, what: str) -> None:
    if fcntl is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        other = handle.read().strip() or "a process that wrote nothing"
        handle.close()
        raise AlreadyRunningError(
            f"another email service ({other}) serves {what}: it holds the lock on {path}"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(whoami() + "\n")
    handle.flush()
    held.files.append(handle)


def _key(what: str, url: str) -> int:
    """A lock's number: the same for every service that locks ``what`` at ``url``."""
    database = make_url(url).database or ""
    digest = hashlib.sha256(f"email-service {what} {database}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2  # positive in a signed bigint


def _connect(url: str, application_name: str | None = None) -> Connection:
    args: dict[str, Any] = {"connect_timeout": 10}
    if application_name is not None:
        args["application_name"] = application_name
    engine = create_engine(url, poolclass=NullPool, connect_args=args)
    return engine.connect()


_PG = frozenset({"postgresql"})
_MY = frozenset({"mysql"})
_KEY = {"k": 0x454D4C53_4C4F434B}
_NAME = {"n": "email-service:00000000deadbeef"}
_PG_TRY = constant(
    "instance.pg_try_lock",
    text("SELECT pg_try_advisory_lock(:k)"),
    params=_KEY,
    target=SERVER,
    backends=_PG,
)
_PG_HOLDER = constant(
    "instance.pg_holder",
    text(
        "SELECT a.application_name, a.client_addr FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
        "AND l.granted AND (l.classid::bigint << 32) | l.objid::bigint = :k "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ),
    params=_KEY,
    target=SERVER,
    backends=_PG,
)
_PG_UNLOCK = constant(
    "instance.pg_unlock",
    text("SELECT pg_advisory_unlock(:k)"),
    params=_KEY,
    target=SERVER,
    backends=_PG,
)
_MY_GET = constant(
    "instance.get_lock", text("SELECT GET_LOCK(:n, 0)"), params=_NAME, target=SERVER, backends=_MY
)
_MY_HOLDER = constant(
    "instance.lock_holder",
    text("SELECT IS_USED_LOCK(:n)"),
    params=_NAME,
    target=SERVER,
    backends=_MY,
)
_MY_RELEASE = constant(
    "instance.release_lock",
    text("SELECT RELEASE_LOCK(:n)"),
    params=_NAME,
    target=SERVER,
    backends=_MY,
)


def _pg_lock(held: HeldLocks, url: str, what: str) -> None:
    key = _key(what, url)
    conn = _connect(url, f"email-service {whoami()}"[:63])
    got = conn.execute(_PG_TRY, {"k": key}).scalar()
    conn.commit()
    if not got:
        other = conn.execute(_PG_HOLDER, {"k": key}).first()
        conn.close()
        name = other[0] if other is not None and other[0] else "another process"
        raise AlreadyRunningError(
            f"another email service ({name}) serves {what}: it holds an advisory lock "
            f"on {mask_url(url)}"
        )

    def unlock(c: Connection) -> None:
        c.execute(_PG_UNLOCK, {"k": key})

    held.connections.append((conn, unlock))


def _mysql_lock(held: HeldLocks, url: str, what: str) -> None:
    name = f"email-service:{_key(what, url):016x}"
    conn = _connect(url)
    got = conn.execute(_MY_GET, {"n": name}).scalar()
    if got != 1:
        holder = conn.execute(_MY_HOLDER, {"n": name}).scalar()
        conn.close()
        raise AlreadyRunningError(
            f"another email service (database connection {holder}) serves {what}: "
            f"it holds the named lock {name} on {mask_url(url)}"
        )

    def unlock(c: Connection) -> None:
        c.execute(_MY_RELEASE, {"n": name})

    held.connections.append((conn, unlock))
