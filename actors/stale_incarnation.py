"""The one error of both sides of the incarnation fence (``actors.fence``): the event log's
and the practice database's (``actors.practice_db``). Its own module, without the event
log's imports, so that reading a practice database (``status``) does not load them."""

from __future__ import annotations


class StaleIncarnationError(Exception):
    """Raised when an abandoned incarnation tries to write: a newer one (or none) is live.

    ``incarnation`` is the writer's number; ``stored`` the live one (in the registry or
    in the practice database's ``email_service_mailbox`` row), None when no incarnation
    is live; ``db`` the database's name when the raiser knows it.
    """

    def __init__(self, incarnation: int, stored: int | None, db: str | None = None) -> None:
        now = "none is live" if stored is None else f"the live one is {stored}"
        of = "" if db is None else f" of {db!r}"
        super().__init__(f"incarnation {incarnation}{of} was abandoned ({now})")
        self.db = db
        self.incarnation = incarnation
        self.stored = stored
