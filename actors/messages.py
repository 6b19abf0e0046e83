"""The messages actors tell each other: typed, immutable."""

from __future__ import annotations

from typing import Any, NamedTuple

from events.store import PendingAppend
from events.types import Event


class Init(NamedTuple):
    """First message to an actor: do the fallible set-up (never in ``on_start``)."""


class Tick(NamedTuple):
    """A timer fired: do the periodic work that is due."""


class RunNow(NamedTuple):
    """Do all the periodic work now, due or not (a nudge from outside: tests, the bench)."""


class MailboxFailed(NamedTuple):
    """To the supervisor: a mailbox died (``cause`` crashed) or hangs (``cause`` hung).

    ``record`` holds the events that say so (``MailboxCrashed``), which the supervisor
    appends to the database's stream first, before its decision, whatever it decides.
    """

    db: str
    incarnation: int
    cause: str
    error: str
    record: tuple[Event, ...] = ()


class StartMailbox(NamedTuple):
    """To the supervisor: a scheduled (re)start of ``db``'s mailbox is due."""

    db: str


class Rescan(NamedTuple):
    """To the supervisor: list the server's databases again."""


class RestartCommand(NamedTuple):
    """To the supervisor: people asked to restart ``db`` (command rows, coalesced).

    ``requesters`` holds each row's ``requested_by`` in the order of ``command_ids``
    (empty: all are ``requested_by``). With ``reply_to``, the supervisor answers
    ``CommandsLogged`` there once it has logged the rows' ``RestartRequested``.
    """

    db: str
    source: str
    requested_by: str
    command_ids: tuple[int, ...]
    reply_to: Any = None  # pykka.ActorRef of the command reader
    requesters: tuple[str, ...] = ()


class CommandsLogged(NamedTuple):
    """To the command reader: these rows' ``RestartRequested`` are logged; ``durable`` is
    the append to wait for before marking them handled (None: already committed)."""

    db: str
    command_ids: tuple[int, ...]
    durable: PendingAppend | None


class Ping(NamedTuple):
    """Ask: answer ``True`` if the actor's loop is turning."""


class ChildFailed(NamedTuple):
    """To the supervisor: its child ``child`` (not a mailbox) died of ``error``."""

    child: str
    error: str


class StartChild(NamedTuple):
    """To the supervisor: a scheduled restart of its child ``child`` is due."""

    child: str
