"""The supervision tree as the log tells it: which mailboxes exist, and why others do not."""

from __future__ import annotations

from typing import NamedTuple

from events.recorded import Recorded
from events.types import (
    DatabaseDiscovered,
    DatabaseIgnored,
    DatabaseLost,
    MailboxCrashed,
    MailboxGaveUp,
    MailboxStarted,
    MailboxStopped,
    RestartScheduled,
)


class TreeEntry(NamedTuple):
    """One database's place in the tree."""

    served: bool = False  # eligible and meant to have a mailbox
    reason: str = ""  # why it is (or is not) served, as discovery said
    mailbox_incarnation: int | None = None  # the live incarnation, None if no mailbox runs
    why_no_mailbox: str = "not started yet"  # empty while a mailbox runs


INITIAL = TreeEntry()


def apply_tree(state: TreeEntry, recorded: Recorded) -> TreeEntry:
    """Return the tree entry after ``recorded``; the same object if it changes nothing."""
    e = recorded.event
    match e:
        case DatabaseDiscovered(reason=reason):
            return state._replace(served=True, reason=reason)
        case DatabaseIgnored(reason=reason):
            return TreeEntry(False, reason, None, f"not served: {reason}")
        case DatabaseLost(reason=reason):
            return TreeEntry(False, reason, None, f"database lost: {reason}")
        case MailboxStarted(incarnation=n):
            return state._replace(mailbox_incarnation=n, why_no_mailbox="")
        case MailboxStopped(incarnation=n, reason=reason) if n == state.mailbox_incarnation:
            return state._replace(mailbox_incarnation=None, why_no_mailbox=f"stopped: {reason}")
        case MailboxCrashed(incarnation=n, error=error) if n == state.mailbox_incarnation:
            return state._replace(mailbox_incarnation=None, why_no_mailbox=f"crashed: {error}")
        case RestartScheduled(delay=delay, attempt=attempt):
            return state._replace(
                mailbox_incarnation=None,
                why_no_mailbox=f"restart {attempt} scheduled after {delay:.1f} s",
            )
        case MailboxGaveUp(restarts=n, retry_in=retry_in):
            return state._replace(
                mailbox_incarnation=None,
                why_no_mailbox=f"gave up after {n} restarts; next try in {retry_in:.0f} s",
            )
    return state
