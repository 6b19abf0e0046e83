"""Progress beats from deep inside a mailbox's work, without a callback passed down.

A mailbox's thread installs its beat once (``install``, in its first message); code
that thread runs calls ``beat()`` whenever it got somewhere: an SMTP or IMAP reply read,
a slice of a wait in IDLE, a message sent or imported. On any other thread (the setup
wizard, the command line, a test) ``beat()`` does nothing. The beats reach the
incarnation registry, which the watchdog reads to tell a busy mailbox from a hung one
(``supervisor.hang_rule``).

A thread-local rather than a parameter: the places that beat are the transports'
innermost loops (``smtplib``'s reply reader, the IMAP session's every command), many
calls below the mailbox, in modules that are also used where nobody listens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_local = threading.local()


def install(hook: Callable[[], None] | None) -> None:
    """Make ``hook`` the calling thread's beat (None: none)."""
    _local.hook = hook


def beat() -> None:
    """Count one step of progress for the calling thread's mailbox, if it has one."""
    hook: Callable[[], None] | None = getattr(_local, "hook", None)
    if hook is not None:
        hook()
