"""The messages actors tell each other: typed, immutable."""

from __future__ import annotations

from typing import NamedTuple


class Init(NamedTuple):
    """First message to an actor: do the fallible set-up (never in ``on_start``)."""


class Tick(NamedTuple):
    """A timer fired: do the periodic work."""


class MailboxFailed(NamedTuple):
    """To the supervisor: a mailbox died (``cause`` crashed) or hangs (``cause`` hung)."""

    db: str
    incarnation: int
    cause: str
    error: str


class StartMailbox(NamedTuple):
    """To the supervisor: a scheduled (re)start of ``db``'s mailbox is due."""

    db: str


class Rescan(NamedTuple):
    """To the supervisor: list the server's databases again."""


class RestartCommand(NamedTuple):
    """To the supervisor: people asked to restart ``db`` (command rows, coalesced)."""

    db: str
    source: str
    requested_by: str
    command_ids: tuple[int, ...]


class Ping(NamedTuple):
    """Ask: answer ``True`` if the actor's loop is turning."""
